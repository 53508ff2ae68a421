import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { DeviceInfo, PushCommand, PushOutcome } from '../src/api/backend';
import { ApiError } from '../src/api/errors';
import { type ApiLogger, type ApiServer, createApiServer } from '../src/api/server';
import type { Config } from '../src/config/types';
import { TestBackend } from './helpers/api-backend';
import { keepAlive } from './helpers/keep-alive';

const KEYS = ['key-one', 'key-two'];
const MAX_BODY = 4096;


const logged: Array<{ obj: object; msg?: string }> = [];
const logger: ApiLogger = {
  error: (obj, msg) => logged.push({ obj, msg }),
  warn: (obj, msg) => logged.push({ obj, msg }),
};

const backend = new TestBackend();
let server: ApiServer;
let base: string;

before(() => {
  const config = { api: { host: '127.0.0.1', port: 0, keys: KEYS, max_body: MAX_BODY } } as unknown as Config;
  server = createApiServer(config, backend, logger);
  assert.ok(server.port > 0);
  base = `http://127.0.0.1:${server.port}`;
});
after(() => server.close());
beforeEach(() => {
  backend.calls = [];
  backend.failure = null;
  backend.pushGate = null;
  backend.refuse = null;
  backend.gated = [];
  logged.length = 0;
});

const auth = (key = KEYS[0]!): Record<string, string> => ({ authorization: `Bearer ${key}` });

