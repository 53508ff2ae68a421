/**
 * The Redis bus (sharded pub/sub) on one Redis and on a 3-master cluster: a message to a
 * worker reaches that worker only, says when nobody listens, keeps each sender's order,
 * broadcasts reach every worker, and subscriptions come back after Redis restarts.
 */
import * as assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { RedisBus } from '../src/bus/redis';
import type { WorkerAddress } from '../src/presence/presence';
import { connectWithin, createClient, type RedisClient } from '../src/store/redis-client';
import { parseRedisUrl } from '../src/store/redis-url';
import { type RedisCluster, type RedisServer, startCluster, startRedis } from './helpers/redis';
import { until } from './helpers/until';

let single: Promise<RedisServer> | undefined;
let cluster: Promise<RedisCluster> | undefined;
after(async () => {
  await (await single?.catch(() => undefined))?.stop();
  await (await cluster?.catch(() => undefined))?.stop();
});

const w = (node: string, worker: number): WorkerAddress => ({ node, worker, epoch: 'e1' });

interface Member {
  bus: RedisBus;
  got: string[];
}

async function fleetOf(url: string, addrs: WorkerAddress[]): Promise<{ members: Member[]; pub: RedisClient; close(): Promise<void> }> {
  const target = parseRedisUrl(url);
  const pub = createClient(target, { name: 'test-pub' });
  await connectWithin(pub, 2000);
  const members = await Promise.all(
    addrs.map(async (a) => {
      const bus = await RedisBus.open(target, a, pub);
      const m: Member = { bus, got: [] };
      bus.onMessage((b) => m.got.push(b.toString()));
      return m;
    }),
  );
  return {
    members,
    pub,
    async close() {
      await Promise.all(members.map((m) => m.bus.close()));
      pub.disconnect();
    },
  };
}

for (const kind of ['redis', 'redis cluster'] as const) {
  let n = 0;
  const url = async () => (kind === 'redis' ? (await (single ??= startRedis())).url(`b${++n}`) : (await (cluster ??= startCluster(3))).url(`b${++n}`));

  describe(`bus: ${kind}`, () => {
    it('sendTo reaches that worker only and says whether anyone listened', async () => {
      const f = await fleetOf(await url(), [w('a', 0), w('a', 1), w('b', 0)]);
      try {
        const [a0, a1, b0] = f.members;
        assert.equal(await a0.bus.sendTo(w('b', 0), Buffer.from('to b0')), true);
        assert.equal(await b0.bus.sendTo(w('a', 1), new Uint8Array(Buffer.from('xxto a1').subarray(2))), true);
        assert.equal(await a0.bus.sendTo({ node: 'b', worker: 0, epoch: 'older' }, Buffer.from('nobody')), false, 'a restarted worker is another address');
        assert.equal(await a0.bus.sendTo(w('c', 0), Buffer.from('nobody')), false);
        await until(() => b0.got.length === 1 && a1.got.length === 1, 3000, 'both to arrive', 20);
        assert.deepEqual([a0.got, a1.got, b0.got], [[], ['to a1'], ['to b0']]);
      } finally {
        await f.close();
      }
    });

    it('keeps each sender’s order; broadcast reaches every worker', async () => {
      const f = await fleetOf(await url(), [w('a', 0), w('b', 0), w('c', 0)]);
      try {
        const [a, b, c] = f.members;
        const sent = Array.from({ length: 200 }, (_, i) => `m${i}`);
        await Promise.all(sent.map((m) => a.bus.sendTo(w('b', 0), Buffer.from(m))));
        assert.equal(await c.bus.broadcast(Buffer.from('all')), 3);
        await until(() => b.got.length === 201 && a.got.length === 1 && c.got.length === 1, 3000, 'everything to arrive', 20);
        assert.deepEqual(
          b.got.filter((m) => m !== 'all'),
          sent,
        );
        assert.deepEqual([a.got, c.got], [['all'], ['all']]);
      } finally {
        await f.close();
      }
    });
  });
}

describe('bus: Redis restarts', () => {
  it('publishing fails fast with STORE_UNAVAILABLE while it is down; subscriptions come back with it', async () => {
    const srv = await startRedis();
    const f = await fleetOf(srv.url('r'), [w('a', 0), w('b', 0)]);
    try {
      const [a, b] = f.members;
      await srv.kill();
      await assert.rejects(a.bus.sendTo(w('b', 0), Buffer.from('lost')), (err: { code?: string }) => err.code === 'STORE_UNAVAILABLE');
      await srv.restart();
      await until(async () => (await a.bus.sendTo(w('b', 0), Buffer.from('back')).catch(() => false)) === true, 10_000, 'b to listen again', 20);
      await until(() => b.got.includes('back'), 3000, 'it to arrive', 20);
    } finally {
      await f.close();
      await srv.stop();
    }
  });
});
