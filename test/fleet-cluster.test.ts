/**
 * Fleet mode on a Redis Cluster: three masters on loopback (cluster mode, no replicas) and
 * two gateway nodes. Devices and worker channels spread over the masters, so pushes,
 * REPLACED, kicks and fan-out cross slots and shards; none of it may hit CROSSSLOT.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cluster } from 'ioredis';
import { FleetKeys } from '../src/presence/redis-keys';
import { ErrorCode } from '../src/protocol/constants';
import { connect, expectError, expectPush } from './helpers/device';
import { startNodes } from './helpers/fleet';
import type { Gateway } from './helpers/gateway';
import { type RedisCluster, startCluster } from './helpers/redis';

let cluster: RedisCluster;
let a: Gateway;
let b: Gateway;

before(async () => {
  cluster = await startCluster(3);
  [a, b] = await startNodes(cluster.url('fc'), ['a', 'b'], [2, 1]);
});
after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await cluster?.stop();
});

const text = (p: { body: Uint8Array }) => Buffer.from(p.body).toString();

describe('fleet: two nodes on a 3-master Redis Cluster', () => {
  it('pushes cross nodes for devices whose keys live on every master', async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `cd-${i}`);
    const devs = await Promise.all(ids.map((id, i) => connect(i % 2 ? b : a, i % 3 ? 'ws' : 'tcp', id)));
    const c = new Cluster([{ host: '127.0.0.1', port: cluster.ports[0] }], { lazyConnect: true });
    await c.connect();
    try {
      const keys = new FleetKeys('fc');
      const masters = new Set<string>();
      const slots = await c.cluster('SLOTS');
      for (const id of ids) {
        const slot = Number(await c.call('CLUSTER', 'KEYSLOT', keys.at(id)));
        const owner = slots.find(([lo, hi]) => slot >= lo && slot <= hi)?.[2];
        masters.add(`${owner?.[1]}`);
      }
      assert.equal(masters.size, 3, 'presence keys on every master');
    } finally {
      c.disconnect();
    }
    // Each device gets its push through the other node than the one holding it.
    for (const [i, id] of ids.entries()) {
      const r = await (i % 2 ? a : b).api('POST', '/v1/push', { device_id: id, body: `to ${id}` });
      assert.deepEqual([r.status, r.body.online], [202, 1], JSON.stringify(r.body));
    }
    for (const [i, d] of devs.entries()) assert.equal(text(await expectPush(d.conn)), `to ${ids[i]}`);
    const r = await a.api('POST', '/v1/push', { device_ids: ids, body: 'all of you', durable: false });
    assert.equal(r.body.online, ids.length);
    for (const d of devs) assert.equal(text(await expectPush(d.conn)), 'all of you');
    for (const d of devs) d.conn.close();
  });

  it('REPLACED across nodes, operator kicks and topic fan-out', async () => {
    const first = await connect(a, 'ws', 'c-mover', { token: await a.token('c-mover', { topics: ['t'] }) });
    const second = await connect(b, 'tcp', 'c-mover', { token: await b.token('c-mover', { topics: ['t'] }) });
    assert.equal((await expectError(first.conn)).code, ErrorCode.REPLACED);
    const sub = await connect(a, 'tcp', 'c-sub', { token: await a.token('c-sub', { topics: ['t'] }) });
    await b.api('POST', '/v1/push', { topic: 't', body: 'fan' });
    assert.equal(text(await expectPush(second.conn)), 'fan');
    assert.equal(text(await expectPush(sub.conn)), 'fan');
    assert.equal((await a.api('DELETE', '/v1/devices/c-mover/session')).status, 204);
    assert.equal((await expectError(second.conn)).code, ErrorCode.REPLACED);
    sub.conn.close();
  });
});
