import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { type ForwardRequest, isSafeMethod, UpstreamForwarder, upstreamHeaders } from '../src/upstream/forwarder';

const MAX_BODY = 1024;

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A business backend: records requests, answers by path. */
const seen: Seen[] = [];
const held: http.ServerResponse[] = [];
const slow: http.ServerResponse[] = [];
let connections = 0;
const upstream = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
    const path = (req.url ?? '').replace(/^\/rpc/, '');
    if (path === '/echo' || path === '/orders/create') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(Buffer.concat([Buffer.from('echo:'), body]));
    } else if (path === '/teapot') {
      res.writeHead(418);
      res.end('short and stout');
    } else if (path === '/empty') {
      res.writeHead(204);
      res.end();
    } else if (path === '/redirect') {
      res.writeHead(302, { location: '/elsewhere' });
      res.end('moved');
    } else if (path === '/big') {
      res.end(Buffer.alloc(MAX_BODY + 1, 0x61));
    } else if (path === '/big-chunked') {
      res.writeHead(200);
      for (let i = 0; i < 4; i++) res.write(Buffer.alloc(MAX_BODY / 2, 0x62));
      res.end();
    } else if (path === '/exact') {
      res.end(Buffer.alloc(MAX_BODY, 0x63));
    } else if (path === '/slow') {
      slow.push(res);
    } else if (path === '/hold') {
      held.push(res);
    } else {
      res.writeHead(404);
      res.end('no such method');
    }
  });
});
upstream.on('connection', () => connections++);

let url: string;

