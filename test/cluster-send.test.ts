/**
 * The primary's sends to a worker whose channel is closing (src/cluster/pool.ts): node's
 * child_process reports a failed IPC write (EPIPE) to the send's callback when there is
 * one, else as an 'error' event, which ends a process that has no listener. A worker that
 * exits as the primary drains (a SIGTERM sent to the whole process group) must not take
 * the primary down with it.
 */
import assert from 'node:assert/strict';
import type { Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { WorkerProc } from '../src/cluster/pool';

/** A cluster Worker whose channel just closed, failing sends the way node does. */
class ClosingWorker extends EventEmitter {
  readonly process = { pid: 1234 };
  sent = 0;
  isConnected(): boolean {
    return true; // still says so: the race is between this check and the write
  }
  send(_m: unknown, _handle?: unknown, _options?: unknown, callback?: (err: Error | null) => void): boolean {
    this.sent++;
    const err = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    if (typeof callback === 'function') process.nextTick(callback, err);
    else process.nextTick(() => this.emit('error', err));
    return false;
  }
}

test('a send that fails with EPIPE is not an unhandled error event', async () => {
  const w = new ClosingWorker();
  const p = new WorkerProc(0, w as unknown as Worker);
  let errors = 0;
  w.on('error', () => errors++);
  p.send({ type: 'moor:shutdown' } as never);
  await new Promise((r) => setImmediate(r));
  assert.equal(w.sent, 1);
  assert.equal(errors, 0, 'the failure went to the callback, not to an error event');
});

test('nothing is sent to a worker that exited', () => {
  const w = new ClosingWorker();
  const p = new WorkerProc(0, w as unknown as Worker);
  p.exited = true;
  p.send({ type: 'moor:shutdown' } as never);
  assert.equal(w.sent, 0);
});
