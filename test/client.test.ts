/**
 * MoorClient against FakeGateway (src/client/fake-gateway.ts), a scripted moor/1 peer on a
 * real WebSocket or TCP server: handshake, heartbeat, pushes and ACKs, requests and sync.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { MoorClient, type MoorClientEvents } from '../src/client/client';
import type { MoorClientError } from '../src/client/errors';
import { type FakeConn, FakeGateway, type FakeTls, nextEvents } from '../src/client/fake-gateway';
import type { MoorClientOptions } from '../src/client/options';
import { FrameType, WS_SUBPROTOCOL } from '../src/protocol/constants';
import { moor } from '../src/protocol/generated/moor';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function gateway(kind: 'ws' | 'tcp' = 'ws', tls?: FakeTls): Promise<FakeGateway> {
  const g = kind === 'ws' ? await FakeGateway.ws(tls) : await FakeGateway.tcp(tls);
  cleanup.push(() => g.close());
  return g;
}

/** A client of `g` over its transport (WebSocket url, or TCP port). */
function client(g: FakeGateway, o: Partial<MoorClientOptions> = {}, transport: 'ws' | 'tcp' = 'ws'): MoorClient {
  const where: Partial<MoorClientOptions> = transport === 'ws' ? { url: g.url } : { transport, host: '127.0.0.1', port: g.port };
  const c = new MoorClient({ ...where, deviceId: 'dev-1', token: 'tok', reconnect: { baseMs: 10, maxMs: 40 }, ...o });
  cleanup.push(() => c.close());
  return c;
}

function collect<K extends keyof MoorClientEvents>(c: MoorClient, event: K, n: number): Promise<MoorClientEvents[K][0][]> {
  return nextEvents(c as never, event, n);
}

async function ready(g: FakeGateway, o: Partial<MoorClientOptions> = {}): Promise<{ c: MoorClient; conn: FakeConn }> {
  const c = client(g, o);
  return { c, conn: await g.handshake(c) };
}

describe('MoorClient handshake', { timeout: 10_000 }, () => {
  test('WebSocket: offers moor.v1, sends every HELLO field, resolves connect() on WELCOME', async () => {
    const p = await gateway();
    const c = client(p, {
      token: async () => 'jwt-1',
      client: 'acme-tv/2.1',
      network: { kind: 'CELL_4G', carrier: '310-260' },
      foreground: true,
      dictIds: [7],
      loadLastSeq: async () => 41,
    });
    const connected = c.connect();
    const conn = await p.next();
    const h = await conn.hello();
    assert.deepEqual(p.protocols, [WS_SUBPROTOCOL]);
    assert.equal(h.deviceId, 'dev-1');
    assert.equal(h.token, 'jwt-1');
    assert.equal(h.client, 'acme-tv/2.1');
    assert.deepEqual(h.network?.kind, moor.v1.NetworkKind.CELL_4G);
    assert.equal(h.network?.carrier, '310-260');
    assert.deepEqual(h.codecs, [moor.v1.Codec.IDENTITY]);
    assert.deepEqual(h.dictIds, [7]);
    assert.equal(Number(h.lastSeq), 41);
    assert.equal(h.foreground, true);
    assert.equal(h.previous, null, 'no previous session yet');
    conn.welcome({ sessionId: 'abc' });
    const w = await connected;
    assert.equal(w.sessionId, 'abc');
    assert.equal(c.state, 'ready');
  });

  test('raw TCP: writes the MOOR/1 preface, then HELLO', async () => {
    const p = await gateway('tcp');
    const c = client(p, { deviceId: 'dev-t' }, 'tcp');
    const connected = c.connect();
    const conn = await p.next();
    assert.equal((await conn.hello()).deviceId, 'dev-t');
    assert.deepEqual(p.prefaceOk, [true]);
    conn.welcome();
    await connected;
  });

  test('options are validated all at once', () => {
    assert.throws(
      () => new MoorClient({ transport: 'tcp', deviceId: '', token: 't', codecs: [7 as moor.v1.Codec] }),
      (e: Error) => /host/.test(e.message) && /port/.test(e.message) && /deviceId/.test(e.message) && /codecs/.test(e.message),
    );
    assert.throws(() => new MoorClient({ url: 'ws://bad host/ws', deviceId: 'd', token: 't' }), /url: need ws:\/\/host:port\/path/);
  });

  test('a refused connection is a typed NETWORK error with the system error as its cause', async () => {
    const p = await gateway('tcp');
    const port = p.port;
    await p.close(); // nothing listens there now
    const c = new MoorClient({ transport: 'tcp', host: '127.0.0.1', port, deviceId: 'd', token: 't', reconnect: { enabled: false } });
    cleanup.push(() => c.close());
    await assert.rejects(c.connect(), (e: MoorClientError) => e.name === 'MoorClientError' && e.code === 'NETWORK' && /ECONNREFUSED/.test(e.message) && (e.cause as { code?: string }).code === 'ECONNREFUSED');
  });
});

