/**
 * Fleet mode end to end: three gateway nodes (`moor serve --node.id=a|b|c`, own ports,
 * `--store.kind=redis`) on one Redis. Pushes cross nodes, one session per device across
 * nodes (REPLACED), operator kicks and topic fan-out reach other nodes, offline pushes wait
 * in Redis; a node that dies loses no durable push and, restarted, cleans up after itself.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { FleetKeys } from '../src/presence/redis-keys';
import { ErrorCode } from '../src/protocol/constants';
import { connect, expectError, expectPush, expectSilence } from './helpers/device';
import { eventually, fleetArgs, killNode, startNodes } from './helpers/fleet';
import { type Gateway, startGateway } from './helpers/gateway';
import { type RedisServer, startRedis } from './helpers/redis';

const PREFIX = 'fleet';
let redis: RedisServer;
let url: string;
let raw: Redis;
let a: Gateway;
let b: Gateway;
let c: Gateway;
const extra: Gateway[] = [];

before(async () => {
  redis = await startRedis({ args: ['--appendonly', 'yes'] });
  url = redis.url(PREFIX);
  raw = new Redis({ host: '127.0.0.1', port: redis.port });
  [a, b, c] = await startNodes(url, ['a', 'b', 'c'], [2, 1, 1]);
});
after(async () => {
  await Promise.all([a, b, c, ...extra].map((g) => g?.stop()));
  raw?.disconnect();
  await redis?.stop();
});

const push = (via: Gateway, body: Record<string, unknown>) => via.api('POST', '/v1/push', body);
const text = (p: { body: Uint8Array }) => Buffer.from(p.body).toString();

describe('fleet: three nodes on one Redis', () => {
  it('a push arriving at any node reaches the device on any node, durable and transient', async () => {
    const onB = await connect(b, 'ws', 'x-b');
    const onC = await connect(c, 'tcp', 'x-c');
    let r = await push(a, { device_id: 'x-b', body: 'a→b' });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual([r.body.online, r.body.seqs], [1, [1]]);
    assert.equal(text(await expectPush(onB.conn)), 'a→b');
    r = await push(b, { device_id: 'x-c', body: 'b→c', durable: false });
    assert.deepEqual([r.status, r.body.online], [202, 1]);
    const p = await expectPush(onC.conn);
    assert.deepEqual([p.seq, text(p)], [0, 'b→c']);
    // Several devices on several nodes in one push: one seq each, both online.
    r = await push(c, { device_ids: ['x-b', 'x-c', 'x-nowhere'], body: 'many' });
    assert.deepEqual([r.body.accepted, r.body.online, r.body.seqs], [3, 2, [2, 1, 1]]);
    assert.equal((await expectPush(onB.conn)).seq, 2);
    assert.equal((await expectPush(onC.conn)).seq, 1);
    onB.conn.close();
    onC.conn.close();
  });

  it('one session per device across nodes: a new HELLO on another node closes the old one with REPLACED', async () => {
    const first = await connect(a, 'tcp', 'mover');
    const second = await connect(b, 'ws', 'mover');
    assert.equal((await expectError(first.conn)).code, ErrorCode.REPLACED);
    const third = await connect(c, 'tcp', 'mover');
    assert.equal((await expectError(second.conn)).code, ErrorCode.REPLACED);
    const r = await push(a, { device_id: 'mover', body: 'to the newest' });
    assert.equal(r.body.online, 1);
    assert.equal(text(await expectPush(third.conn)), 'to the newest');
    const info = await a.api('GET', '/v1/devices/mover');
    assert.deepEqual([info.body.online, info.body.node, info.body.worker], [true, 'c', 0]);
    // The replaced sessions' goodbyes did not remove the newest one's presence.
    assert.equal((await push(b, { device_id: 'mover', body: 'still there', durable: false })).body.online, 1);
    assert.equal(text(await expectPush(third.conn)), 'still there');
    third.conn.close();
  });

  it('DELETE /v1/devices/{id}/session closes a session another node holds', async () => {
    const d = await connect(c, 'ws', 'kick-me');
    const r = await a.api('DELETE', '/v1/devices/kick-me/session');
    assert.equal(r.status, 204, JSON.stringify(r.body));
    assert.equal((await expectError(d.conn)).code, ErrorCode.REPLACED);
    await d.conn.closed(2000);
    await eventually('the device is offline', 3000, async () => (await b.api('GET', '/v1/devices/kick-me')).body.online === false);
    assert.equal((await a.api('DELETE', '/v1/devices/kick-me/session')).status, 404);
  });

  it('topic and broadcast pushes reach subscribers on every node', async () => {
    const devs = [];
    for (const [i, gw] of [a, b, c].entries()) {
      devs.push((await connect(gw, i === 1 ? 'tcp' : 'ws', `news-${i}`, { token: await gw.token(`news-${i}`, { topics: ['news'] }) })).conn);
    }
    const r = await push(b, { topic: 'news', body: 'headline' });
    assert.equal(r.status, 202);
    assert.ok(r.body.online >= 1, 'counts the subscribers of the node that took the push');
    for (const conn of devs) assert.equal(text(await expectPush(conn)), 'headline');
    await push(c, { all: true, body: 'everyone' });
    for (const conn of devs) assert.equal(text(await expectPush(conn)), 'everyone');
    for (const conn of devs) await expectSilence(conn, 100);
    for (const conn of devs) conn.close();
  });

  it('an offline device’s durable pushes wait in Redis for whichever node it connects to', async () => {
    for (const [gw, body] of [[a, 'one'], [b, 'two']] as const) {
      const r = await push(gw, { device_id: 'away', body });
      assert.deepEqual([r.status, r.body.online], [202, 0]);
    }
    const d = await connect(c, 'tcp', 'away');
    assert.equal(d.welcome.headSeq, 2);
    assert.deepEqual([text(await expectPush(d.conn)), text(await expectPush(d.conn))], ['one', 'two']);
    d.conn.close();
  });

  it('a node that dies: its devices count as offline at once, no durable push is lost, and restarted it removes what its previous boot left', async () => {
    const keys = new FleetKeys(PREFIX);
    const stays = await connect(c, 'ws', 'on-c-stays-away');
    const moves = await connect(c, 'tcp', 'on-c-moves');
    assert.match((await raw.get(keys.at('on-c-stays-away'))) ?? '', /^c\/0\//);
    await killNode(c);
    await Promise.all([stays.conn.closed(5000), moves.conn.closed(5000)]);
    // Its worker's channel has no subscriber any more: the push is stored, not lost in flight.
    const r = await push(a, { device_id: 'on-c-moves', body: 'kept' });
    assert.deepEqual([r.status, r.body.online, r.body.seqs], [202, 0, [1]]);
    const moved = await connect(b, 'ws', 'on-c-moves');
    assert.equal(text(await expectPush(moved.conn)), 'kept');
    moved.conn.close();
    // The dead boot's entry is still there (its liveness has not expired yet)...
    assert.match((await raw.get(keys.at('on-c-stays-away'))) ?? '', /^c\/0\//);
    const restarted = await startGateway(fleetArgs('c', url), { workers: 1 });
    extra.push(restarted);
    // ...until the node comes back: it removes its previous boot's entries at once.
    await restarted.waitForLog((l) => l.msg === "presence entries of this node's previous boot removed", 10_000);
    assert.equal(await raw.get(keys.at('on-c-stays-away')), null);
    const back = await connect(restarted, 'tcp', 'on-c-stays-away');
    assert.equal((await push(b, { device_id: 'on-c-stays-away', body: 'welcome back' })).body.online, 1);
    assert.equal(text(await expectPush(back.conn)), 'welcome back');
    back.conn.close();
  });
});