async function push(body: unknown, headers: Record<string, string> = auth()): Promise<Response> {
  return fetch(`${base}/v1/push`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const j = (await res.json()) as { error: { code: string; message: string } };
  assert.deepEqual(Object.keys(j), ['error']);
  return j.error;
}

/** A raw request over node:http, for bodies fetch cannot send (partial, oversized). */
function rawRequest(
  path: string,
  headers: Record<string, string | number>,
  write: (req: http.ClientRequest) => void,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    // keep-alive, so a `Connection: close` answer is the server's choice
    const agent = new http.Agent({ keepAlive: true });
    const req = http.request(`${base}${path}`, { method: 'POST', headers, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        agent.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on('error', reject);
    write(req);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('POST /v1/push', () => {
  test('202 with id, accepted, online, seqs; the backend gets the command', async () => {
    const res = await push({ device_ids: ['a', 'b'], body: 'hello', priority: 'high', ttl_s: 30, id: 'p-1' });
    assert.equal(res.status, 202);
    assert.deepEqual(await res.json(), { id: 'p-1', accepted: 2, online: 1, seqs: [1, 2] });
    assert.equal(backend.calls.length, 1);
    const cmd = backend.calls[0]!.arg as PushCommand;
    assert.deepEqual(cmd.target, { kind: 'device', deviceIds: ['a', 'b'], single: false });
    assert.deepEqual(cmd.body, Buffer.from('hello'));
    assert.equal(cmd.priority, 1);
    assert.equal(cmd.ttlMs, 30_000);
    assert.equal(cmd.durable, true);
    assert.equal(cmd.idGiven, true);
    assert.equal(cmd.apiKey, KEYS[0]);
  });

  test('the second key works and is passed as apiKey; an id is generated', async () => {
    const res = await push({ topic: 'news', body_b64: 'AQI=' }, auth(KEYS[1]));
    assert.equal(res.status, 202);
    const j = (await res.json()) as PushOutcome;
    assert.equal(j.seqs, undefined, 'transient pushes have no seqs');
    const cmd = backend.calls[0]!.arg as PushCommand;
    assert.equal(cmd.apiKey, KEYS[1]);
    assert.equal(cmd.idGiven, false);
    assert.match(cmd.id, /^[0-9a-f-]{36}$/);
    assert.equal(j.id, cmd.id);
  });

  test('401 without, with a wrong or malformed Authorization', async () => {
    for (const headers of [{}, auth('nope'), { authorization: KEYS[0]! }, { authorization: `Basic ${KEYS[0]}` }]) {
      const res = await push({ device_id: 'd', body: 'x' }, headers);
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer');
      assert.equal((await errorOf(res)).code, 'UNAUTHORIZED');
    }
    assert.equal(backend.calls.length, 0);
  });

  test('400 BAD_JSON for malformed JSON, empty body, invalid UTF-8', async () => {
    for (const body of ['{"device_id":', '']) {
      const res = await push(body);
      assert.equal(res.status, 400);
      assert.equal((await errorOf(res)).code, 'BAD_JSON');
    }
    const res = await fetch(`${base}/v1/push`, {
      method: 'POST',
      headers: auth(),
      body: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]),
    });
    assert.equal(res.status, 400);
    assert.equal((await errorOf(res)).code, 'BAD_JSON');
    assert.equal(backend.calls.length, 0);
  });

  test('400 INVALID_FIELD names every field and why', async () => {
    const res = await push({ device_id: 'd', body: 'x', ttl_s: -1, color: 'red' });
    assert.equal(res.status, 400);
    const e = await errorOf(res);
    assert.equal(e.code, 'INVALID_FIELD');
    assert.match(e.message, /color: unknown field/);
    assert.match(e.message, /ttl_s: must be a non-negative integer/);
    const durable = await errorOf(await push({ topic: 't', body: 'x', durable: true }));
    assert.match(durable.message, /^durable: .*not supported/);
    assert.equal(backend.calls.length, 0);
  });

  test('413 when Content-Length exceeds max_body, connection closed without reading', async () => {
    const r = await rawRequest('/v1/push', { ...auth(), 'content-length': MAX_BODY + 1 }, (req) => {
      req.write('{');
    });
    assert.equal(r.status, 413);
    assert.equal(r.headers.connection, 'close');
    assert.equal(JSON.parse(r.body).error.code, 'PAYLOAD_TOO_LARGE');
    assert.equal(backend.calls.length, 0);
  });

  test('413 when a chunked body grows past max_body', async () => {
    const r = await rawRequest('/v1/push', { ...auth(), 'transfer-encoding': 'chunked' }, (req) => {
      const chunk = 'x'.repeat(1024);
      for (let i = 0; i < 5; i++) req.write(chunk);
      req.end();
    });
    assert.equal(r.status, 413);
    assert.equal(r.headers.connection, 'close');
    assert.equal(JSON.parse(r.body).error.code, 'PAYLOAD_TOO_LARGE');
    assert.equal(backend.calls.length, 0);
  });

  test('a body of exactly max_body is read', async () => {
    const doc = { device_id: 'd', body: '' };
    const pad = MAX_BODY - JSON.stringify(doc).length;
    const res = await push({ device_id: 'd', body: 'y'.repeat(pad) });
    assert.equal(res.status, 202);
    assert.equal((backend.calls[0]!.arg as PushCommand).body.length, pad);
  });

  test('503 STORE_UNAVAILABLE with Retry-After on a typed store error', async () => {
    backend.failure = Object.assign(new Error('lmdb: disk gone'), { code: 'STORE_UNAVAILABLE', retryAfterMs: 2500 });
    const res = await push({ device_id: 'd', body: 'x' });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '3');
    assert.equal((await errorOf(res)).code, 'STORE_UNAVAILABLE');
    assert.equal(logged.length, 0);
  });

  test('429 with Retry-After when the backend rate-limits', async () => {
    backend.failure = new ApiError('RATE_LIMITED', 'slow down', { retryAfterS: 7 });
    const res = await push({ device_id: 'd', body: 'x' });
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), '7');
    assert.deepEqual(await errorOf(res), { code: 'RATE_LIMITED', message: 'slow down' });
  });

  test('a key refused before its body is read: 429 with Retry-After, no parse, the connection reusable', async () => {
    backend.refuse = new ApiError('RATE_LIMITED', 'queue full', { retryAfterS: 2 });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    const send = (body: string, key = KEYS[1]!) =>
      new Promise<{ status: number; retry: string | undefined; text: string }>((resolve, reject) => {
        const req = http.request(`${base}/v1/push`, { method: 'POST', agent, headers: { ...auth(key), 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
          sockets.add(res.socket);
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, retry: res.headers['retry-after'], text }));
        });
        req.on('error', reject);
        // the body in two writes, the second after the answer may have left
        const half = Math.floor(body.length / 2);
        req.write(body.slice(0, half));
        setTimeout(() => req.end(body.slice(half)), 20);
      });
    try {
      // not even JSON: it is never parsed
      const big = `{"device_id":"d","body":"${'x'.repeat(3000)}"`;
      const a = await send(big);
      assert.equal(a.status, 429);
      assert.equal(a.retry, '2');
      assert.equal(JSON.parse(a.text).error.code, 'RATE_LIMITED');
      assert.equal(backend.calls.length, 0);
      assert.deepEqual(backend.gated, [KEYS[1]]);
      backend.refuse = null;
      const b = await send(JSON.stringify({ device_id: 'd', body: 'after' }));
      assert.equal(b.status, 202);
      assert.equal((backend.calls[0]!.arg as PushCommand).body.toString(), 'after');
      assert.equal(sockets.size, 1, 'the second request reused the connection');
    } finally {
      agent.destroy();
    }
  });

  test('an unknown key is 401 before the gate is asked', async () => {
    backend.refuse = new ApiError('RATE_LIMITED', 'queue full', { retryAfterS: 2 });
    const res = await push({ device_id: 'd', body: 'x' }, auth('nope'));
    assert.equal(res.status, 401);
    assert.deepEqual(backend.gated, []);
  });

  test('500 INTERNAL, logged, on any other failure', async () => {
    backend.failure = new TypeError('bug');
    const res = await push({ device_id: 'd', body: 'x' });
    assert.equal(res.status, 500);
    assert.deepEqual(await errorOf(res), { code: 'INTERNAL', message: 'internal error' });
    assert.equal(logged.length, 1);
    assert.equal((logged[0]!.obj as { err: Error }).err.message, 'bug');
  });

  test('a client that aborts mid-body: nothing runs, the server lives on', async () => {
    await new Promise<void>((resolve) => {
      const req = http.request(`${base}/v1/push`, {
        method: 'POST',
        headers: { ...auth(), 'content-length': 100 },
        agent: false,
      });
      req.on('error', () => resolve());
      req.write('{"device_id":');
      setTimeout(() => req.destroy(), 30);
    });
    await sleep(30);
    assert.equal(backend.calls.length, 0);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
  });

  test('a client that leaves while the backend works: the late answer is dropped safely', async () => {
    let open!: () => void;
    backend.pushGate = new Promise((r) => {
      open = r;
    });
    const gone = new Promise<void>((resolve) => {
      const req = http.request(`${base}/v1/push`, { method: 'POST', headers: auth(), agent: false });
      req.on('error', () => resolve());
      req.end(JSON.stringify({ device_id: 'd', body: 'x' }));
      const poll = setInterval(() => {
        if (backend.calls.length > 0) {
          clearInterval(poll);
          req.destroy();
        }
      }, 5);
    });
    await gone;
    await sleep(30);
    open();
    await sleep(30);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
  });
});

