/**
 * MoorClient reconnect rules against FakeGateway: GOAWAY, terminal errors, resume
 * endpoint and fallback, backoff bounds, OVERLOADED/REDIRECT, HTTP 503 + Retry-After.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { MoorClient, type MoorClientEvents } from '../src/client/client';
import { GatewayError, type MoorClientError } from '../src/client/errors';
import { type FakeConn, FakeGateway, nextEvents } from '../src/client/fake-gateway';
import type { MoorClientOptions } from '../src/client/options';
import { ErrorCode, FrameType } from '../src/protocol/constants';
import { moor } from '../src/protocol/generated/moor';
import { freePort } from './helpers/ports';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function gateway(kind: 'ws' | 'tcp' = 'ws'): Promise<FakeGateway> {
  const g = kind === 'ws' ? await FakeGateway.ws() : await FakeGateway.tcp();
  cleanup.push(() => g.close());
  return g;
}

function client(g: { url: string }, o: Partial<MoorClientOptions> = {}): MoorClient {
  const c = new MoorClient({ url: g.url, deviceId: 'dev-1', token: 'tok', reconnect: { baseMs: 10, maxMs: 40 }, ...o });
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

describe('MoorClient reconnect', { timeout: 10_000 }, () => {
  test('GOAWAY: leaves after reconnect_after_ms for its endpoint, not the resume endpoint', async () => {
    const a = await gateway();
    const b = await gateway();
    const draining = await gateway(); // the resume endpoint names the worker going away
    const c = client(a);
    const goaways: moor.v1.GoAway[] = [];
    c.on('goaway', (g) => goaways.push(g));
    const connected = c.connect();
    const conn = await a.next();
    await conn.hello();
    conn.welcome({ resumeEndpoint: draining.hostPort });
    await connected;
    const t0 = performance.now();
    conn.send(FrameType.GOAWAY, moor.v1.GoAway.encode({ reason: 1, reconnectAfterMs: 80, endpoint: b.hostPort }).finish());
    const nb = await b.next();
    assert.ok(performance.now() - t0 >= 70, `reconnected after ${performance.now() - t0} ms, before 80`);
    assert.ok(conn.closed, 'the client closed the draining connection itself');
    assert.equal(goaways[0].reconnectAfterMs, 80);
    assert.equal((await nb.hello()).previous?.timedOut, false);
    assert.deepEqual([a.conns.length, draining.conns.length], [1, 0]);
  });

  test('AUTH_FAILED: no reconnect; connect() rejects with the gateway error', async () => {
    const p = await gateway();
    let tokens = 0;
    const c = client(p, {
      token: () => {
        tokens++;
        return 'expired';
      },
    });
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    const closes = collect(c, 'close', 1);
    const connected = c.connect();
    const conn = await p.next();
    await conn.hello();
    conn.error({ code: ErrorCode.AUTH_FAILED, message: 'token expired' });
    await assert.rejects(connected, (e: GatewayError) => e instanceof GatewayError && e.codeName === 'AUTH_FAILED');
    assert.equal((await closes)[0].willReconnect, false);
    assert.equal((errors[0] as GatewayError).codeName, 'AUTH_FAILED');
    await sleep(100);
    assert.equal(p.conns.length, 1, 'no second connection');
    assert.equal(tokens, 1);
    assert.equal(c.state, 'idle');
  });

  test('AUTH_FAILED with afterAuthFailed: reconnects with a fresh token', async () => {
    const p = await gateway();
    let n = 0;
    const c = client(p, { token: () => `tok-${++n}`, reconnect: { baseMs: 10, maxMs: 20, afterAuthFailed: true } });
    const connected = c.connect();
    const a = await p.next();
    assert.equal((await a.hello()).token, 'tok-1');
    a.error({ code: ErrorCode.AUTH_FAILED });
    const b = await p.next();
    assert.equal((await b.hello()).token, 'tok-2');
    b.welcome();
    await connected;
  });

  test('REPLACED after WELCOME: no reconnect', async () => {
    const p = await gateway();
    const { c, conn } = await ready(p);
    const closes = collect(c, 'close', 1);
    conn.error({ code: ErrorCode.REPLACED });
    assert.equal((await closes)[0].willReconnect, false);
    await sleep(60);
    assert.equal(p.conns.length, 1);
  });

  test('resume_endpoint is tried first, then the original address at once', async () => {
    const home = await gateway();
    const resume = await gateway();
    // Backoff would wait 5 s here: only the first reconnect (after the drop) rolls 0.
    const rolls = [0];
    const c = client(home, { reconnect: { baseMs: 10_000, maxMs: 10_000 }, random: () => rolls.shift() ?? 0.5 });
    const where = collect(c, 'reconnecting', 2);
    const connected = c.connect();
    const first = await home.next();
    await first.hello();
    first.welcome({ resumeEndpoint: resume.hostPort });
    await connected;
    first.destroy(); // the network drops
    const r = await resume.next();
    assert.equal((await r.hello()).deviceId, 'dev-1');
    r.destroy(); // the resume port fails before WELCOME
    await (await home.next()).hello();
    const [toResume, toHome] = await where;
    assert.deepEqual([toResume.endpoint, toResume.delayMs], [`ws://${resume.hostPort}/ws`, 0]);
    assert.deepEqual([toHome.endpoint, toHome.delayMs], [home.url, 0]);
  });

  test('backoff: capped exponential windows with full jitter', async () => {
    const port = await freePort();
    const c = client({ url: `ws://127.0.0.1:${port}/ws` }, { reconnect: { baseMs: 10, maxMs: 40 }, random: () => 0.999 });
    const tries = collect(c, 'reconnecting', 5);
    void c.connect().catch(() => {});
    const delays = (await tries).map((t) => t.delayMs);
    assert.deepEqual(delays, [9, 19, 39, 39, 39]);
  });

  test('ERROR OVERLOADED: waits retry_after_ms; REDIRECT: goes to the redirect at once', async () => {
    const a = await gateway();
    const b = await gateway();
    const c = client(a, { random: () => 0.5 });
    const where = collect(c, 'reconnecting', 2);
    const connected = c.connect();
    const first = await a.next();
    await first.hello();
    first.error({ code: ErrorCode.OVERLOADED, retryAfterMs: 123 });
    const second = await a.next();
    await second.hello();
    second.error({ code: ErrorCode.REDIRECT, redirect: b.hostPort });
    const third = await b.next();
    await third.hello();
    third.welcome();
    await connected;
    const [overloaded, redirect] = await where;
    assert.deepEqual([overloaded.delayMs, overloaded.endpoint], [123, a.url]);
    assert.equal(redirect.endpoint, b.url);
    assert.ok(redirect.delayMs <= 20, `redirect waited ${redirect.delayMs} ms`);
  });

  test('a malformed redirect is reported, and home is tried instead', async () => {
    const p = await gateway();
    const c = client(p);
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    const connected = c.connect();
    const first = await p.next();
    await first.hello();
    first.error({ code: ErrorCode.REDIRECT, redirect: 'no-port-here' });
    const second = await p.next();
    await second.hello();
    second.welcome();
    await connected;
    assert.equal(errors.length, 2);
    assert.equal((errors[0] as GatewayError).codeName, 'REDIRECT');
    assert.match(errors[1].message, /bad endpoint "no-port-here": expected host:port/);
  });

  test('a failing token source is reported and retried', async () => {
    const p = await gateway();
    let calls = 0;
    const c = client(p, {
      token: async () => {
        if (++calls === 1) throw new Error('keystore locked');
        return 'fresh';
      },
    });
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    await p.handshake(c);
    assert.deepEqual(
      errors.map((e) => [e.name, (e as { code?: string }).code, e.message, (e.cause as Error).message]),
      [['MoorClientError', 'CALLBACK', 'token() failed: keystore locked', 'keystore locked']],
    );
    assert.equal(p.conns.length, 1, 'no connection was opened without a token');
  });

  test('HTTP 503 on the upgrade: waits Retry-After', async () => {
    const p = await gateway();
    p.refuse = 1;
    const c = client(p);
    const closes = collect(c, 'close', 1);
    const retry = collect(c, 'reconnecting', 1);
    void c.connect().catch(() => {});
    assert.equal((await retry)[0].delayMs, 1000);
    assert.equal(((await closes)[0].error as MoorClientError).status, 503);
  });

  test('close() stops everything and leaves no timer behind', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const p = await gateway();
    const { c, conn } = await ready(p, { ackDelayMs: 10_000, gapSyncMs: 10_000 });
    conn.push({ seq: 2 }); // a hole: arms the gap timer; the ACK timer too
    const pending = assert.rejects(c.request('never'), (e: MoorClientError) => e.code === 'CLOSED');
    await sleep(20);
    await c.close();
    await pending;
    assert.equal(c.state, 'idle');
    assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, before);
    await sleep(50);
    assert.equal(p.conns.length, 1, 'no reconnect after close()');
  });
});

