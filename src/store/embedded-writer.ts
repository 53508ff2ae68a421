/**
 * The store writer thread: every write transaction of the embedded store (appends, acks,
 * sweeps, idempotency answers) runs here, never on the worker's event loop.
 *
 * Why a thread of our own: lmdb-js runs a transaction callback on the thread that queued
 * it, so each write on the event loop took three loop round trips (start the batch, run
 * the callback while the writer thread waits holding lmdb's cross-process write lock,
 * resolve after the fsync). Under a broadcast the loop is busy for a few ms at a time,
 * and a durable high-priority push waited for all three. Here the loop is idle, the
 * transaction runs synchronously, and the worker waits for one message back.
 *
 * Group commit: requests that arrive while a commit (with its fdatasync) is running are
 * taken together in the next one, each in a child transaction so one failing request
 * rolls back alone. A request's answer is sent only after the commit returns, i.e. after
 * the fsync (overlappingSync: false), so "resolved" still means "on disk".
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openLayout } from './embedded-layout';
import { runWrite, type WriteOp, type WriteResult } from './embedded-writes';

export type ToWriter = { id: number; w: WriteOp } | { close: true };
export type FromWriter =
  | { id: number; ok: true; r: WriteResult }
  | { id: number; ok: false; e: { name: string; message: string; code?: string } }
  | { closed: true };

function errorShape(err: unknown): { name: string; message: string; code?: string } {
  const e = err instanceof Error ? err : new Error(String(err));
  const code = (e as { code?: unknown }).code;
  return { name: e.name, message: e.message, ...(typeof code === 'string' ? { code } : {}) };
}

function main(): void {
  const port = parentPort;
  if (!port) throw new Error('embedded-writer.js runs as a worker thread');
  const layout = openLayout((workerData as { dir: string }).dir);
  let queue: Array<{ id: number; w: WriteOp }> = [];
  let scheduled = false;
  let closing = false;

  const flush = (): void => {
    scheduled = false;
    const batch = queue;
    queue = [];
    const answers: FromWriter[] = [];
    try {
      layout.root.transactionSync(() => {
        for (const { id, w } of batch) {
          try {
            // Nested transactionSync = a child transaction: a throw undoes this request only.
            const r = layout.root.transactionSync(() => runWrite(layout, w));
            answers.push({ id, ok: true, r });
          } catch (err) {
            answers.push({ id, ok: false, e: errorShape(err) });
          }
        }
      });
    } catch (err) {
      // The commit itself failed (disk full, I/O error): nothing of this batch is stored.
      const e = errorShape(err);
      for (let i = 0; i < batch.length; i++) answers[i] = { id: batch[i].id, ok: false, e };
    }
    for (const a of answers) port.postMessage(a);
    if (closing && queue.length === 0) void shutdown();
  };

  const shutdown = async (): Promise<void> => {
    await layout.root.close();
    port.postMessage({ closed: true } satisfies FromWriter);
    port.close();
  };

  port.on('message', (m: ToWriter) => {
    if ('close' in m) {
      closing = true;
      if (!scheduled) void shutdown();
      return;
    }
    queue.push(m);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  });
}

main();
