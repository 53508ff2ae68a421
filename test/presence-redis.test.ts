/**
 * The Redis presence engine against real redis-servers (loopback, free ports): the shared
 * suite on one Redis and on a 3-master cluster, then what only a shared engine has to
 * prove: liveness per worker, the janitor after a worker dies, clean-up of a restarted
 * node's previous boot, keys in the right slots, and outages that answer fast.
 */
import * as assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import type { WorkerAddress } from '../src/presence/presence';
import { RedisPresence } from '../src/presence/redis';
import { FleetKeys } from '../src/presence/redis-keys';
import { deviceTag, Keys } from '../src/store/redis-keys';
import { parseRedisUrl } from '../src/store/redis-url';
import { type RedisCluster, type RedisServer, startCluster, startRedis } from './helpers/redis';
import { runPresenceSuite } from './presence-suite';

let single: Promise<RedisServer> | undefined;
let cluster: Promise<RedisCluster> | undefined;
const server = (): Promise<RedisServer> => (single ??= startRedis());
const clusterOf3 = (): Promise<RedisCluster> => (cluster ??= startCluster(3));
after(async () => {
  await (await single?.catch(() => undefined))?.stop();
  await (await cluster?.catch(() => undefined))?.stop();
});

let prefixes = 0;
const worker = (node: string, w: number, epoch: string): WorkerAddress => ({ node, worker: w, epoch });

async function openOn(url: string, self: WorkerAddress = worker('n1', 0, 'e1')): Promise<RedisPresence> {
  return RedisPresence.open(parseRedisUrl(url), self);
}

runPresenceSuite('redis', async () => {
  const presence = await openOn((await server()).url(`p${++prefixes}`));
  return { presence, owner: (w, sid) => ({ node: 'n1', worker: w, epoch: 'e1', sid }), cleanup: () => presence.close() };
});

