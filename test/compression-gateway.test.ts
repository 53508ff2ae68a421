/**
 * Compression against the real gateway (test/helpers/gateway.ts): the negotiation matrix
 * (codecs x dictionaries held), dictionaries served on the device listener, compressed
 * device frames, the zip-bomb guard, corrupt frames (the worker lives on), and the client
 * library fetching the dictionary WELCOME points it to.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MoorClient } from '../src/client';
import { Codec, dictIdOf } from '../src/compression/codec';
import { ErrorCode, FrameType } from '../src/protocol/constants';
import { moor } from '../src/protocol/generated/moor';
import { BODIES, COMPRESSION_ARGS, deflate, feedSamples, nextPush, settle, type Trained, train } from './helpers/compression';
import { connect, expectError, expectFrame, type TransportName } from './helpers/device';
import { type Gateway, startGateway } from './helpers/gateway';
import { keepAlive } from './helpers/keep-alive';

let gw: Gateway;
let dict: Trained;
const { IDENTITY, LZ4, ZSTD } = moor.v1.Codec;

before(async () => {
  gw = await startGateway(COMPRESSION_ARGS, { workers: 2 });
  await feedSamples(gw, 150);
  dict = await train(gw);
  await settle();
});
after(async () => {
  await gw?.stop();
});

let n = 0;
const nextId = (p: string): string => `${p}-${n++}`;

describe('negotiation: codecs x dictionaries held', () => {
  const url = (id: number) => `http://127.0.0.1:${gw.wsPort}/v1/dicts/${id}`;
  const cases: Array<{ name: string; codecs: number[]; held: () => number[]; want: () => { codec: number; dictId: number; dictUrl: string }; wire: number }> = [
    { name: 'none listed', codecs: [], held: () => [], want: () => ({ codec: IDENTITY, dictId: 0, dictUrl: '' }), wire: Codec.IDENTITY },
    { name: 'identity', codecs: [IDENTITY], held: () => [dict.id], want: () => ({ codec: IDENTITY, dictId: 0, dictUrl: '' }), wire: Codec.IDENTITY },
    { name: 'lz4 only', codecs: [LZ4], held: () => [], want: () => ({ codec: LZ4, dictId: 0, dictUrl: '' }), wire: Codec.LZ4 },
    { name: 'lz4 only, holding the dictionary', codecs: [LZ4], held: () => [dict.id], want: () => ({ codec: LZ4, dictId: 0, dictUrl: '' }), wire: Codec.LZ4 },
    { name: 'zstd, no dictionary', codecs: [ZSTD], held: () => [], want: () => ({ codec: ZSTD, dictId: 0, dictUrl: url(dict.id) }), wire: Codec.ZSTD },
    { name: 'zstd, an unknown dictionary', codecs: [ZSTD], held: () => [99_999], want: () => ({ codec: ZSTD, dictId: 0, dictUrl: url(dict.id) }), wire: Codec.ZSTD },
    { name: 'zstd + lz4, holding the newest', codecs: [ZSTD, LZ4], held: () => [7, dict.id], want: () => ({ codec: ZSTD, dictId: dict.id, dictUrl: '' }), wire: Codec.ZSTD },
  ];
  for (const [i, c] of cases.entries()) {
    const t: TransportName = i % 2 ? 'tcp' : 'ws';
    test(`${c.name} (${t})`, async () => {
      const id = nextId('neg');
      const d = await connect(gw, t, id, { codecs: c.codecs, dictIds: c.held() });
      assert.deepEqual({ codec: d.welcome.codec, dictId: d.welcome.dictId, dictUrl: d.welcome.dictUrl }, c.want());
      const body = BODIES[i];
      assert.equal((await gw.api('POST', '/v1/push', { device_id: id, body_b64: body.toString('base64') })).status, 202);
      const p = await nextPush(d.conn);
      assert.equal(p.codec, c.wire, 'the codec on the wire');
      assert.equal(p.dictId, c.want().dictId, 'the dictionary the frame header names');
      assert.ok(Buffer.from(p.push.body).equals(body));
      d.conn.close();
    });
  }

  test('payloads below compression.min_bytes go out as they are', async () => {
    const id = nextId('small');
    const d = await connect(gw, 'ws', id, { codecs: [ZSTD], dictIds: [dict.id] });
    await gw.api('POST', '/v1/push', { device_id: id, body: 'hi' });
    const p = await nextPush(d.conn);
    assert.equal(p.codec, Codec.IDENTITY);
    assert.equal(p.push.body.toString(), 'hi');
    d.conn.close();
  });
});

describe('fan-out to sessions of different codecs', () => {
  test('a broadcast reaches every session once, each in its own encoding, on both transports', async () => {
    const kinds: Array<{ t: TransportName; codecs: number[]; held: () => number[]; wire: number; dictId: () => number }> = [
      { t: 'ws', codecs: [], held: () => [], wire: Codec.IDENTITY, dictId: () => 0 },
      { t: 'tcp', codecs: [ZSTD], held: () => [dict.id], wire: Codec.ZSTD, dictId: () => dict.id },
      { t: 'ws', codecs: [ZSTD], held: () => [dict.id], wire: Codec.ZSTD, dictId: () => dict.id },
      { t: 'tcp', codecs: [LZ4], held: () => [], wire: Codec.LZ4, dictId: () => 0 },
      { t: 'ws', codecs: [LZ4], held: () => [], wire: Codec.LZ4, dictId: () => 0 },
    ];
    const devs = await Promise.all(kinds.map((k) => connect(gw, k.t, nextId('bcast'), { codecs: k.codecs, dictIds: k.held() })));
    const body = BODIES[3];
    const r = await gw.api('POST', '/v1/push', { all: true, body_b64: body.toString('base64'), durable: false });
    assert.equal(r.status, 202);
    for (const [i, d] of devs.entries()) {
      const p = await nextPush(d.conn);
      assert.deepEqual([p.codec, p.dictId], [kinds[i].wire, kinds[i].dictId()], `${kinds[i].t} ${kinds[i].codecs}`);
      assert.ok(Buffer.from(p.push.body).equals(body));
    }
    // Exactly once each: a second, plain broadcast is the next push every session gets.
    await gw.api('POST', '/v1/push', { all: true, body: 'second', durable: false });
    for (const d of devs) assert.equal((await nextPush(d.conn)).push.body.toString(), 'second');
    for (const d of devs) d.conn.close();
  });
});

describe('dictionaries over HTTP', () => {
  test('GET /v1/dicts/{id} on the WebSocket listener (and resume ports) and on the API: bytes, ETag, immutable', async () => {
    const api = await gw.api('GET', `/v1/dicts/${dict.id}`, undefined, null);
    assert.equal(api.status, 200);
    for (const port of [gw.wsPort, ...gw.resumePorts]) {
      const res = await fetch(`http://127.0.0.1:${port}/v1/dicts/${dict.id}`);
      assert.equal(res.status, 200);
      const bytes = Buffer.from(await res.arrayBuffer());
      assert.ok(bytes.equals(dict.bytes));
      assert.equal(dictIdOf(bytes), dict.id);
      assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
      assert.equal(res.headers.get('etag'), api.headers.get('etag'), 'the same ETag on both listeners');
      const again = await fetch(`http://127.0.0.1:${port}/v1/dicts/${dict.id}`, { headers: { 'if-none-match': res.headers.get('etag')! } });
      assert.equal(again.status, 304);
    }
    // A 404 is the API's JSON error on both listeners.
    const viaApi = await gw.api('GET', '/v1/dicts/12345', undefined, null);
    assert.equal(viaApi.status, 404);
    for (const id of ['12345', '0']) {
      const res = await fetch(`http://127.0.0.1:${gw.wsPort}/v1/dicts/${id}`);
      assert.equal(res.status, 404);
      assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
      assert.deepEqual(await res.json(), { error: { code: 'NOT_FOUND', message: `no dictionary ${id}` } });
    }
    assert.deepEqual(viaApi.body, { error: { code: 'NOT_FOUND', message: 'no dictionary 12345' } });
    // A malformed id is bad input (400, as api.md has it), on both listeners alike.
    for (const id of ['nope', '-1', '4294967296', '12345678901', '1.5']) {
      const want = { error: { code: 'INVALID_PATH', message: `dictionary id "${id}" is not a decimal number 1-4294967295` } };
      const res = await fetch(`http://127.0.0.1:${gw.wsPort}/v1/dicts/${id}`);
      assert.equal(res.status, 400, id);
      assert.deepEqual(await res.json(), want);
      const api = await gw.api('GET', `/v1/dicts/${id}`, undefined, null);
      assert.equal(api.status, 400, id);
      assert.deepEqual(api.body, want);
    }
    // HEAD: headers and the GET's Content-Length, no body; the connection goes on.
    const [head, miss, other, after] = await keepAlive(gw.wsPort, [
      `HEAD /v1/dicts/${dict.id} HTTP/1.1\r\nHost: x\r\n\r\n`,
      'HEAD /v1/dicts/12345 HTTP/1.1\r\nHost: x\r\n\r\n',
      'HEAD /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n',
      `GET /v1/dicts/${dict.id} HTTP/1.1\r\nHost: x\r\n\r\n`,
    ]);
    assert.match(head, new RegExp(`^HTTP/1\\.1 200 [\\s\\S]*content-length: ${dict.bytes.length}\r\n`, 'i'));
    assert.match(miss, /^HTTP\/1\.1 404 /);
    assert.match(other, /^HTTP\/1\.1 404 /);
    for (const r of [head, miss, other]) assert.ok(r.endsWith('\r\n\r\n'), r);
    assert.ok(after.endsWith(dict.bytes.toString('latin1')), 'the GET after them gets the bytes');
    // Other methods are 405 as on the API; other paths a JSON 404 that names the endpoint.
    const post = await fetch(`http://127.0.0.1:${gw.wsPort}/v1/dicts/${dict.id}`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.equal(((await post.json()) as { error: { code: string } }).error.code, 'METHOD_NOT_ALLOWED');
    const elsewhere = await fetch(`http://127.0.0.1:${gw.wsPort}/elsewhere`);
    assert.equal(elsewhere.status, 404);
    assert.match(((await elsewhere.json()) as { error: { message: string } }).error.message, /WebSocket endpoint is \/ws/);
  });

  test('POST /v1/dicts needs the API key', async () => {
    assert.equal((await gw.api('POST', '/v1/dicts', {}, null)).status, 401);
    const bad = await gw.api('POST', '/v1/dicts', { max_bytes: 12 });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'INVALID_FIELD');
  });
});

describe('compressed frames from devices', () => {
  const sync = moor.v1.SyncRequest.encode({ afterSeq: 0, limit: 10 }).finish();

  test('zstd with the dictionary and lz4: answered like plain frames', async () => {
    for (const [codec, t, dictId] of [
      [Codec.ZSTD, 'ws', dict.id],
      [Codec.ZSTD, 'tcp', 0],
      [Codec.LZ4, 'tcp', 0],
    ] as const) {
      const d = await connect(gw, t, nextId('up'), { codecs: [ZSTD, LZ4], dictIds: [dict.id] });
      d.conn.sendFrame(FrameType.SYNC, deflate(codec, sync, dictId), { flags: codec });
      const done = moor.v1.SyncDone.decode(await expectFrame(d.conn, FrameType.SYNC_DONE));
      assert.equal(done.more, false);
      const req = moor.v1.Request.encode({ method: 'echo', body: BODIES[3] }).finish();
      d.conn.sendFrame(FrameType.REQUEST, deflate(codec, req, dictId), { flags: codec, stream: 5 });
      const res = await d.conn.nextFrame(3000);
      assert.equal(res.type, FrameType.RESPONSE);
      assert.equal(moor.v1.Response.decode(res.payload).status, 501, 'forwarded (no upstream configured: 501)');
      d.conn.close();
    }
  });

  test('a codec the session did not negotiate is UNSUPPORTED', async () => {
    const d = await connect(gw, 'ws', nextId('nocodec'), { codecs: [LZ4] });
    d.conn.sendFrame(FrameType.SYNC, deflate(Codec.ZSTD, sync), { flags: Codec.ZSTD });
    assert.equal((await expectError(d.conn)).code, ErrorCode.UNSUPPORTED);
  });

  test('bomb guard: more than max_frame once decompressed is FRAME_TOO_LARGE', async () => {
    const bomb = Buffer.alloc(1 << 20);
    for (const [codec, t] of [
      [Codec.ZSTD, 'ws'],
      [Codec.LZ4, 'tcp'],
    ] as const) {
      const d = await connect(gw, t, nextId('bomb'), { codecs: [ZSTD, LZ4] });
      const packed = deflate(codec, bomb);
      assert.ok(packed.length < 8192, `${packed.length} B on the wire`);
      d.conn.sendFrame(FrameType.REQUEST, packed, { flags: codec, stream: 1 });
      const e = await expectError(d.conn);
      assert.equal(e.code, ErrorCode.FRAME_TOO_LARGE);
      assert.match(e.message, /decompresses past max_frame/);
    }
  });

  test('a corrupt compressed frame is PROTOCOL_ERROR, and the worker lives on', async () => {
    const pids = [...gw.workerPids().values()].sort();
    const port = gw.resumePorts[0];
    const whole = deflate(Codec.ZSTD, BODIES[4], dict.id);
    for (const [codec, junk] of [
      [Codec.ZSTD, Buffer.from('this is not a zstd frame at all')],
      // Cut short (a fixed cut would be the whole frame once a dictionary compresses it well).
      [Codec.ZSTD, whole.subarray(0, whole.length - 5)],
      [Codec.LZ4, Buffer.from([0x10, 0xf0, 1, 2, 3])],
    ] as const) {
      const d = await connect(gw, 'ws', nextId('junk'), { codecs: [ZSTD, LZ4], dictIds: [dict.id] }, { port });
      d.conn.sendFrame(FrameType.SYNC, junk, { flags: codec });
      const e = await expectError(d.conn);
      assert.equal(e.code, ErrorCode.PROTOCOL_ERROR);
      assert.match(e.message, /corrupt (zstd|lz4) payload/);
    }
    // The same worker (its own resume port) still serves devices.
    const d = await connect(gw, 'ws', nextId('after'), { codecs: [ZSTD] }, { port });
    d.conn.sendFrame(FrameType.PING);
    await expectFrame(d.conn, FrameType.PONG);
    d.conn.close();
    assert.deepEqual([...gw.workerPids().values()].sort(), pids, 'no worker restarted');
    assert.equal(gw.proc.exitCode, null);
  });
});

describe('client library', () => {
  test('fetches the dictionary WELCOME.dict_url names, then decodes pushes compressed with it', async () => {
    const id = nextId('lib');
    const fetched: Array<{ id: number; bytes: Uint8Array }> = [];
    const make = (dictionaries: Uint8Array[]) =>
      new MoorClient({
        url: gw.wsUrl,
        deviceId: id,
        token: () => gw.token(id),
        codecs: [ZSTD, LZ4],
        dictionaries,
        onDictionary: (i, bytes) => {
          fetched.push({ id: i, bytes });
        },
        reconnect: { baseMs: 50, maxMs: 500 },
      });
    const first = make([]);
    const pushes: moor.v1.Push[] = [];
    first.on('push', (p) => pushes.push(p));
    const w1 = await first.connect();
    assert.equal(w1.codec, ZSTD);
    assert.equal(w1.dictId, 0);
    assert.match(w1.dictUrl, new RegExp(`/v1/dicts/${dict.id}$`));
    for (let i = 0; i < 50 && fetched.length === 0; i++) await settle(50);
    assert.equal(fetched.length, 1);
    assert.equal(fetched[0].id, dict.id);
    await first.close();

    const second = make([fetched[0].bytes]);
    second.on('push', (p) => pushes.push(p));
    const w2 = await second.connect();
    assert.equal(w2.dictId, dict.id);
    assert.equal(w2.dictUrl, '');
    for (const b of BODIES.slice(20, 25)) assert.equal((await gw.api('POST', '/v1/push', { device_id: id, body_b64: b.toString('base64') })).status, 202);
    for (let i = 0; i < 100 && pushes.length < 5; i++) await settle(30);
    assert.deepEqual(
      pushes.map((p) => Buffer.from(p.body).toString('base64')),
      BODIES.slice(20, 25).map((b) => b.toString('base64')),
    );
    await second.close();
  });
});
