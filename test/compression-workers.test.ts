/**
 * Compression across workers (2 workers, dictionary index polled only every 60 s): a push
 * is one training sample whichever workers deliver it, and a dictionary POST /v1/dicts
 * answers with is held by every worker at once, so a device that fetched it may use it
 * in frames to any of them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Codec } from '../src/compression/codec';
import { FrameType } from '../src/protocol/constants';
import { moor } from '../src/protocol/generated/moor';
import { BODIES, COMPRESSION_ARGS, deflate, train } from './helpers/compression';
import { connect, expectPush } from './helpers/device';
import { type Gateway, startGateway } from './helpers/gateway';

const { ZSTD } = moor.v1.Codec;

describe('compression with two workers', () => {
  let gw: Gateway;
  before(async () => {
    gw = await startGateway([...COMPRESSION_ARGS, '--compression.dict_poll_ms=60000'], { workers: 2 });
  });
  after(async () => {
    await gw?.stop();
  });

  test('a push delivered by both workers is one sample; the new dictionary works on both at once', async () => {
    const devices = await Promise.all(gw.resumePorts.map((port, k) => connect(gw, 'ws', `cw-${k}`, {}, { port })));
    const pushes = 60;
    for (let i = 0; i < pushes; i++) {
      const r = await gw.api('POST', '/v1/push', { device_ids: ['cw-0', 'cw-1'], body_b64: BODIES[i % BODIES.length].toString('base64'), durable: false });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      assert.equal(r.body.online, 2);
    }
    for (const d of devices) for (let i = 0; i < pushes; i++) await expectPush(d.conn);
    const dict = await train(gw);
    const made = await gw.api('GET', `/v1/dicts/${dict.id}`, undefined, null);
    assert.equal(made.status, 200);
    // Training answered with the sample count; read it back through a second training.
    const again = await gw.api('POST', '/v1/dicts', {});
    assert.equal(again.status, 201, JSON.stringify(again.body));
    assert.equal(again.body.samples, pushes, 'one sample per push, not one per delivering worker');

    // The index poll is a minute away: every worker must hold the dictionary already.
    const req = moor.v1.Request.encode({ method: 'echo', body: BODIES[3] }).finish();
    for (const [k, port] of gw.resumePorts.entries()) {
      const d = await connect(gw, 'ws', `cw-use-${k}`, { codecs: [ZSTD], dictIds: [dict.id, again.body.id as number] }, { port });
      assert.equal(d.welcome.dictId, again.body.id, `worker ${k} offers the newest dictionary`);
      d.conn.sendFrame(FrameType.REQUEST, deflate(Codec.ZSTD, req, dict.id), { flags: Codec.ZSTD, stream: 3 });
      const res = await d.conn.nextFrame(3000);
      assert.equal(res.type, FrameType.RESPONSE, `worker ${k} decoded a frame naming the dictionary (got frame type ${res.type})`);
      d.conn.close();
    }
    for (const d of devices) d.conn.close();
  });
});
