/**
 * The client's pure parts, without sockets: backoff, the seq tracker, the reconnect plan,
 * endpoints, Retry-After, the frame reader, options.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Backoff } from '../src/client/backoff';
import { endpointFrom, parseRetryAfter } from '../src/client/endpoint';
import { GatewayError } from '../src/client/errors';
import { FrameReader } from '../src/client/frames';
import { resolveOptions } from '../src/client/options';
import { type EndFacts, planReconnect } from '../src/client/reconnect';
import { SeqTracker } from '../src/client/tracker';
import { ErrorCode, FrameType } from '../src/protocol/constants';
import { encodeFrame, encodeFrames } from '../src/protocol/encoder';
import { moor } from '../src/protocol/generated/moor';

describe('Backoff', () => {
  test('windows double from baseMs up to maxMs; full jitter spans [0, window)', () => {
    const top = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0.999 });
    assert.deepEqual(
      Array.from({ length: 7 }, () => top.next()),
      [99, 199, 399, 799, 999, 999, 999],
    );
    const bottom = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0 });
    assert.deepEqual([bottom.next(), bottom.next()], [0, 0]);
    top.reset();
    assert.equal(top.window(), 100);
    top.skip();
    assert.equal(top.window(), 200, 'a server-chosen delay still counts as a failure');
  });

  test('every delay lies in [0, min(maxMs, baseMs * 2^n)], even after many failures', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 0, max: 200_000 }), fc.nat(2000), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (base, extra, n, r) => {
        const b = new Backoff({ baseMs: base, maxMs: base + extra, random: () => r });
        for (let i = 0; i < n; i++) b.skip();
        const d = b.next();
        assert.ok(Number.isInteger(d) && d >= 0 && d <= Math.min(base + extra, base * 2 ** n), `delay ${d}`);
      }),
    );
  });

  test('rejects a max below the base', () => {
    assert.throws(() => new Backoff({ baseMs: 100, maxMs: 50 }), /baseMs <= maxMs/);
  });
});

describe('SeqTracker', () => {
  test('lastSeq moves only contiguously; seqs above a hole go out as selective ACKs', () => {
    const t = new SeqTracker(10);
    assert.equal(t.process(11), true);
    assert.equal(t.process(13), true);
    assert.equal(t.process(14), true);
    assert.equal(t.lastSeq, 11);
    assert.ok(t.hasGap);
    assert.deepEqual(t.takeAck(), { upToSeq: 11, seqs: [13, 14] });
    assert.equal(t.takeAck(), null, 'nothing new: no ACK');
    assert.equal(t.process(12), true);
    assert.equal(t.lastSeq, 14);
    assert.deepEqual(t.takeAck(), { upToSeq: 14, seqs: [] });
  });

  test('a duplicate is not new but is ACKed again', () => {
    const t = new SeqTracker(0);
    t.process(1);
    t.process(3);
    t.takeAck();
    assert.equal(t.process(3), false);
    assert.equal(t.process(1), false);
    assert.deepEqual(t.takeAck(), { upToSeq: 1, seqs: [3] });
  });

  test('any order with duplicates: each seq is new exactly once, and lastSeq ends at the top', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }).chain((n) => fc.tuple(fc.constant(n), fc.shuffledSubarray([...Array(n).keys()].map((i) => i + 1).flatMap((s) => [s, s]), { minLength: 2 * n }))),
        ([n, order]) => {
          const t = new SeqTracker(0);
          const fresh = order.filter((s) => t.process(s));
          assert.deepEqual([...fresh].sort((a, b) => a - b), [...Array(n).keys()].map((i) => i + 1));
          assert.equal(t.lastSeq, n);
          assert.equal(t.hasGap, false);
        },
      ),
    );
  });

  test('a complete SYNC closes every hole up to head_seq', () => {
    const t = new SeqTracker(1);
    t.process(3);
    t.process(6);
    t.openSync(1);
    t.observe(3);
    t.observe(6);
    t.closeSync(6, false);
    assert.equal(t.lastSeq, 6);
    assert.equal(t.hasGap, false);
    assert.deepEqual(t.takeAck(), { upToSeq: 6, seqs: [] });
  });

  test('a partial SYNC closes only the hole below the first seq it sent', () => {
    const t = new SeqTracker(1);
    t.process(3);
    t.process(6);
    t.openSync(1);
    t.observe(3); // the page starts at 3: seq 2 does not exist
    t.observe(6);
    t.closeSync(9, true);
    assert.equal(t.lastSeq, 3, '4 and 5 may still be in later pages');
    assert.ok(t.hasGap);
  });

  test('a SYNC that starts above lastSeq proves nothing about the hole', () => {
    const t = new SeqTracker(1);
    t.process(5);
    t.openSync(4);
    t.observe(5);
    t.closeSync(5, false);
    assert.equal(t.lastSeq, 1);
  });
});

const facts = (f: Partial<EndFacts> = {}): EndFacts => ({
  welcomed: false,
  usedPreferred: false,
  error: null,
  goaway: null,
  resumeEndpoint: '',
  upgradeRetryAfterMs: undefined,
  now: 1000,
  ...f,
});
const policy = { enabled: true, afterAuthFailed: false, afterReplaced: false };
const gwError = (e: moor.v1.IError) => new GatewayError(moor.v1.Error.create(e));
const half = () => new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0.5 });

describe('planReconnect', () => {
  test('AUTH_FAILED and REPLACED stop unless told; disabled stops everything', () => {
    for (const code of [ErrorCode.AUTH_FAILED, ErrorCode.REPLACED]) {
      assert.equal(planReconnect(facts({ error: gwError({ code }) }), policy, half()).stop, true);
    }
    const told = { ...policy, afterAuthFailed: true, afterReplaced: true };
    assert.equal(planReconnect(facts({ error: gwError({ code: ErrorCode.AUTH_FAILED }) }), told, half()).stop, false);
    assert.equal(planReconnect(facts({ error: gwError({ code: ErrorCode.REPLACED }) }), told, half()).stop, false);
    assert.equal(planReconnect(facts(), { ...policy, enabled: false }, half()).stop, true);
  });

  test('GOAWAY: at goaway time + reconnect_after_ms, to its endpoint, never the resume endpoint', () => {
    const goaway = { msg: moor.v1.GoAway.create({ reconnectAfterMs: 500, endpoint: 'b:2' }), at: 800 };
    const plan = planReconnect(facts({ welcomed: true, resumeEndpoint: 'r:1', goaway, now: 1000 }), policy, half());
    assert.deepEqual(plan, { stop: false, delayMs: 300, target: 'b:2' });
    const bare = { msg: moor.v1.GoAway.create({}), at: 800 };
    assert.deepEqual(planReconnect(facts({ welcomed: true, resumeEndpoint: 'r:1', goaway: bare }), policy, half()), { stop: false, delayMs: 50, target: null });
  });

  test('server delays win: OVERLOADED retry_after_ms, HTTP 503 Retry-After', () => {
    const b = half();
    assert.deepEqual(planReconnect(facts({ error: gwError({ code: ErrorCode.OVERLOADED, retryAfterMs: 1234 }) }), policy, b), { stop: false, delayMs: 1234, target: null });
    assert.deepEqual(planReconnect(facts({ upgradeRetryAfterMs: 2000 }), policy, b), { stop: false, delayMs: 2000, target: null });
    assert.equal(b.attempts, 2, 'both count as failures for the backoff after them');
  });

  test('REDIRECT: the first is followed at once, a chain backs off', () => {
    const b = half();
    const redirect = facts({ error: gwError({ code: ErrorCode.REDIRECT, redirect: 'home:9' }) });
    assert.deepEqual(planReconnect(redirect, policy, b), { stop: false, delayMs: 0, target: 'home:9' });
    assert.deepEqual(planReconnect(redirect, policy, b), { stop: false, delayMs: 100, target: 'home:9' });
  });

  test('resume endpoint after a welcomed session; a failed one falls back home at once', () => {
    assert.deepEqual(planReconnect(facts({ welcomed: true, resumeEndpoint: 'r:1' }), policy, half()), { stop: false, delayMs: 50, target: 'r:1' });
    assert.deepEqual(planReconnect(facts({ usedPreferred: true }), policy, half()), { stop: false, delayMs: 0, target: null });
    assert.deepEqual(planReconnect(facts(), policy, half()), { stop: false, delayMs: 50, target: null });
  });
});

describe('endpoints and Retry-After', () => {
  test('host:port keeps the home transport, scheme and path', () => {
    const ca = { ca: 'PEM', servername: 'gw.example' };
    assert.deepEqual(endpointFrom('10.0.0.2:9001', { kind: 'ws', url: 'wss://gw.example:443/ws?x=1', tls: ca }), { kind: 'ws', url: 'wss://10.0.0.2:9001/ws?x=1', tls: ca });
    assert.deepEqual(endpointFrom('[::1]:7000', { kind: 'tcp', host: 'a', port: 1, tls: true }), { kind: 'tcp', host: '::1', port: 7000, tls: true });
    assert.equal((endpointFrom('ws://other:80/x', { kind: 'ws', url: 'ws://a:1/ws' }) as { url: string }).url, 'ws://other/x');
    assert.equal((endpointFrom('[::1]:7000', { kind: 'ws', url: 'ws://a:1/ws' }) as { url: string }).url, 'ws://[::1]:7000/ws');
    assert.throws(() => endpointFrom('nohost', { kind: 'tcp', host: 'a', port: 1 }), /host:port/);
    assert.throws(() => endpointFrom('gw.example', { kind: 'ws', url: 'ws://a:1/ws' }), /host:port/);
    assert.throws(() => endpointFrom('h:99999', { kind: 'tcp', host: 'a', port: 1 }), /host:port/);
  });

  test('Retry-After: seconds or an HTTP date', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('3', now), 3000);
    assert.equal(parseRetryAfter('Wed, 01 Jan 2025 00:00:05 GMT', now), 5000);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });
});

describe('FrameReader', () => {
  const frames = [
    { type: FrameType.PUSH, payload: Buffer.alloc(300, 7) },
    { type: FrameType.PONG },
    { type: FrameType.RESPONSE, stream: 70000, payload: Buffer.from('ok') },
  ];

  test('a byte stream fed one byte at a time yields the same frames', () => {
    const bytes = encodeFrames(frames);
    const r = new FrameReader();
    const got = [];
    for (let i = 0; i < bytes.length; i++) got.push(...r.feed(bytes.subarray(i, i + 1)).map((f) => ({ ...f, payload: Buffer.from(f.payload) })));
    assert.deepEqual(
      got.map((f) => [f.type, f.stream, f.payload.length]),
      [
        [FrameType.PUSH, 0, 300],
        [FrameType.PONG, 0, 0],
        [FrameType.RESPONSE, 70000, 2],
      ],
    );
    assert.deepEqual(got[0].payload, Buffer.alloc(300, 7));
  });

  test('a WebSocket message must hold exactly one whole frame', () => {
    const r = new FrameReader();
    assert.equal(r.message(encodeFrame(FrameType.PONG, 0, 0)).type, FrameType.PONG);
    assert.throws(() => r.message(encodeFrames(frames)), /exactly one frame/);
    assert.throws(() => r.message(encodeFrame(FrameType.PUSH, 0, 0, Buffer.alloc(10)).subarray(0, 5)), /exactly one frame/);
    assert.equal(r.message(encodeFrame(FrameType.PONG, 0, 0)).type, FrameType.PONG, 'usable after a bad message');
  });

  test('a bad header is BAD_FRAME; the frames before it still count', () => {
    const r = new FrameReader();
    const got = r.feed(Buffer.from([FrameType.PONG, 0, 0, 0, 0x0d, 0, 0, 0]));
    assert.deepEqual(
      got.map((f) => f.type),
      [FrameType.PONG],
    );
    assert.equal(r.error?.code, 'BAD_FRAME');
    assert.match(r.error?.message ?? '', /at byte 4: unknown frame type/);
    assert.deepEqual(r.feed(encodeFrame(FrameType.PONG, 0, 0)), [], 'nothing after a fault');
    assert.throws(() => new FrameReader().message(Buffer.from([0x03, 0x04, 0, 0])), /reserved flag/);
  });
});

describe('resolveOptions', () => {
  test('defaults, and a network kind by name', () => {
    const o = resolveOptions({ url: 'ws://h:1/ws', deviceId: 'd', token: 't', network: { kind: 'WIFI' } });
    assert.deepEqual([o.home.kind, (o.home as { url: string }).url], ['ws', 'ws://h:1/ws']);
    assert.equal(o.network.kind, moor.v1.NetworkKind.WIFI);
    assert.deepEqual([o.autoAck, o.reconnect.baseMs, o.reconnect.maxMs], [true, 500, 60_000]);
  });

  test('every mistake is reported at once', () => {
    assert.throws(
      () => resolveOptions({ transport: 'tcp', deviceId: '', token: 't', codecs: [7 as moor.v1.Codec], ackBatch: 0, reconnect: { baseMs: 100, maxMs: 10 } }),
      (e: Error) => ['host', 'port', 'deviceId', 'codecs', 'ackBatch', 'reconnect.maxMs'].every((k) => e.message.includes(k)),
    );
  });
});