/** A throwaway self-signed certificate for 127.0.0.1, or null without the openssl CLI. */
function selfSigned(): FakeTls | null {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'moor-client-tls-'));
  try {
    const [key, cert] = [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')];
    const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'];
    execFileSync('openssl', [...args, '-keyout', key, '-out', cert, '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    return { key: readFileSync(key), cert: readFileSync(cert) };
  } catch {
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('MoorClient over TLS', { timeout: 10_000 }, () => {
  const pem = selfSigned();
  test('wss:// and TLS over raw TCP, trusting a pinned CA', { skip: pem === null && 'no openssl CLI' }, async () => {
    const tls = pem as FakeTls;
    const w = await gateway('ws', tls);
    assert.match(w.url, /^wss:/);
    await w.handshake(client(w, { tls: { ca: tls.cert } }));
    const t = await gateway('tcp', tls);
    await t.handshake(client(t, { tls: { ca: tls.cert } }, 'tcp'));
    assert.deepEqual(t.prefaceOk, [true]);
    // Without the CA the certificate is refused: no session, a retry instead.
    const untrusted = client(t, { deviceId: 'dev-2', tls: true }, 'tcp');
    untrusted.connect().catch(() => {});
    const [closed] = await collect(untrusted, 'close', 1);
    assert.match(String(closed.error), /self[- ]signed/i);
    assert.deepEqual([closed.welcomed, closed.timedOut, closed.willReconnect], [false, false, true]);
  });
});

describe('MoorClient heartbeat', { timeout: 10_000 }, () => {
  test('PINGs every heartbeat_ms, then at the interval a PONG advises', async () => {
    const p = await gateway();
    const c = client(p);
    const connected = c.connect();
    const conn = await p.next();
    await conn.hello();
    conn.autoPong = false;
    conn.welcome({ heartbeatMs: 120 });
    await connected;
    const t0 = performance.now();
    const first = await conn.expect(FrameType.PING);
    assert.equal(first.payload.length, 0);
    assert.ok(first.at - t0 >= 100, `first PING after ${first.at - t0} ms, not ~120`);
    const second = await conn.expect(FrameType.PING);
    assert.ok(second.at - first.at >= 100, `PING gap ${second.at - first.at} ms before advice`);
    conn.send(FrameType.PONG, moor.v1.HeartbeatAdvice.encode({ heartbeatMs: 30 }).finish());
    const at: number[] = [];
    for (let i = 0; i < 4; i++) {
      const f = await conn.expect(FrameType.PING);
      conn.send(FrameType.PONG);
      at.push(f.at);
    }
    for (let i = 1; i < at.length; i++) {
      const gap = at[i] - at[i - 1];
      assert.ok(gap >= 20 && gap < 110, `PING gap ${gap} ms after advice of 30 (was 120)`);
    }
  });

  test('a missed PONG is a dead server: reconnect, and report previous.timed_out (TCP)', async () => {
    // Over TCP the client's own drop is no socket error: only the missed PONG says "timed out".
    const p = await gateway('tcp');
    const c = client(p, { pongTimeoutMs: 50 }, 'tcp');
    const closes = collect(c, 'close', 1);
    const connected = c.connect();
    const a = await p.next();
    await a.hello();
    a.autoPong = false;
    a.welcome({ heartbeatMs: 40 });
    await connected;
    const [info] = await closes;
    assert.equal(info.timedOut, true);
    assert.equal(info.willReconnect, true);
    const b = await p.next();
    const h = await b.hello();
    assert.equal(h.previous?.timedOut, true);
    assert.equal(h.previous?.intervalMs, 40);
    assert.ok((h.previous?.livedMs ?? 0) >= 80, `lived ${h.previous?.livedMs} ms: ping at 40 + deadline 50`);
  });

  test('a clean close is reported as previous.timed_out = false', async () => {
    const p = await gateway();
    const c = client(p);
    const connected = c.connect();
    const a = await p.next();
    await a.hello();
    a.welcome({ heartbeatMs: 5_000 });
    await connected;
    a.end(1000);
    const h = await (await p.next()).hello();
    assert.equal(h.previous?.timedOut, false);
    assert.equal(h.previous?.intervalMs, 5_000);
  });
});

describe('MoorClient pushes and ACKs', { timeout: 10_000 }, () => {
  test('one cumulative ACK with selective seqs per batch; transient pushes are not ACKed', async () => {
    const p = await gateway();
    const saved: number[] = [];
    let savedAt = 0;
    const saveLastSeq = async (seq: number) => {
      await sleep(30); // a slow store: the ACK must wait for it
      saved.push(seq);
      savedAt = performance.now();
    };
    const { c, conn } = await ready(p, { ackDelayMs: 100, saveLastSeq });
    const pushes = collect(c, 'push', 5);
    for (const seq of [1, 2, 3, 5, 0]) conn.push({ seq, body: Buffer.from(`b${seq}`) });
    const got = await pushes;
    assert.deepEqual(
      got.map((x) => x.seq),
      [1, 2, 3, 5, 0],
    );
    assert.equal(Buffer.from(got[3].body).toString(), 'b5');
    const f = await conn.expect(FrameType.ACK);
    const ack = moor.v1.Ack.decode(f.payload);
    assert.deepEqual([Number(ack.upToSeq), ack.seqs.map(Number)], [3, [5]]);
    assert.deepEqual(saved, [3]);
    assert.ok(f.at >= savedAt, 'the sync key is saved before the ACK goes out');
    assert.equal(c.lastSeq, 3);
    await sleep(150);
    assert.deepEqual(conn.pending(FrameType.ACK), [], 'exactly one ACK for the batch');
  });

  test('with a store, HELLO.last_seq is what was saved: a failed save is not acknowledged by the next HELLO', async () => {
    const p = await gateway();
    const { c, conn } = await ready(p, { ackDelayMs: 20, saveLastSeq: async () => Promise.reject(new Error('disk full')) });
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    const pushes = collect(c, 'push', 3);
    for (const seq of [1, 2, 3]) conn.push({ seq });
    await pushes;
    await sleep(60);
    assert.deepEqual(conn.pending(FrameType.ACK), [], 'nothing saved, nothing ACKed');
    assert.equal(errors[0]?.name, 'MoorClientError');
    assert.equal((errors[0] as MoorClientError).code, 'CALLBACK');
    assert.match(errors[0].message, /saveLastSeq\(\) failed: disk full/);
    conn.destroy(); // the network drops
    const again = await p.next();
    assert.equal(Number((await again.hello()).lastSeq), 0, 'the gateway takes last_seq as an ACK');
  });

  test('redelivered seqs are not delivered again but are ACKed again', async () => {
    const p = await gateway();
    const { c, conn } = await ready(p, { ackDelayMs: 60 });
    const seen: number[] = [];
    c.on('push', (x) => seen.push(x.seq));
    conn.push({ seq: 1 });
    conn.push({ seq: 3 });
    assert.deepEqual(await conn.ack(), { upToSeq: 1, seqs: [3] });
    conn.push({ seq: 1 });
    conn.push({ seq: 3 });
    conn.push({ seq: 2 });
    const ack = await conn.ack();
    assert.equal(ack.upToSeq, 3);
    assert.deepEqual(ack.seqs, []);
    assert.deepEqual(seen, [1, 3, 2]);
  });

  test('ackBatch receipts flush at once, without waiting for ackDelayMs', async () => {
    const p = await gateway();
    const { conn } = await ready(p, { ackDelayMs: 10_000, ackBatch: 3 });
    const t0 = performance.now();
    for (const seq of [1, 2, 3]) conn.push({ seq });
    assert.equal((await conn.ack(500)).upToSeq, 3);
    assert.ok(performance.now() - t0 < 500);
  });

  test('a hole no push fills is closed by SYNC; lastSeq then moves past it', async () => {
    const p = await gateway();
    const { c, conn } = await ready(p, { ackDelayMs: 40, gapSyncMs: 80 });
    conn.push({ seq: 1 });
    conn.push({ seq: 3 }); // 2 expired in the inbox
    assert.deepEqual(await conn.ack(), { upToSeq: 1, seqs: [3] });
    const [afterSeq, limit] = await conn.sync();
    assert.equal(afterSeq, 1);
    assert.ok(limit > 0);
    conn.push({ seq: 3 });
    conn.send(FrameType.SYNC_DONE, moor.v1.SyncDone.encode({ headSeq: 3, more: false }).finish());
    const ack = await conn.ack();
    assert.equal(ack.upToSeq, 3);
    assert.equal(c.lastSeq, 3);
  });

  test('autoAck off: nothing is ACKed until ack(seq)', async () => {
    const p = await gateway();
    const { c, conn } = await ready(p, { autoAck: false, ackDelayMs: 5 });
    const seen: number[] = [];
    c.on('push', (x) => seen.push(x.seq));
    conn.push({ seq: 1 });
    conn.push({ seq: 1 });
    await sleep(40);
    assert.deepEqual(seen, [1], 'an unACKed push is handed over once per session');
    assert.deepEqual(conn.pending(FrameType.ACK), []);
    c.ack(1);
    assert.equal((await conn.ack()).upToSeq, 1);
  });

  test('the unfinished ACK goes out on close()', async () => {
    const p = await gateway();
    const { c, conn } = await ready(p, { ackDelayMs: 10_000 });
    conn.push({ seq: 1 });
    await sleep(20);
    await c.close();
    assert.equal((await conn.ack()).upToSeq, 1);
  });
});

describe('MoorClient requests and sync', { timeout: 10_000 }, () => {
  test('responses are matched by stream id, in any order', async () => {
    const p = await gateway('tcp');
    const c = client(p, {}, 'tcp');
    const conn = await p.handshake(c);
    const r1 = c.request('a.get', 'one', { k: 'v' });
    const r2 = c.request('b.get', Buffer.from('two'));
    const f1 = await conn.expect(FrameType.REQUEST);
    const f2 = await conn.expect(FrameType.REQUEST);
    assert.ok(f1.stream !== 0 && f2.stream !== 0 && f1.stream !== f2.stream);
    const q1 = moor.v1.Request.decode(f1.payload);
    assert.equal(q1.method, 'a.get');
    assert.deepEqual(q1.meta, { k: 'v' });
    const respond = (stream: number, body: string) =>
      conn.send(FrameType.RESPONSE, moor.v1.Response.encode({ status: 200, body: Buffer.from(body) }).finish(), stream);
    respond(f2.stream, 'for b');
    respond(f1.stream, 'for a');
    assert.equal(Buffer.from((await r1).body).toString(), 'for a');
    assert.equal(Buffer.from((await r2).body).toString(), 'for b');
  });

  test('an unanswered request times out; one in flight fails when the session ends', async () => {
    const p = await gateway();
    const { c, conn } = await ready(p);
    await assert.rejects(c.request('slow', '', {}, { timeoutMs: 30 }), (e: MoorClientError) => e.code === 'TIMEOUT');
    const pending = c.request('lost');
    await conn.expect(FrameType.REQUEST);
    await conn.expect(FrameType.REQUEST);
    conn.destroy();
    await assert.rejects(pending, (e: MoorClientError) => e.code === 'DISCONNECTED');
    await assert.rejects(c.request('x'), (e: MoorClientError) => e.code === 'NOT_CONNECTED');
  });

  test('sync() resolves with SYNC_DONE', async () => {
    const p = await gateway();
    const { c, conn } = await ready(p);
    const done = c.sync(0, 10);
    assert.deepEqual(await conn.sync(), [0, 10]);
    conn.send(FrameType.SYNC_DONE, moor.v1.SyncDone.encode({ headSeq: 9, more: true }).finish());
    const d = await done;
    assert.deepEqual([d.headSeq, d.more], [9, true]);
  });
});

