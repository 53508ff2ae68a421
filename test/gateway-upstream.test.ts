/**
 * Device REQUEST frames forwarded upstream (api.md "Upstream"), on the real gateway:
 * the HTTP status and body come back as RESPONSE on the same stream id.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ErrorCode, FrameType } from '../src/protocol/constants';
import { moor } from '../src/protocol/generated/moor';
import { connect, expectFrame, TRANSPORTS } from './helpers/device';
import { type Gateway, startGateway } from './helpers/gateway';

interface Seen {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

let gw: Gateway;
let noUpstream: Gateway;
let upstream: http.Server;
const seen: Seen[] = [];

before(async () => {
  upstream = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      seen.push({ url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
      if (req.url === '/slow') return void setTimeout(() => res.end('late'), 3000);
      if (req.url === '/missing') {
        res.statusCode = 404;
        return void res.end('no such thing');
      }
      res.setHeader('content-type', 'application/octet-stream');
      res.end(Buffer.concat([Buffer.from('echo:'), ...chunks]));
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  const port = (upstream.address() as AddressInfo).port;
  [gw, noUpstream] = await Promise.all([
    startGateway([`--upstream.url=http://127.0.0.1:${port}`, '--upstream.timeout_ms=500']),
    startGateway([], { workers: 1 }),
  ]);
});
after(async () => {
  await Promise.all([gw?.stop(), noUpstream?.stop()]);
  upstream?.close();
});

async function request(g: Gateway, t: 'ws' | 'tcp', device: string, stream: number, req: moor.v1.IRequest): Promise<moor.v1.Response> {
  const d = await connect(g, t, device);
  d.conn.sendFrame(FrameType.REQUEST, moor.v1.Request.encode(req).finish(), { stream });
  const f = await d.conn.nextFrame(5000);
  assert.equal(f.type, FrameType.RESPONSE);
  assert.equal(f.stream, stream);
  d.conn.close();
  return moor.v1.Response.decode(f.payload);
}

describe('upstream forwarding', () => {
  for (const t of TRANSPORTS) {
    it(`a ${t} REQUEST becomes POST {upstream}/{method} with the device headers`, async () => {
      const res = await request(gw, t, `req-${t}`, 7, { method: 'orders.create', body: Buffer.from('{"sku":1}'), meta: { Trace: 'abc' } });
      assert.equal(res.status, 200);
      assert.equal(Buffer.from(res.body).toString(), 'echo:{"sku":1}');
      const s = seen.find((x) => x.headers['x-moor-device'] === `req-${t}`);
      assert.ok(s, 'upstream saw the request');
      assert.equal(s.url, '/orders.create');
      assert.equal(s.body.toString(), '{"sku":1}');
      assert.ok(String(s.headers['x-moor-session']).length > 0);
      assert.equal(s.headers['x-moor-meta-trace'], 'abc');
    });
  }

  it('the upstream status passes through', async () => {
    const res = await request(gw, 'ws', 'req-404', 3, { method: 'missing' });
    assert.equal(res.status, 404);
    assert.equal(Buffer.from(res.body).toString(), 'no such thing');
  });

  it('an upstream timeout answers 504', async () => {
    const res = await request(gw, 'tcp', 'req-slow', 9, { method: 'slow' });
    assert.equal(res.status, 504);
  });

  it('no upstream configured answers 501', async () => {
    const res = await request(noUpstream, 'ws', 'req-none', 1, { method: 'anything' });
    assert.equal(res.status, 501);
  });

  it('a REQUEST on a stream id still in flight is PROTOCOL_ERROR; one reused after its RESPONSE is fine', async () => {
    for (const t of TRANSPORTS) {
      const d = await connect(gw, t, `reuse-${t}`);
      const frame = (method: string) => moor.v1.Request.encode({ method, body: Buffer.from(method) }).finish();
      d.conn.sendFrame(FrameType.REQUEST, frame('echo'), { stream: 7 });
      const first = await d.conn.nextFrame(5000);
      assert.deepEqual([first.type, first.stream], [FrameType.RESPONSE, 7]);
      d.conn.sendFrame(FrameType.REQUEST, frame('echo'), { stream: 7 });
      assert.equal((await d.conn.nextFrame(5000)).stream, 7, 'reused after its RESPONSE');
      d.conn.sendFrame(FrameType.REQUEST, frame('slow'), { stream: 9 });
      d.conn.sendFrame(FrameType.REQUEST, frame('echo'), { stream: 9 });
      const err = moor.v1.Error.decode(await expectFrame(d.conn, FrameType.ERROR));
      assert.equal(err.code, ErrorCode.PROTOCOL_ERROR);
      assert.match(err.message, /stream 9 is still waiting/);
      await d.conn.closed(3000);
    }
  });

  it('REQUEST with stream 0 is a protocol error', async () => {
    const d = await connect(gw, 'ws', 'req-zero');
    d.conn.sendFrame(FrameType.REQUEST, moor.v1.Request.encode({ method: 'x' }).finish(), { stream: 0 });
    const e = moor.v1.Error.decode(await expectFrame(d.conn, FrameType.ERROR));
    assert.equal(e.code, 1);
  });
});