runPresenceSuite('redis cluster', async () => {
  const presence = await openOn((await clusterOf3()).url(`c${++prefixes}`));
  return { presence, owner: (w, sid) => ({ node: 'n1', worker: w, epoch: 'e1', sid }), cleanup: () => presence.close() };
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('redis presence: liveness and clean-up', () => {
  it('liveness is one key per worker with a TTL; refresh says when it had lapsed', async () => {
    const srv = await server();
    const prefix = `p${++prefixes}`;
    const p = await openOn(srv.url(prefix, '&live_ttl_ms=400'));
    const raw = new Redis({ port: srv.port, host: '127.0.0.1' });
    try {
      assert.equal(await p.refresh(), false, 'the first renewal lost nothing');
      const name = 'n1/0/e1';
      const ttl = await raw.pttl(`${prefix}:live:{${name}}`);
      assert.ok(ttl > 0 && ttl <= 400, `pttl ${ttl}`);
      assert.ok(Number(await raw.hget(`${prefix}:workers`, name)) > 0);
      assert.equal(await p.alive(worker('n1', 0, 'e1')), true);
      assert.equal(await p.alive(worker('n1', 0, 'other')), false);
      assert.equal(await p.refresh(), false);
      await sleep(600);
      assert.equal(await p.alive(worker('n1', 0, 'e1')), false);
      assert.equal(await p.refresh(), true, 'lapsed: the caller claims its sessions again');
    } finally {
      raw.disconnect();
      await p.close();
    }
  });

  it('the janitor removes a dead worker’s entries (not those taken over since), one janitor per lease', async () => {
    const url = (await server()).url(`p${++prefixes}`, '&live_ttl_ms=1500');
    const dead = await openOn(url, worker('n1', 0, 'old'));
    const alive = await openOn(url, worker('n2', 0, 'e'));
    const third = await openOn(url, worker('n3', 0, 'e'));
    try {
      const ids = Array.from({ length: 2500 }, (_, i) => `d${i}`);
      await dead.register(ids.map((deviceId, i) => ({ deviceId, owner: { ...dead.self, sid: i + 1 } })));
      // Two devices moved to a live worker before the old one died.
      await alive.register(['d1', 'd2'].map((deviceId) => ({ deviceId, owner: { ...alive.self, sid: 1 } })));
      await Promise.all([dead.refresh(), alive.refresh(), third.refresh()]);
      assert.deepEqual(await alive.sweepDead(), { workers: [], entries: 0 }, 'everyone is alive');
      await sleep(1600);
      // The dead worker's liveness and the lease taken above have both expired.
      await Promise.all([alive.refresh(), third.refresh()]);
      const passes = await Promise.all([alive.sweepDead(), third.sweepDead()]);
      passes.sort((x, y) => y.entries - x.entries);
      assert.deepEqual(passes, [{ workers: ['n1/0/old'], entries: 2498 }, { workers: [], entries: 0 }], 'one of two concurrent janitors holds the lease');
      const left = await alive.lookup(ids);
      assert.equal(left.filter((o) => o !== null).length, 2);
      assert.equal(left[1]?.node, 'n2');
    } finally {
      await Promise.all([dead.close(), alive.close(), third.close()]);
    }
  });

  it('a restarted node removes its previous boot’s entries at once, even before they expire', async () => {
    const url = (await server()).url(`p${++prefixes}`);
    const before = await openOn(url, worker('n1', 0, 'boot1.a'));
    const sibling = await openOn(url, worker('n1', 1, 'boot1.b'));
    const now = await openOn(url, worker('n1', 0, 'boot2.c'));
    try {
      await before.refresh();
      await sibling.refresh();
      await before.register([{ deviceId: 'x', owner: { ...before.self, sid: 1 } }]);
      await sibling.register([{ deviceId: 'y', owner: { ...sibling.self, sid: 1 } }]);
      const r = await now.cleanWorkers((w) => w.node === 'n1' && w.worker === 0 && !w.epoch.startsWith('boot2.'));
      assert.deepEqual(r, { workers: ['n1/0/boot1.a'], entries: 1 });
      assert.deepEqual(await now.lookup(['x', 'y']), [null, { ...sibling.self, sid: 1 }]);
      assert.equal(await now.alive(before.self), false);
    } finally {
      await Promise.all([before.close(), sibling.close(), now.close()]);
    }
  });

  it('leave removes whatever still names the worker, and its liveness', async () => {
    const url = (await server()).url(`p${++prefixes}`);
    const p = await openOn(url, worker('n1', 0, 'e'));
    const q = await openOn(url, worker('n2', 0, 'e'));
    try {
      await p.refresh();
      await p.register([
        { deviceId: 'a', owner: { ...p.self, sid: 1 } },
        { deviceId: 'b', owner: { ...p.self, sid: 2 } },
      ]);
      await q.register([{ deviceId: 'b', owner: { ...q.self, sid: 1 } }]);
      assert.deepEqual(await p.leave(), { workers: ['n1/0/e'], entries: 1 });
      assert.deepEqual(await q.lookup(['a', 'b']), [null, { ...q.self, sid: 1 }]);
      assert.equal(await q.alive(p.self), false);
    } finally {
      await Promise.all([p.close(), q.close()]);
    }
  });
});

describe('redis presence: keys on a cluster', () => {
  it('a device’s presence key shares its inbox’s slot; a worker’s keys and channel share one slot', async () => {
    const { ports } = await clusterOf3();
    const c = new Cluster([{ host: '127.0.0.1', port: ports[0] }], { lazyConnect: true });
    await c.connect();
    try {
      const slot = async (k: string) => Number(await c.call('CLUSTER', 'KEYSLOT', k));
      const fk = new FleetKeys('moor');
      for (const id of ['plain', '}x', '{a}', 'ďevice']) {
        assert.equal(await slot(fk.at(id)), await slot(new Keys('moor').device(deviceTag(id))[0]), id);
      }
      const w = worker('gw-1', 3, 'k2x.1a');
      const slots = new Set([await slot(fk.index('gw-1/3/k2x.1a')), await slot(fk.live('gw-1/3/k2x.1a')), await slot(fk.channel(w))]);
      assert.equal(slots.size, 1);
    } finally {
      c.disconnect();
    }
  });
});

describe('redis presence: outages', () => {
  it('calls reject fast with STORE_UNAVAILABLE while Redis is down, and work again after it restarts', async () => {
    const srv = await startRedis({ args: ['--appendonly', 'yes'] });
    const p = await openOn(srv.url('out'));
    try {
      await p.register([{ deviceId: 'd', owner: { ...p.self, sid: 1 } }]);
      await srv.kill();
      for (const call of [() => p.lookup(['d']), () => p.register([{ deviceId: 'e', owner: { ...p.self, sid: 2 } }]), () => p.refresh()]) {
        const t = Date.now();
        await assert.rejects(call(), (err: { code?: string }) => err.code === 'STORE_UNAVAILABLE');
        assert.ok(Date.now() - t < 500);
      }
      await srv.restart();
      const deadline = Date.now() + 10_000;
      for (;;) {
        const r = await p.lookup(['d']).catch(() => null);
        if (r) {
          assert.deepEqual(r, [{ ...p.self, sid: 1 }]);
          break;
        }
        assert.ok(Date.now() < deadline, 'presence answers again');
        await sleep(50);
      }
    } finally {
      await p.close();
      await srv.stop();
    }
  });
});
