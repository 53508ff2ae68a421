/**
 * The Redis engine against a real redis-server started here (loopback, free port, temp
 * dir): the shared suite, then what only a networked, shared engine has to prove: two
 * gateway nodes on one inbox, outages that answer fast and typed, recovery, durability
 * with appendfsync always, and the URL/server checks at open.
 */
import * as assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { storeUnavailable } from '../src/api/errors';
import type { Config } from '../src/config/types';
import { openStore } from '../src/store/index';
import { RedisStore } from '../src/store/redis';
import { deviceTag, Keys } from '../src/store/redis-keys';
import { type RedisServer, startRedis } from './helpers/redis';
import { push, runStoreSuite, T0 } from './store-suite';

let shared: Promise<RedisServer> | undefined;
/** One server for the file, started by the first test that needs it. */
const server = (): Promise<RedisServer> => {
  shared ??= startRedis();
  return shared;
};
after(async () => {
  const s = await shared?.catch(() => undefined);
  await s?.stop();
});

let prefixes = 0;
/** Each test gets its own key prefix on the shared server: a fresh, empty store. */
const fresh = async (params = ''): Promise<RedisStore> =>
  RedisStore.open((await server()).url(`t${++prefixes}`, params));

runStoreSuite('redis', async () => {
  const store = await fresh();
  return { store, cleanup: () => store.close() };
});

/** Resolves with the rejection (or fails if it resolved) and how long it took. */
async function rejection(p: Promise<unknown>): Promise<{ err: { code?: string; message: string }; ms: number }> {
  const t = Date.now();
  try {
    await p;
  } catch (err) {
    return { err: err as { code?: string; message: string }, ms: Date.now() - t };
  }
  assert.fail('expected a rejection');
}

