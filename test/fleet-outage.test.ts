/**
 * Fleet mode when Redis goes away: two gateway nodes on one Redis (AOF on), the server
 * killed and started again. Connected devices stay connected and heartbeating; pushes and
 * device lookups answer 503 + Retry-After (never a 202 for a push nobody stored); new
 * sessions are told to come back later; everything works again once Redis is back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { hello } from '../src/client/raw';
import { FleetKeys } from '../src/presence/redis-keys';
import { ErrorCode, FrameType } from '../src/protocol/constants';
import { connect, expectError, expectFrame, expectPush, open } from './helpers/device';
import { eventually, startNodes } from './helpers/fleet';
import type { Gateway } from './helpers/gateway';
import { type RedisServer, startRedis } from './helpers/redis';

let redis: RedisServer;
let a: Gateway;
let b: Gateway;

before(async () => {
  redis = await startRedis({ args: ['--appendonly', 'yes'] });
  [a, b] = await startNodes(redis.url('out', '&live_ttl_ms=1500&timeout_ms=500'), ['a', 'b']);
});
after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
});

const text = (p: { body: Uint8Array }) => Buffer.from(p.body).toString();

describe('fleet: Redis outage', () => {
  it('devices stay connected, pushes answer 503 + Retry-After, and everything recovers when Redis returns', async () => {
    const d1 = await connect(a, 'ws', 'o-1');
    const d2 = await connect(b, 'tcp', 'o-2');
    const leaves = await connect(b, 'ws', 'o-3');
    await redis.kill();

    for (const [via, body] of [
      [a, { device_id: 'o-2', body: 'durable' }],
      [a, { device_id: 'o-2', body: 'transient', durable: false }],
      [b, { topic: 'news', body: 'topic' }],
    ] as const) {
      const r = await via.api('POST', '/v1/push', body);
      assert.equal(r.status, 503, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'STORE_UNAVAILABLE');
      assert.equal(r.headers.get('retry-after'), '1');
    }
    assert.equal((await b.api('GET', '/v1/devices/o-1')).status, 503);
    assert.equal((await a.api('DELETE', '/v1/devices/o-2/session')).status, 503);

    // A new session is asked to come back later; one leaving now is forgotten once Redis is back.
    const late = await open(a, 'tcp');
    late.send(hello({ deviceId: 'o-late', token: await a.token('o-late') }));
    const refused = await expectError(late);
    assert.deepEqual([refused.code, refused.retryAfterMs > 0], [ErrorCode.OVERLOADED, true]);
    leaves.conn.close();

    // Longer than live_ttl_ms without Redis: connected devices still heartbeat.
    await new Promise((r) => setTimeout(r, 2000));
    for (const d of [d1, d2]) {
      d.conn.sendFrame(FrameType.PING, new Uint8Array(0));
      await expectFrame(d.conn, FrameType.PONG, 2000);
    }

    await redis.restart();
    // Each node's connections come back on their own schedule (backoff up to ~1 s).
    await eventually('node a accepts pushes again', 15_000, async () => (await a.api('POST', '/v1/push', { device_id: 'o-2', body: 'back' })).status === 202);
    assert.equal(text(await expectPush(d2.conn)), 'back');
    await eventually('node b accepts pushes again', 15_000, async () => (await b.api('POST', '/v1/push', { device_id: 'o-1', body: 'across' })).status === 202);
    assert.equal(text(await expectPush(d1.conn)), 'across');
    // The goodbye Redis missed was retried.
    await eventually('the device that left is offline', 5000, async () => (await a.api('POST', '/v1/push', { device_id: 'o-3', body: 'x', durable: false })).body.online === 0);
    const again = await connect(a, 'tcp', 'o-late');
    again.conn.close();
    d1.conn.close();
    d2.conn.close();
  });

  it('entries Redis lost (a wipe, a janitor after a stall) are claimed back, and what was stored meanwhile is replayed', async () => {
    const d = await connect(a, 'ws', 'lost-1');
    const keys = new FleetKeys('out');
    const raw = new Redis({ host: '127.0.0.1', port: redis.port });
    try {
      const owner = (await raw.get(keys.at('lost-1'))) ?? '';
      const name = owner.split('/').slice(0, 3).join('/');
      await raw.del(keys.at('lost-1'), keys.live(name));
      const r = await b.api('POST', '/v1/push', { device_id: 'lost-1', body: 'stored while lost' });
      assert.deepEqual([r.status, r.body.online], [202, 0]);
      // Without reconnecting: the worker's next renewal sees its liveness gone and claims back.
      assert.equal(text(await expectPush(d.conn, 5000)), 'stored while lost');
      await eventually('presence is back', 3000, async () => (await raw.get(keys.at('lost-1'))) === owner);
    } finally {
      raw.disconnect();
      d.conn.close();
    }
  });
});
