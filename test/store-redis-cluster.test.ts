/**
 * The Redis engine on a real Redis Cluster: three masters on loopback (cluster-enabled
 * redis-servers joined with `redis-cli --cluster create`), the shared suite against it,
 * and the key design checked slot by slot.
 */
import * as assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Cluster } from 'ioredis';
import { RedisStore } from '../src/store/redis';
import { deviceTag, Keys, SHARDS } from '../src/store/redis-keys';
import { type RedisCluster, startCluster } from './helpers/redis';
import { push, runStoreSuite, T0 } from './store-suite';

let shared: Promise<RedisCluster> | undefined;
const cluster = (): Promise<RedisCluster> => {
  shared ??= startCluster(3);
  return shared;
};
after(async () => {
  const c = await shared?.catch(() => undefined);
  await c?.stop();
});

let prefixes = 0;
const fresh = async (): Promise<RedisStore> => RedisStore.open((await cluster()).url(`c${++prefixes}`));

runStoreSuite('redis cluster', async () => {
  const store = await fresh();
  return { store, cleanup: () => store.close() };
});

/** A plain cluster client, to ask the servers where keys live. */
async function withAdmin<T>(fn: (c: Cluster) => Promise<T>): Promise<T> {
  const { ports } = await cluster();
  const c = new Cluster(
    ports.map((port) => ({ host: '127.0.0.1', port })),
    { lazyConnect: true },
  );
  await c.connect();
  try {
    return await fn(c);
  } finally {
    c.disconnect();
  }
}

describe('redis store on a cluster: key design', () => {
  it("every key of a device is in one slot, whatever the id's braces", async () => {
    const keys = new Keys('moor');
    await withAdmin(async (c) => {
      for (const id of ['plain', '}x', '{a}', '{}', 'a}b{c', '%7B', 'ďevice/☃']) {
        const tag = deviceTag(id);
        const slots = new Set<number>();
        for (const key of [...keys.device(tag), keys.record(tag)]) {
          slots.add(Number(await c.call('CLUSTER', 'KEYSLOT', key)));
        }
        assert.equal(slots.size, 1, `${id}: ${[...slots]}`);
      }
    });
  });

  it('the global shards spread over every master', async () => {
    const keys = new Keys('moor');
    await withAdmin(async (c) => {
      const owners = new Set<string>();
      const ranges = await c.cluster('SLOTS');
      for (let k = 0; k < SHARDS; k++) {
        for (const key of [keys.expiry(k), keys.depth(k)]) {
          const slot = Number(await c.call('CLUSTER', 'KEYSLOT', key));
          const r = ranges.find(([lo, hi]) => slot >= lo && slot <= hi);
          const owner = r?.[2];
          assert.ok(owner, `slot ${slot} is served`);
          owners.add(`${owner[0]}:${owner[1]}`);
        }
      }
      assert.equal(owners.size, 3);
    });
  });

  it('tricky ids work end to end (no CROSSSLOT), and devices land on every master', async () => {
    const s = await fresh();
    try {
      const ids = ['}x', '{a}', '{}', 'a}b{c', ...Array.from({ length: 60 }, (_, i) => `dev-${i}`)];
      const seqs = await s.append(ids.map((deviceId) => ({ deviceId, push: push({ id: deviceId, expiresAtMs: T0 + 5 }) })));
      assert.ok(seqs.every((q) => q === 1));
      for (const id of ids.slice(0, 4)) {
        assert.deepEqual(
          (await s.readAfter(id, 0, 10, T0)).pushes.map((p) => p.id),
          [id],
        );
      }
      await s.ack('}x', 1, []);
      assert.equal(await s.depth(), ids.length - 1);
      assert.equal(await s.sweepExpired(T0 + 5, 10_000), ids.length - 1);
      assert.equal(await s.depth(), 0);
      assert.equal(await s.ping(), true);
    } finally {
      await s.close();
    }
  });

  it('refuses a single-server URL pointing at a cluster node', async () => {
    const { ports } = await cluster();
    await assert.rejects(RedisStore.open(`redis://127.0.0.1:${ports[0]}?prefix=x`), (err: { code?: string; message: string }) => {
      assert.equal(err.code, 'STORE_CONFIG');
      assert.match(err.message, /cluster=1/);
      return true;
    });
  });
});