describe('devices', () => {
  const info: DeviceInfo = {
    online: true,
    node: 'n1',
    worker: 0,
    connected_at: '2026-01-01T00:00:00.000Z',
    network: { kind: 'WIFI', carrier: '' },
    heartbeat_ms: 270000,
    head_seq: 5,
    acked_seq: 3,
  };

  test('GET /v1/devices/{id}: 200 JSON, percent-decoded id', async () => {
    backend.devices.set('dev/1 é', info);
    const res = await fetch(`${base}/v1/devices/${encodeURIComponent('dev/1 é')}`, { headers: auth() });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), info);
    assert.deepEqual(backend.calls, [{ op: 'deviceInfo', arg: 'dev/1 é' }]);
  });

  test('GET /v1/devices/{id}: 404 when never seen, 401 without key, 400 on bad encoding', async () => {
    const res = await fetch(`${base}/v1/devices/ghost`, { headers: auth() });
    assert.equal(res.status, 404);
    assert.equal((await errorOf(res)).code, 'NOT_FOUND');
    assert.equal((await fetch(`${base}/v1/devices/ghost`)).status, 401);
    const badPath = await fetch(`${base}/v1/devices/%E0%A4%A`, { headers: auth() });
    assert.equal(badPath.status, 400);
    assert.equal((await errorOf(badPath)).code, 'INVALID_PATH');
  });

  test('DELETE /v1/devices/{id}/session: 204, then 404 NOT_CONNECTED', async () => {
    backend.connected.add('d7');
    const first = await fetch(`${base}/v1/devices/d7/session`, { method: 'DELETE', headers: auth() });
    assert.equal(first.status, 204);
    assert.equal(await first.text(), '');
    const second = await fetch(`${base}/v1/devices/d7/session`, { method: 'DELETE', headers: auth() });
    assert.equal(second.status, 404);
    assert.equal((await errorOf(second)).code, 'NOT_CONNECTED');
    assert.equal((await fetch(`${base}/v1/devices/d7/session`, { method: 'DELETE' })).status, 401);
  });
});


