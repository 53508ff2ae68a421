/**
 * Dictionary versions against the real gateway: rollover (a device keeps decoding with
 * the older dictionary it holds), retirement past compression.dict_keep, deletion only
 * once no connected device uses a dictionary, `moor dict train`, and topic fan-out
 * encoding once per codec variant.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hello } from '../src/client/raw';
import { Codec } from '../src/compression/codec';
import { WORKERS_KEY } from '../src/compression/docs';
import { moor } from '../src/protocol/generated/moor';
import { EmbeddedStore } from '../src/store/embedded';
import { BODIES, COMPRESSION_ARGS, feedSamples, native, nextPush, settle, type Trained, train } from './helpers/compression';
import { connect, open } from './helpers/device';
import { API_KEY, type Gateway, startGateway } from './helpers/gateway';
import { until } from './helpers/until';

const { LZ4, ZSTD } = moor.v1.Codec;
const BIN = path.resolve(__dirname, '..', '..', 'bin', 'moor.js');

const dictStatus = async (gw: Gateway, id: number): Promise<number> => (await fetch(`http://127.0.0.1:${gw.wsPort}/v1/dicts/${id}`)).status;

describe('rollover and retirement (dict_keep = 2)', () => {
  let gw: Gateway;
  before(async () => {
    gw = await startGateway([...COMPRESSION_ARGS, '--compression.dict_keep=2'], { workers: 2 });
    await feedSamples(gw, 120);
  });
  after(async () => {
    await gw?.stop();
  });

  test('an older dictionary keeps decoding for devices that hold it; a retired one goes only once unused', async () => {
    const a: Trained = await train(gw);
    await settle();
    const x = await connect(gw, 'ws', 'roll-x', { codecs: [ZSTD], dictIds: [a.id] });
    assert.equal(x.welcome.dictId, a.id);

    // B by the CLI, as an operator would.
    const cli = await new Promise<{ code: number; out: string; err: string }>((resolve) =>
      execFile(process.execPath, [BIN, 'dict', 'train', '--url', `http://127.0.0.1:${gw.apiPort}`, '--key', API_KEY], (error, out, err) => resolve({ code: error ? Number(error.code) : 0, out, err })),
    );
    assert.equal(cli.code, 0, cli.err);
    const b = JSON.parse(cli.out) as { id: number; ratio_dict: number; ratio_plain: number; retired: number[] };
    assert.notEqual(b.id, a.id, 'same samples, same bytes: a fresh id all the same');
    assert.deepEqual(b.retired, []);
    assert.ok(b.ratio_dict > b.ratio_plain, cli.out);
    const bBytes = Buffer.from(await (await fetch(`http://127.0.0.1:${gw.wsPort}/v1/dicts/${b.id}`)).arrayBuffer());
    native.zstdLoadDict(bBytes, 3);
    await settle();

    // X still gets pushes compressed with A, the dictionary it holds.
    await gw.api('POST', '/v1/push', { device_id: 'roll-x', body_b64: BODIES[1].toString('base64') });
    let p = await nextPush(x.conn);
    assert.deepEqual([p.codec, p.dictId], [Codec.ZSTD, a.id]);
    assert.ok(Buffer.from(p.push.body).equals(BODIES[1]));
    // A device holding only A still gets A (two versions are kept) and is pointed to B.
    const y = await connect(gw, 'tcp', 'roll-y', { codecs: [ZSTD], dictIds: [a.id] });
    assert.equal(y.welcome.dictId, a.id);
    assert.match(y.welcome.dictUrl, new RegExp(`/v1/dicts/${b.id}$`));
    const z = await connect(gw, 'ws', 'roll-z', { codecs: [ZSTD], dictIds: [a.id, b.id] });
    assert.deepEqual([z.welcome.dictId, z.welcome.dictUrl], [b.id, ''], 'the newest both sides hold');
    z.conn.close();

    // C retires A (only two are kept): new sessions no longer get it...
    const c = await train(gw);
    await settle();
    const w = await connect(gw, 'ws', 'roll-w', { codecs: [ZSTD], dictIds: [a.id] });
    assert.equal(w.welcome.dictId, 0);
    assert.match(w.welcome.dictUrl, new RegExp(`/v1/dicts/${c.id}$`));
    w.conn.close();
    // ...but X and Y, connected with it, still decode with it, and it is not deleted.
    await gw.api('POST', '/v1/push', { device_id: 'roll-y', body_b64: BODIES[2].toString('base64') });
    p = await nextPush(y.conn);
    assert.deepEqual([p.codec, p.dictId], [Codec.ZSTD, a.id]);
    assert.ok(Buffer.from(p.push.body).equals(BODIES[2]));
    await settle(1500);
    assert.equal(await dictStatus(gw, a.id), 200, 'in use by connected devices: kept');
    x.conn.close();
    await settle(800);
    assert.equal(await dictStatus(gw, a.id), 200, 'Y still uses it');
    y.conn.close();
    await until(async () => (await dictStatus(gw, a.id)) === 404, 10_000, `dictionary ${a.id} to be deleted`);
    assert.equal(await dictStatus(gw, b.id), 200);
    assert.equal(await dictStatus(gw, c.id), 200);
    // A new device that still lists A gets no dictionary rather than a wrong one.
    const v = await connect(gw, 'tcp', 'roll-v', { codecs: [ZSTD], dictIds: [a.id, b.id] });
    assert.equal(v.welcome.dictId, b.id);
    v.conn.close();
  });

  test('a worker lost from the worker list (two registered at once) is back within a poll', async () => {
    // Two workers starting together can each write the list without the other; worker 0
    // would then delete a dictionary only the unlisted worker's devices hold.
    const store = await EmbeddedStore.open(gw.storePath);
    try {
      const listed = async (): Promise<string[]> => JSON.parse(String((await store.getMeta(WORKERS_KEY)) ?? '[]')) as string[];
      const names = await listed();
      assert.equal(names.length, 2, `both workers registered: ${names}`);
      await store.putMeta(WORKERS_KEY, Buffer.from(JSON.stringify(names.slice(0, 1))));
      await until(async () => (await listed()).length === 2, 5_000, 'the lost worker to re-register');
      assert.deepEqual((await listed()).sort(), [...names].sort());
    } finally {
      await store.close();
    }
  });

  test('training with too few samples is refused (409), nothing installed', async () => {
    const quiet = await startGateway([...COMPRESSION_ARGS, '--compression.dict_min_samples=100000'], { workers: 1 });
    try {
      await feedSamples(quiet, 5);
      const r = await quiet.api('POST', '/v1/dicts', {});
      assert.equal(r.status, 409);
      assert.equal(r.body.error.code, 'TOO_FEW_SAMPLES');
      const d = await connect(quiet, 'ws', 'few', { codecs: [ZSTD] });
      assert.deepEqual([d.welcome.dictId, d.welcome.dictUrl], [0, '']);
      d.conn.close();
    } finally {
      await quiet.stop();
    }
  });
});

describe('scheduled training', () => {
  test('worker 0 trains on its own when the newest dictionary is older than train_interval_ms', async () => {
    const gw = await startGateway([...COMPRESSION_ARGS, '--compression.train_interval_ms=1000'], { workers: 2 });
    try {
      await feedSamples(gw, 80);
      let welcome: moor.v1.Welcome | null = null;
      await until(
        async () => {
          const d = await connect(gw, 'ws', `sched-${Date.now()}`, { codecs: [ZSTD] });
          d.conn.close();
          welcome = d.welcome;
          return d.welcome.dictUrl !== '';
        },
        15_000,
        'a scheduled dictionary',
      );
      const id = Number(/\/(\d+)$/.exec(welcome!.dictUrl)![1]);
      assert.equal(await dictStatus(gw, id), 200);
      assert.ok(gw.logs.some((l) => l.msg === 'dictionary trained' && l.id === id));
    } finally {
      await gw.stop();
    }
  });
});

describe('topic fan-out', () => {
  let gw: Gateway;
  let dict: Trained;
  before(async () => {
    gw = await startGateway(COMPRESSION_ARGS, { workers: 1 });
    await feedSamples(gw, 80);
    dict = await train(gw);
    await settle();
  });
  after(async () => {
    await gw?.stop();
  });

  async function counters(): Promise<Record<string, number>> {
    const text = await (await fetch(`http://127.0.0.1:${gw.apiPort}/metrics`)).text();
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/^moor_compression_bytes_before_total\{codec="(\w+)"\} (\d+)/gm)) out[m[1]] = Number(m[2]);
    return out;
  }

  test('one encode per codec variant, whatever the number of devices; every device decodes it', async () => {
    const kinds = [
      { codecs: [ZSTD], dictIds: [dict.id], t: 'ws', wire: Codec.ZSTD },
      { codecs: [ZSTD, LZ4], dictIds: [dict.id], t: 'ws', wire: Codec.ZSTD },
      { codecs: [ZSTD], dictIds: [dict.id], t: 'tcp', wire: Codec.ZSTD },
      { codecs: [LZ4], dictIds: [], t: 'ws', wire: Codec.LZ4 },
      { codecs: [LZ4], dictIds: [], t: 'tcp', wire: Codec.LZ4 },
      { codecs: [], dictIds: [], t: 'ws', wire: Codec.IDENTITY },
      { codecs: [], dictIds: [], t: 'tcp', wire: Codec.IDENTITY },
    ] as const;
    const devices = [];
    for (const [i, k] of kinds.entries()) {
      const id = `fan-${i}`;
      const c = await open(gw, k.t);
      c.send(hello({ deviceId: id, token: await gw.token(id, { topics: ['deals'] }), codecs: [...k.codecs], dictIds: [...k.dictIds] }));
      await c.nextFrame(5000);
      devices.push({ conn: c, wire: k.wire });
    }
    const before = await counters();
    // A JSON notification of some size: lz4 (no dictionary) pays on it too.
    const body = BODIES.find((b) => b[0] === 0x7b && b.length > 600)!;
    const r = await gw.api('POST', '/v1/push', { topic: 'deals', body_b64: body.toString('base64') });
    assert.equal(r.status, 202);
    assert.equal(r.body.online, kinds.length);
    let payloadLength = 0;
    for (const d of devices) {
      const p = await nextPush(d.conn);
      assert.equal(p.codec, d.wire);
      if (p.codec === Codec.ZSTD) assert.equal(p.dictId, dict.id);
      assert.equal(p.push.topic, 'deals');
      assert.ok(Buffer.from(p.push.body).equals(body));
      payloadLength = moor.v1.Push.encode(p.push).finish().length;
    }
    const now = await counters();
    // Three devices in two variants ([zstd] and [zstd, lz4], with the dictionary) get the
    // same bytes: one zstd encode. Two lz4-only devices: one lz4 encode.
    assert.equal(now.zstd_dict - before.zstd_dict, payloadLength, 'one zstd encode for three devices');
    assert.equal(now.lz4 - before.lz4, payloadLength, 'one lz4 encode for two devices');
    for (const d of devices) d.conn.close();
  });
});
