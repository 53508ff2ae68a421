/**
 * The embedded store's writer thread (src/store/embedded-writer.ts): group commit keeps
 * each request's failure to itself, close waits for writes in flight, and a lost thread
 * fails its writes with STORE_UNAVAILABLE and is replaced on the next write.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { storeUnavailable } from '../src/api/errors';
import { EmbeddedStore } from '../src/store/embedded';
import { devKey } from '../src/store/embedded-layout';
import { StoreWriter } from '../src/store/embedded-writer-client';
import { encodePush } from '../src/store/push-record';
import { tempDir } from './helpers/temp-dir';
import { push, T0 } from './store-suite';

const appendOp = (deviceId: string, id: string) => ({
  op: 'append' as const,
  items: [{ dev: devKey(deviceId), record: encodePush(push({ id })), expiresAt: 0 }],
});

describe('embedded store writer thread', () => {
  it('requests committed together fail alone: a bad one rolls back, its neighbours are stored', async () => {
    const t = await tempDir('moor-writer-');
    const writer = new StoreWriter(t.dir);
    try {
      // Sent in one turn, so the thread takes them in one transaction. The middle one
      // names a key lmdb refuses (over 1,978 bytes): validation is skipped on purpose.
      const results = await Promise.allSettled([
        writer.run(appendOp('d', 'one')),
        writer.run({ op: 'idem', key: Buffer.alloc(4000, 0x61), value: Buffer.alloc(9), expiresAtMs: 0 }),
        writer.run(appendOp('d', 'two')),
      ]);
      assert.deepEqual(results[0], { status: 'fulfilled', value: [1] });
      assert.equal(results[1].status, 'rejected');
      assert.deepEqual(results[2], { status: 'fulfilled', value: [2] });
    } finally {
      await writer.close();
    }
    const store = await EmbeddedStore.open(t.dir);
    try {
      const r = await store.readAfter('d', 0, 10, T0);
      assert.deepEqual(
        r.pushes.map((p) => [p.seq, p.id]),
        [
          [1, 'one'],
          [2, 'two'],
        ],
      );
      assert.equal(await store.depth(), 2);
    } finally {
      await store.close();
      await t.cleanup();
    }
  });

  it('close waits for the writes already sent', async () => {
    const t = await tempDir('moor-writer-');
    let store = await EmbeddedStore.open(t.dir);
    const appends = Array.from({ length: 50 }, (_, i) => store.append([{ deviceId: `c${i % 5}`, push: push({ id: `p${i}` }) }]));
    await store.close();
    assert.equal((await Promise.all(appends)).length, 50);
    store = await EmbeddedStore.open(t.dir);
    try {
      assert.equal(await store.depth(), 50);
      assert.deepEqual(await store.heads('c0'), { headSeq: 10, ackedSeq: 0 });
    } finally {
      await store.close();
      await t.cleanup();
    }
  });

  it('a lost thread fails its writes with STORE_UNAVAILABLE; the next write starts a new one', async () => {
    const t = await tempDir('moor-writer-');
    const writer = new StoreWriter(t.dir);
    try {
      assert.deepEqual(await writer.run(appendOp('d', 'before')), [1]);
      // Stop the thread the way a crash would, with a write sent after it stopped reading.
      const worker = (writer as unknown as { worker: { terminate(): Promise<number> } }).worker;
      const stopped = worker.terminate();
      const lost = writer.run(appendOp('d', 'lost'));
      await assert.rejects(lost, (err: Error & { code?: string }) => {
        assert.equal(err.code, 'STORE_UNAVAILABLE');
        assert.equal(err.name, 'StoreWriterLostError');
        assert.deepEqual(storeUnavailable(err), { retryAfterS: 1 });
        return true;
      });
      await stopped;
      // Not stored, so the head did not move: the next push takes seq 2.
      assert.deepEqual(await writer.run(appendOp('d', 'after')), [2]);
    } finally {
      await writer.close();
      await t.cleanup();
    }
  });
});