test('204 and 304 carry no Content-Length and keep the connection usable', async () => {
  backend.connected.add('d8');
  backend.dicts.set(43, Buffer.from('dict'));
  const key = `Authorization: Bearer ${KEYS[0]}\r\n`;
  const [deleted, notModified, health] = await keepAlive(server.port, [
    `DELETE /v1/devices/d8/session HTTP/1.1\r\nHost: x\r\n${key}\r\n`,
    'GET /v1/dicts/43 HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\n\r\n',
    'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
  ]);
  assert.match(deleted, /^HTTP\/1\.1 204 /);
  assert.match(notModified, /^HTTP\/1\.1 304 /);
  for (const r of [deleted, notModified]) assert.doesNotMatch(r, /content-length/i, r);
  assert.match(health, /^HTTP\/1\.1 200 /);
});

describe('dictionaries', () => {
  const bytes = Buffer.from('a zstd dictionary, pretend');
  const etag = `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 27)}"`;

  test('200 without auth, immutable caching headers and an ETag', async () => {
    backend.dicts.set(42, bytes);
    const res = await fetch(`${base}/v1/dicts/42`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.equal(res.headers.get('etag'), etag);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes);
    assert.deepEqual(backend.calls, [{ op: 'dict', arg: 42 }]);
  });

  test('304 on a matching If-None-Match (weak or listed)', async () => {
    backend.dicts.set(42, bytes);
    for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const res = await fetch(`${base}/v1/dicts/42`, { headers: { 'if-none-match': inm } });
      assert.equal(res.status, 304, inm);
      assert.equal(res.headers.get('etag'), etag);
    }
    assert.equal((await fetch(`${base}/v1/dicts/42`, { headers: { 'if-none-match': '"x"' } })).status, 200);
  });

  test('404 for an unknown id, 400 INVALID_PATH for a malformed one (the backend is not asked for nonsense, nor for 0)', async () => {
    for (const id of ['7', '0']) {
      const res = await fetch(`${base}/v1/dicts/${id}`);
      assert.equal(res.status, 404, id);
      assert.equal((await errorOf(res)).code, 'NOT_FOUND');
    }
    for (const id of ['abc', '-1', '99999999999', '4294967296']) {
      const res = await fetch(`${base}/v1/dicts/${id}`);
      assert.equal(res.status, 400, id);
      assert.equal((await errorOf(res)).code, 'INVALID_PATH');
    }
    assert.deepEqual(backend.calls, [{ op: 'dict', arg: 7 }]);
  });
});

describe('operations endpoints', () => {
  test('GET /metrics: no auth, the backend text and content type', async () => {
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(await res.text(), 'moor_up 1\n');
  });

  test('GET /healthz: 200 {"ok":true}', async () => {
    const res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true });
  });

  test('GET /readyz: 200 when ready, 503 with the error shape (reasons in its message) and Retry-After when not', async () => {
    backend.readiness = { ok: true, reasons: [] };
    const up = await fetch(`${base}/readyz`);
    assert.equal(up.status, 200);
    assert.deepEqual(await up.json(), { ok: true, reasons: [] });
    backend.readiness = { ok: false, reasons: ['draining', 'store unreachable'] };
    const down = await fetch(`${base}/readyz`);
    assert.equal(down.status, 503);
    assert.equal(down.headers.get('retry-after'), '5');
    assert.deepEqual(await down.json(), { error: { code: 'NOT_READY', message: 'not ready: draining; store unreachable' } });
    backend.readiness = { ok: true, reasons: [] };
  });

  test('/readyz: a throwing backend is 503 STORE_UNAVAILABLE', async () => {
    backend.failure = Object.assign(new Error('x'), { code: 'STORE_UNAVAILABLE' });
    const res = await fetch(`${base}/readyz`);
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '1');
  });
});

