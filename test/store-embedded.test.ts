/**
 * The embedded (lmdb) engine: the shared suite on a temp dir, plus what only a
 * multi-process, on-disk engine has to prove: concurrent writers from several
 * processes, reopening, and reads that see other processes' commits at once.
 */
import * as assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Config } from '../src/config/types';
import { EmbeddedStore } from '../src/store/embedded';
import { openStore } from '../src/store/index';
import { tempDir } from './helpers/temp-dir';
import { push, runStoreSuite, T0 } from './store-suite';

const run = promisify(execFile);
const CHILD = path.join(__dirname, 'store-child.js');

runStoreSuite('embedded', async () => {
  const t = await tempDir();
  const store = await EmbeddedStore.open(t.dir);
  return {
    store,
    async cleanup() {
      await store.close();
      await t.cleanup();
    },
  };
});

describe('embedded store: processes and restarts', () => {
  it('two processes appending to one device get unique, increasing seqs', async () => {
    const t = await tempDir();
    try {
      const n = 150;
      const [a, b] = await Promise.all(
        ['A', 'B'].map((tag) => run(process.execPath, [CHILD, 'append', t.dir, 'shared', String(n), tag])),
      );
      const seqsA = JSON.parse(a.stdout) as number[];
      const seqsB = JSON.parse(b.stdout) as number[];
      for (const s of [seqsA, seqsB]) {
        assert.equal(s.length, n);
        assert.ok(
          s.every((q, i) => i === 0 || q > s[i - 1]),
          'seqs go up within each process',
        );
      }
      const all = [...seqsA, ...seqsB].sort((x, y) => x - y);
      assert.deepEqual(
        all,
        Array.from({ length: 2 * n }, (_, i) => i + 1),
      );
      const store = await EmbeddedStore.open(t.dir);
      try {
        const r = await store.readAfter('shared', 0, 1000, T0);
        assert.equal(r.pushes.length, 2 * n);
        assert.equal(r.headSeq, 2 * n);
        for (const p of r.pushes) assert.equal(p.body.toString(), p.id);
        const byA = (await store.heads('bystander-A')).headSeq;
        const byB = (await store.heads('bystander-B')).headSeq;
        assert.ok(byA > 0 && byB > 0);
        assert.equal(await store.depth(), 2 * n + byA + byB);
      } finally {
        await store.close();
      }
    } finally {
      await t.cleanup();
    }
  });

  it('reopening keeps seqs increasing, even after everything was acked', async () => {
    const t = await tempDir();
    try {
      let store = await EmbeddedStore.open(t.dir);
      await store.append([1, 2, 3].map(() => ({ deviceId: 'd', push: push() })));
      await store.ack('d', 3, []);
      await store.putMeta('m', Buffer.from([9]));
      await store.close();
      store = await EmbeddedStore.open(t.dir);
      try {
        assert.deepEqual(await store.heads('d'), { headSeq: 3, ackedSeq: 3 });
        assert.deepEqual(await store.append([{ deviceId: 'd', push: push() }]), [4]);
        assert.equal(await store.depth(), 1);
        assert.deepEqual(await store.getMeta('m'), Buffer.from([9]));
      } finally {
        await store.close();
      }
    } finally {
      await t.cleanup();
    }
  });

  it("a read sees another process's commit in the same event turn", async () => {
    const t = await tempDir();
    const store = await EmbeddedStore.open(t.dir);
    try {
      await store.append([{ deviceId: 'other', push: push() }]);
      // Both calls run synchronously up to their first await, so one turn holds both
      // reads and the blocking child in between: lmdb-js would serve the second read
      // from the first read's snapshot unless the store renews it.
      const before = store.readAfter('vis', 0, 10, T0);
      const child = spawnSync(process.execPath, [CHILD, 'append', t.dir, 'vis', '1', 'C'], {
        encoding: 'utf8',
      });
      const after = store.readAfter('vis', 0, 10, T0);
      const headsNow = store.heads('vis');
      assert.equal(child.status, 0, child.stderr);
      assert.deepEqual(JSON.parse(child.stdout), [1]);
      assert.equal((await before).pushes.length, 0);
      assert.deepEqual(
        (await after).pushes.map((p) => p.id),
        ['C-0'],
      );
      assert.deepEqual(await headsNow, { headSeq: 1, ackedSeq: 0 });
    } finally {
      await store.close();
      await t.cleanup();
    }
  });

  it('sweepExpired also drops expired idempotency answers', async () => {
    const t = await tempDir();
    const store = await EmbeddedStore.open(t.dir);
    try {
      await store.putIdempotent('k', 'a', T0 + 10);
      await store.putIdempotent('k2', 'b', T0 + 20);
      assert.equal(await store.sweepExpired(T0 + 10, 10), 0); // not a push: not counted
      assert.equal(await store.getIdempotent('k', T0), null); // gone even for an older clock
      assert.equal(await store.getIdempotent('k2', T0), 'b');
    } finally {
      await store.close();
      await t.cleanup();
    }
  });

  it('a closed store refuses work and pings false', async () => {
    const t = await tempDir();
    const store = await EmbeddedStore.open(t.dir);
    assert.equal(await store.ping(), true);
    await store.close();
    await store.close(); // idempotent
    assert.equal(await store.ping(), false);
    await assert.rejects(store.heads('d'), /closed/);
    await t.cleanup();
  });
});

describe('openStore', () => {
  const config = (kind: 'embedded' | 'redis', p: string) =>
    ({ store: { kind, path: p, redis_url: '' } }) as unknown as Config;

  it('opens the embedded engine under store.path', async () => {
    const t = await tempDir();
    const store = await openStore(config('embedded', t.dir));
    try {
      assert.equal(store.kind, 'embedded');
      assert.equal(await store.ping(), true);
    } finally {
      await store.close();
      await t.cleanup();
    }
  });
});