before(async () => {
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
after(async () => {
  for (const r of [...held, ...slow]) r.destroy();
  upstream.closeAllConnections();
  await new Promise<void>((r) => upstream.close(() => r()));
});
beforeEach(() => {
  seen.length = 0;
});

const fwd = (over: Partial<ConstructorParameters<typeof UpstreamForwarder>[0]> = {}): UpstreamForwarder =>
  new UpstreamForwarder({ url, timeoutMs: 2000, concurrency: 8, maxBody: MAX_BODY, ...over });

const request = (method: string, over: Partial<ForwardRequest> = {}): ForwardRequest => ({
  method,
  body: Buffer.from('payload'),
  meta: {},
  deviceId: 'dev-1',
  sessionId: 'w0-42',
  ...over,
});

describe('UpstreamForwarder', () => {
  test('POSTs the raw body to {url}/{method} with the x-moor headers; answer passed through', async () => {
    const body = Buffer.from([0, 1, 2, 0xff]);
    const r = await fwd().forward(
      request('echo', { body, meta: { Trace: 'abc-123', 'bad key': 'x', nl: 'a\r\nb', uni: 'é', empty: '' } }),
    );
    assert.equal(r.status, 200);
    assert.equal(r.error, '');
    assert.deepEqual(r.body, Buffer.concat([Buffer.from('echo:'), body]));
    assert.equal(seen.length, 1);
    const s = seen[0]!;
    assert.equal(s.method, 'POST');
    assert.equal(s.url, '/echo');
    assert.deepEqual(s.body, body);
    assert.equal(s.headers['content-type'], 'application/octet-stream');
    assert.equal(s.headers['x-moor-device'], 'dev-1');
    assert.equal(s.headers['x-moor-session'], 'w0-42');
    assert.equal(s.headers['x-moor-meta-trace'], 'abc-123');
    assert.equal(s.headers['x-moor-meta-empty'], '');
    const metaKeys = Object.keys(s.headers).filter((k) => k.startsWith('x-moor-meta-'));
    assert.deepEqual(metaKeys.sort(), ['x-moor-meta-empty', 'x-moor-meta-trace']);
  });

  test('a base URL with a path and trailing slash; methods with segments', async () => {
    const r = await fwd({ url: `${url}/rpc/` }).forward(request('orders/create'));
    assert.equal(r.status, 200);
    assert.equal(seen[0]!.url, '/rpc/orders/create');
  });

  test('a device id that is not header-safe is percent-encoded', () => {
    const h = upstreamHeaders(request('x', { deviceId: 'dév\n1' }));
    assert.equal(h['x-moor-device'], encodeURIComponent('dév\n1'));
  });

  test('upstream statuses and bodies come back as they are (4xx, 204, 3xx not followed)', async () => {
    const f = fwd();
    const tea = await f.forward(request('teapot'));
    assert.deepEqual([tea.status, tea.body.toString(), tea.error], [418, 'short and stout', '']);
    const missing = await f.forward(request('nope'));
    assert.deepEqual([missing.status, missing.body.toString()], [404, 'no such method']);
    const empty = await f.forward(request('empty'));
    assert.deepEqual([empty.status, empty.body.length], [204, 0]);
    const moved = await f.forward(request('redirect'));
    assert.equal(moved.status, 302);
    assert.equal(seen.length, 4, 'the redirect was not followed');
  });

  test('no upstream.url → 501 without a request', async () => {
    const r = await fwd({ url: '' }).forward(request('echo'));
    assert.equal(r.status, 501);
    assert.match(r.error, /no upstream/);
    assert.equal(seen.length, 0);
  });

  test('unsafe methods → 400 without calling the upstream', async () => {
    const f = fwd();
    for (const m of ['', '../admin', 'a/../b', 'a/./b', '.', '..', '/abs', 'a//b', 'a/', 'a b', 'a?b', 'a#b', 'a%2Fb', 'é', 'x'.repeat(257)]) {
      const r = await f.forward(request(m));
      assert.equal(r.status, 400, JSON.stringify(m));
      assert.match(r.error, /bad method/);
    }
    assert.equal(seen.length, 0);
    for (const m of ['echo', 'v1/orders.create', 'a-b_c~d', '.well-known', 'x'.repeat(256)]) assert.ok(isSafeMethod(m), m);
  });

  test('timeout → 504', async () => {
    const t0 = Date.now();
    const r = await fwd({ timeoutMs: 150 }).forward(request('slow'));
    assert.equal(r.status, 504);
    assert.match(r.error, /timeout after 150 ms/);
    assert.ok(Date.now() - t0 < 1500);
  });

  test('connection refused → 502', async () => {
    const probe = http.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const r = await fwd({ url: `http://127.0.0.1:${port}` }).forward(request('echo'));
    assert.equal(r.status, 502);
    assert.match(r.error, /unreachable: ECONNREFUSED/);
  });

  test('a body over the limit → 502, declared or streamed; exactly the limit passes', async () => {
    const f = fwd();
    for (const m of ['big', 'big-chunked']) {
      const r = await f.forward(request(m));
      assert.equal(r.status, 502, m);
      assert.equal(r.error, 'upstream body too large');
      assert.equal(r.body.length, 0);
    }
    const ok = await f.forward(request('exact'));
    assert.equal(ok.status, 200);
    assert.equal(ok.body.length, MAX_BODY);
    assert.equal(f.inFlight, 0);
  });

  test('over the concurrency limit → 503 at once; slots are given back', async () => {
    const f = fwd({ concurrency: 2 });
    const a = f.forward(request('hold'));
    const b = f.forward(request('hold'));
    assert.equal(f.inFlight, 2);
    const t0 = Date.now();
    const c = await f.forward(request('echo'));
    assert.equal(c.status, 503);
    assert.match(c.error, /busy/);
    assert.ok(Date.now() - t0 < 100);
    while (held.length < 2) await new Promise((r) => setTimeout(r, 5));
    for (const res of held.splice(0)) res.end('released');
    assert.deepEqual(
      (await Promise.all([a, b])).map((r) => [r.status, r.body.toString()]),
      [
        [200, 'released'],
        [200, 'released'],
      ],
    );
    assert.equal(f.inFlight, 0);
    assert.equal((await f.forward(request('echo'))).status, 200);
  });

  test('connections are kept alive between requests', async () => {
    const f = fwd();
    await f.forward(request('echo'));
    const before = connections;
    for (let i = 0; i < 10; i++) assert.equal((await f.forward(request('echo'))).status, 200);
    assert.equal(connections, before);
  });

  test('the constructor refuses bad options with a hint', () => {
    assert.throws(() => fwd({ url: 'not a url' }), /not a URL/);
    assert.throws(() => fwd({ url: 'ftp://x' }), /http:\/\/ or https:\/\//);
    assert.throws(() => fwd({ url: `${url}/?q=1` }), /query/);
    assert.throws(() => fwd({ concurrency: 0 }), /concurrency/);
    assert.throws(() => fwd({ timeoutMs: 0 }), /timeout_ms/);
  });
});