async function eventually(what: string, ms: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('redis store: two gateway nodes on one Redis', () => {
  it('two stores appending to one device get unique, increasing seqs', async () => {
    const url = (await server()).url(`t${++prefixes}`);
    const [a, b] = await Promise.all([RedisStore.open(url), RedisStore.open(url)]);
    try {
      const n = 150;
      const appendAll = async (s: RedisStore, tag: string) => {
        const mine: number[] = [];
        for (let i = 0; i < n; ) {
          const p = (k: number) => push({ id: `${tag}-${k}`, body: Buffer.from(`${tag}-${k}`) });
          if (i % 5 === 0 && i + 1 < n) {
            // A batch with a bystander device in the middle: seqs stay per device.
            const seqs = await s.append([
              { deviceId: 'shared', push: p(i) },
              { deviceId: `bystander-${tag}`, push: p(i) },
              { deviceId: 'shared', push: p(i + 1) },
            ]);
            mine.push(seqs[0], seqs[2]);
            i += 2;
          } else {
            mine.push(...(await s.append([{ deviceId: 'shared', push: p(i) }])));
            i += 1;
          }
        }
        return mine;
      };
      const [seqsA, seqsB] = await Promise.all([appendAll(a, 'A'), appendAll(b, 'B')]);
      for (const s of [seqsA, seqsB]) {
        assert.equal(s.length, n);
        assert.ok(
          s.every((q, i) => i === 0 || q > s[i - 1]),
          'seqs go up within each node',
        );
      }
      assert.deepEqual(
        [...seqsA, ...seqsB].sort((x, y) => x - y),
        Array.from({ length: 2 * n }, (_, i) => i + 1),
      );
      const r = await b.readAfter('shared', 0, 1000, T0);
      assert.equal(r.pushes.length, 2 * n);
      for (const p of r.pushes) assert.equal(p.body.toString(), p.id);
      const bystanders = (await a.heads('bystander-A')).headSeq + (await a.heads('bystander-B')).headSeq;
      await b.depth(); // sends b's deltas now rather than within the second
      assert.equal(await a.depth(), 2 * n + bystanders);
      await a.ack('shared', 2 * n, []);
      // Each instance sends its deltas within a second (depth() sends its own at once).
      await a.depth();
      assert.equal(await b.depth(), bystanders, 'depth is shared, not per node');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('ids with braces and percent signs get their own keys, and one hash tag each', async () => {
    const s = await fresh();
    try {
      const ids = ['}x', '{a}', 'a}b', 'a%7Db', '%', '{}', 'x{y}z'];
      for (const [i, id] of ids.entries()) {
        await s.append(Array.from({ length: i + 1 }, () => ({ deviceId: id, push: push({ id }) })));
      }
      for (const [i, id] of ids.entries()) {
        const r = await s.readAfter(id, 0, 100, T0);
        assert.equal(r.headSeq, i + 1, id);
        assert.ok(r.pushes.every((p) => p.id === id));
      }
      assert.equal(deviceTag('a}b'), 'a%7Db');
      assert.equal(deviceTag('a%7Db'), 'a%257Db');
      for (const key of new Keys('moor').device(deviceTag('}x'))) assert.match(key, /^moor:\{%7Dx\}:/);
    } finally {
      await s.close();
    }
  });

  it('sweeps clear markers of acked pushes without counting them, across many devices', async () => {
    const s = await fresh();
    try {
      const items = Array.from({ length: 300 }, (_, i) => ({
        deviceId: `d${i}`,
        push: push({ expiresAtMs: T0 + 10 + (i % 3) }),
      }));
      await s.append(items);
      for (let i = 0; i < 300; i += 2) await s.ack(`d${i}`, 1, []);
      assert.equal(await s.depth(), 150);
      let swept = 0;
      for (let round = 0; round < 20; round++) swept += await s.sweepExpired(T0 + 20, 40);
      assert.equal(swept, 150);
      assert.equal(await s.depth(), 0);
      assert.equal(await s.sweepExpired(T0 + 20, 1000), 0);
    } finally {
      await s.close();
    }
  });

  it('idempotency answers get a real Redis expiry; forever ones get none', async () => {
    const srv = await server();
    const prefix = `t${++prefixes}`;
    const s = await RedisStore.open(srv.url(prefix));
    const { Redis } = await import('ioredis');
    const raw = new Redis({ port: srv.port, host: '127.0.0.1', lazyConnect: true });
    try {
      await raw.connect();
      await s.putIdempotent('k', '{"a":1}', Date.now() + 60_000);
      await s.putIdempotent('f', '{"a":2}', 0);
      const ttl = await raw.pttl(`${prefix}:idem:k`);
      assert.ok(ttl > 50_000 && ttl <= 60_000, `pttl ${ttl}`);
      assert.equal(await raw.pttl(`${prefix}:idem:f`), -1);
    } finally {
      raw.disconnect();
      await s.close();
    }
  });
});

describe('redis store: outages', () => {
  it('a killed Redis: every call rejects fast with STORE_UNAVAILABLE, then works again after a restart (appendfsync always kept the data)', async () => {
    const srv = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    const s = await RedisStore.open(srv.url('outage'));
    try {
      assert.deepEqual(await s.append([1, 2, 3].map(() => ({ deviceId: 'd', push: push() }))), [1, 2, 3]);
      const inFlight = s.append(Array.from({ length: 1000 }, (_, i) => ({ deviceId: `x${i}`, push: push() })));
      inFlight.catch(() => {});
      await srv.kill();
      // Whatever was in flight settles: stored, or STORE_UNAVAILABLE; never hanging.
      await inFlight.then(
        (seqs) => assert.equal(seqs.length, 1000),
        (err: { code?: string }) => assert.equal(err.code, 'STORE_UNAVAILABLE'),
      );
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['append', () => s.append([{ deviceId: 'd', push: push() }])],
        ['readAfter', () => s.readAfter('d', 0, 10, T0)],
        ['heads', () => s.heads('d')],
        ['ack', () => s.ack('d', 1, [])],
        ['sweepExpired', () => s.sweepExpired(T0, 10)],
        ['depth', () => s.depth()],
        ['getDevice', () => s.getDevice('d')],
        ['putIdempotent', () => s.putIdempotent('k', 'a', 0)],
        ['getMeta', () => s.getMeta('m')],
      ];
      for (const [name, call] of calls) {
        const { err, ms } = await rejection(call());
        assert.equal(err.code, 'STORE_UNAVAILABLE', `${name}: ${err.message}`);
        assert.ok(ms < 500, `${name} took ${ms} ms to fail`);
        assert.deepEqual(storeUnavailable(err), { retryAfterS: 1 }, 'the API answers 503 + Retry-After: 1');
      }
      assert.equal(await s.ping(), false);

      await srv.restart();
      await eventually('the store reconnects', 10_000, () => s.ping());
      assert.deepEqual(await s.heads('d'), { headSeq: 3, ackedSeq: 0 });
      assert.deepEqual(await s.append([{ deviceId: 'd', push: push() }]), [4]);
      assert.deepEqual(
        (await s.readAfter('d', 0, 10, T0)).pushes.map((p) => p.seq),
        [1, 2, 3, 4],
      );
    } finally {
      await s.close();
      await srv.stop();
    }
  });

  it('a Redis that stops answering: calls fail after timeout_ms, and work once it answers again', async () => {
    const srv = await startRedis();
    const s = await RedisStore.open(srv.url('frozen', '&timeout_ms=300'));
    try {
      await s.append([{ deviceId: 'd', push: push() }]);
      srv.freeze();
      const { err, ms } = await rejection(s.heads('d'));
      assert.equal(err.code, 'STORE_UNAVAILABLE', err.message);
      assert.match(err.message, /timed out/i);
      assert.ok(ms >= 250 && ms < 1500, `failed after ${ms} ms`);
      assert.equal(await s.ping(), false);
      srv.thaw();
      await eventually('the store answers again', 10_000, () => s.ping());
      assert.deepEqual(await s.heads('d'), { headSeq: 1, ackedSeq: 0 });
    } finally {
      srv.thaw();
      await s.close();
      await srv.stop();
    }
  });

  it('open rejects with STORE_UNAVAILABLE when nothing listens, within the timeout', async () => {
    const srv = await startRedis();
    const url = srv.url('gone', '&timeout_ms=500');
    await srv.stop();
    const { err, ms } = await rejection(RedisStore.open(url));
    assert.equal(err.code, 'STORE_UNAVAILABLE', err.message);
    assert.ok(ms < 2000, `took ${ms} ms`);
  });

  it('a closed store refuses work and pings false', async () => {
    const s = await fresh();
    assert.equal(await s.ping(), true);
    await s.close();
    await s.close(); // idempotent
    assert.equal(await s.ping(), false);
    await assert.rejects(s.heads('d'), /closed/);
  });
});

describe('redis store: open checks', () => {
  it('refuses a server that may evict keys', async () => {
    const srv = await server();
    const { Redis } = await import('ioredis');
    const raw = new Redis({ port: srv.port, host: '127.0.0.1', lazyConnect: true });
    await raw.connect();
    try {
      await raw.config('SET', 'maxmemory-policy', 'allkeys-lru');
      const { err } = await rejection(RedisStore.open(srv.url('evict')));
      assert.equal(err.code, 'STORE_CONFIG');
      assert.match(err.message, /maxmemory-policy allkeys-lru.*noeviction/);
    } finally {
      await raw.config('SET', 'maxmemory-policy', 'noeviction');
      raw.disconnect();
    }
  });

  it('refuses ?cluster=1 on a server that is not in cluster mode', async () => {
    const srv = await server();
    const { err } = await rejection(
      RedisStore.open(`redis://127.0.0.1:${srv.port}?cluster=1&prefix=c&timeout_ms=1000`),
    );
    assert.equal(err.code, 'STORE_CONFIG', err.message);
  });

  it('openStore picks the Redis engine for store.kind=redis', async () => {
    const srv = await server();
    const config = { store: { kind: 'redis', path: '', redis_url: srv.url(`t${++prefixes}`) } } as unknown as Config;
    const store = await openStore(config);
    try {
      assert.equal(store.kind, 'redis');
      assert.equal(await store.ping(), true);
    } finally {
      await store.close();
    }
  });

  it('openStore with store.kind=redis and no URL says the URL is required', async () => {
    const config = { store: { kind: 'redis', path: '', redis_url: '' } } as unknown as Config;
    await assert.rejects(openStore(config), (err: { code?: string; message: string }) => {
      assert.equal(err.code, 'STORE_CONFIG');
      assert.match(err.message, /store\.redis_url: is required/);
      return true;
    });
  });
});