describe('routing', () => {
  const cases: Array<[method: string, path: string, allow: string]> = [
    ['GET', '/v1/push', 'POST'],
    ['PUT', '/v1/push', 'POST'],
    ['POST', '/v1/devices/d1', 'GET, HEAD'],
    ['GET', '/v1/devices/d1/session', 'DELETE'],
    ['DELETE', '/v1/dicts/1', 'GET, HEAD'],
    ['POST', '/metrics', 'GET, HEAD'],
    ['POST', '/healthz', 'GET, HEAD'],
    ['DELETE', '/readyz', 'GET, HEAD'],
  ];
  for (const [method, path, allow] of cases) {
    test(`405 ${method} ${path}, Allow: ${allow}`, async () => {
      const res = await fetch(`${base}${path}`, { method, headers: auth() });
      assert.equal(res.status, 405);
      assert.equal(res.headers.get('allow'), allow);
      const e = await errorOf(res);
      assert.equal(e.code, 'METHOD_NOT_ALLOWED');
      assert.match(e.message, new RegExp(`${method} is not allowed.*use ${allow}`));
    });
  }

  test("HEAD: the GET answer's status and headers with its Content-Length, and no body", async () => {
    backend.devices.set('dh', { online: false } as unknown as DeviceInfo);
    const cases: Array<[path: string, headers: Record<string, string>, status: number]> = [
      ['/healthz', {}, 200],
      ['/readyz', {}, 200],
      ['/metrics', {}, 200],
      ['/v1/devices/dh', auth(), 200],
      ['/v1/devices/dh', {}, 401],
      ['/v1/devices/nobody', auth(), 404],
      ['/v1/push', auth(), 405],
      ['/nowhere', {}, 404],
    ];
    for (const [path, headers, status] of cases) {
      const get = await fetch(`${base}${path}`, { headers });
      const body = Buffer.from(await get.arrayBuffer());
      const raw = await keepAlive(server.port, [`HEAD ${path} HTTP/1.1\r\nHost: x\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n']);
      assert.match(raw[0], new RegExp(`^HTTP/1\\.1 ${status} `), path);
      assert.equal(get.status, status, path);
      // Not where the body names the method (405, the 404 of no route) or changes between reads (/metrics).
      if (!['/metrics', '/v1/push', '/nowhere'].includes(path)) assert.match(raw[0], new RegExp(`content-length: ${body.length}\r\n`, 'i'), `${path}: ${raw[0]}`);
      assert.ok(raw[0].endsWith('\r\n\r\n'), `${path}: no body`);
      assert.match(raw[1], /^HTTP\/1\.1 200 /, `${path}: the connection still works after it`);
    }
  });

  test('404 NOT_FOUND on unknown paths', async () => {
    for (const path of ['/', '/v1', '/v1/push/x', '/v2/push', '/v1/devices']) {
      const res = await fetch(`${base}${path}`, { headers: auth() });
      assert.equal(res.status, 404, path);
      assert.equal((await errorOf(res)).code, 'NOT_FOUND');
    }
    assert.equal(backend.calls.length, 0);
  });

  test('a 401 with an unread body leaves the connection usable', async () => {
    const out = await new Promise<string>((resolve) => {
      const c = net.connect(server.port, '127.0.0.1');
      let got = '';
      c.setEncoding('latin1');
      c.on('data', (d) => {
        got += d;
        if (got.includes('{"ok":true}')) c.end();
      });
      c.on('close', () => resolve(got));
      c.write('POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789');
      c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    assert.match(out, /^HTTP\/1\.1 401 [\s\S]*HTTP\/1\.1 200 OK/);
  });

  test('two servers listen on one configured port (SO_REUSEPORT, one per worker)', async () => {
    // uSockets sets SO_REUSEPORT only for a non-zero port: find a free one first
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const config = { api: { host: '127.0.0.1', port, keys: KEYS, max_body: MAX_BODY } } as unknown as Config;
    const a = createApiServer(config, backend, logger);
    const b = createApiServer(config, backend, logger);
    try {
      assert.deepEqual([a.port, b.port], [port, port]);
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    } finally {
      a.close();
      b.close();
    }
  });

  test('keep-alive: many requests on one connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 20; i++) {
        const status = await new Promise<number>((resolve, reject) => {
          http
            .get(`${base}/healthz`, { agent }, (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
            })
            .on('error', reject);
        });
        assert.equal(status, 200);
      }
    } finally {
      agent.destroy();
    }
  });
});
