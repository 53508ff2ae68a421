/**
 * Token buckets and the two device-side limits built on them (src/flow/bucket.ts),
 * driven by an injected clock: the accept rate with its jittered retry, and the
 * per-session inbound limit kept in three integers.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AcceptLimiter, admitInbound, type InboundLimits, type InboundState, inboundRetryMs, MIN_RETRY_MS, TokenBucket } from '../src/flow/bucket';

describe('TokenBucket', () => {
  test('a burst, then the rate, never more than the burst saved', () => {
    const b = new TokenBucket(10, 5, 0);
    for (let i = 0; i < 5; i++) assert.equal(b.take(1, 0), true);
    assert.equal(b.take(1, 0), false);
    assert.equal(b.take(1, 99), false, '0.99 tokens after 99 ms');
    assert.equal(b.take(1, 100), true, 'one token per 100 ms at 10/s');
    assert.equal(b.take(1, 100), false);
    b.refill(60_000);
    assert.equal(b.tokens, 5, 'an idle minute saves no more than the burst');
  });

  test('debt: a take bigger than the burst waits for a full bucket, then delays the next', () => {
    const b = new TokenBucket(100, 10, 0);
    assert.equal(b.takeDebt(1, 0), true);
    assert.equal(b.takeDebt(1000, 0), false, 'the bucket is not full');
    assert.equal(b.msUntil(1000, 0), 10, '1 token short of the burst at 100/s');
    assert.equal(b.takeDebt(1000, 10), true, '1,000 > burst, taken from a full bucket');
    assert.equal(b.tokens, -990);
    assert.equal(b.takeDebt(1, 5_010), false, 'still in debt after 5 s');
    assert.equal(b.msUntil(1, 5_010), 4_910);
    assert.equal(b.takeDebt(1, 9_920), true);
  });

  test('a cost-1 take needs a whole token, not just a positive bucket', () => {
    const b = new TokenBucket(2, 1, 0);
    assert.equal(b.takeDebt(1, 0), true);
    assert.equal(b.takeDebt(1, 5), false, '0.01 tokens are not enough');
    assert.equal(b.takeDebt(1, 500), true);
  });
});

describe('AcceptLimiter', () => {
  const limits = { accept_per_s: 10, accept_burst: 20, accept_retry_max_ms: 30_000 };

  test('the burst is accepted, then the rate; refusals carry a retry of at least 1 s', () => {
    const a = new AcceptLimiter(() => limits, 0, () => 0.5);
    for (let i = 0; i < 20; i++) assert.equal(a.admit(0), 0);
    const r = a.admit(0);
    assert.ok(r >= MIN_RETRY_MS, `retry ${r}`);
    assert.equal(a.admit(100), 0, 'a token came back after 100 ms');
    assert.notEqual(a.admit(100), 0);
    assert.equal(a.refused, 2);
  });

  test('the retry window grows with the crowd at the door and is capped', () => {
    const top = () => 0.999_999;
    const a = new AcceptLimiter(() => limits, 0, top);
    for (let i = 0; i < 20; i++) a.admit(0);
    // 10 refusals in this second at 10/s: the crowd needs ~1 s, the window is at least 2 s.
    let last = 0;
    for (let i = 0; i < 10; i++) last = a.admit(0);
    assert.ok(last >= 1_900 && last < 2_000, `small crowd: ${last}`);
    // 1,000 refusals in a second at 10/s would need 100 s: capped at 30 s.
    for (let i = 0; i < 1000; i++) last = a.admit(500);
    assert.ok(last >= 29_000 && last < 30_000, `capped: ${last}`);
    // Uniform below the window: the lowest draw is 1 s.
    const low = new AcceptLimiter(() => limits, 0, () => 0);
    for (let i = 0; i < 20; i++) low.admit(0);
    assert.equal(low.admit(0), MIN_RETRY_MS);
  });

  test('a storm comes back spread out: retries are spread over the window', () => {
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const a = new AcceptLimiter(() => limits, 0, rnd);
    const retries: number[] = [];
    for (let i = 0; i < 300; i++) {
      const r = a.admit(0);
      if (r > 0) retries.push(r);
    }
    assert.equal(retries.length, 280);
    const secs = new Set(retries.map((r) => Math.floor(r / 1000)));
    assert.ok(secs.size >= 20, `retries fall in ${secs.size} different seconds`);
  });

  test('limits are read at every call (a reload applies at once)', () => {
    const l = { ...limits };
    const a = new AcceptLimiter(() => l, 0);
    for (let i = 0; i < 20; i++) a.admit(0);
    assert.notEqual(a.admit(0), 0);
    l.accept_per_s = 1000;
    assert.equal(a.admit(10), 0, '10 ms at 1,000/s is 10 tokens');
  });
});

describe('inbound limit per session', () => {
  const l: InboundLimits = { in_frames_per_s: 10, in_frames_burst: 30, in_bytes_per_s: 1000, in_bytes_burst: 5000 };
  const fresh = (): InboundState => ({ inFrames: 0, inBytes: 0, inSec: -1 });

  test('a burst is tolerated', () => {
    const s = fresh();
    for (let i = 0; i < 30; i++) assert.equal(admitInbound(s, 10, 100, l), true, `frame ${i}`);
    assert.equal(admitInbound(s, 10, 100, l), false, 'the 31st frame in the same second');
  });

  test('the rate is sustainable forever; above it the session is cut once the burst is used', () => {
    const s = fresh();
    for (let sec = 0; sec < 600; sec++) {
      for (let i = 0; i < 10; i++) assert.equal(admitInbound(s, 50, sec, l), true, `sec ${sec} frame ${i}`);
    }
    // 12 frames/s (20 % above the rate): the 30-frame burst lasts 15 s.
    const t = fresh();
    let cut = -1;
    for (let sec = 0; sec < 100 && cut < 0; sec++) {
      for (let i = 0; i < 12; i++) {
        if (!admitInbound(t, 10, sec, l)) {
          cut = sec;
          break;
        }
      }
    }
    assert.ok(cut >= 10 && cut <= 16, `cut after ${cut} s`);
  });

  test('bytes count on their own', () => {
    const s = fresh();
    assert.equal(admitInbound(s, 4000, 0, l), true);
    assert.equal(admitInbound(s, 1001, 0, l), false, '5,001 bytes in one second');
    assert.equal(admitInbound(s, 1000, 0, l), true, 'exactly the burst');
    assert.equal(admitInbound(s, 1, 0, l), false);
    assert.equal(admitInbound(s, 1000, 1, l), true, 'a second refills 1,000 bytes');
  });

  test('the byte burst can be raised to one maximum frame', () => {
    const s = fresh();
    assert.equal(admitInbound(s, 65_550, 0, l, 65_550), true);
  });

  test('state is three integers, refilled lazily', () => {
    const s = fresh();
    admitInbound(s, 7, 1234, l);
    assert.deepEqual(s, { inFrames: 29, inBytes: 4993, inSec: 1234 });
    for (const v of Object.values(s)) assert.ok(Number.isInteger(v));
  });

  test('RATE_LIMITED retry: the time for the bucket that ran out to refill its burst, jittered up to 2x', () => {
    // Frames: 30 at 10/s = 3 s; bytes: 5,000 at 1,000/s = 5 s.
    const both = { frames: true, bytes: true };
    assert.equal(inboundRetryMs(l, both, l.in_bytes_burst, () => 0), 5000);
    assert.equal(inboundRetryMs(l, both, l.in_bytes_burst, () => 0.999_999), 9999);
    assert.equal(inboundRetryMs(l, { frames: true, bytes: false }, l.in_bytes_burst, () => 0), 3000);
    assert.equal(inboundRetryMs(l, { frames: false, bytes: true }, l.in_bytes_burst, () => 0), 5000);
    // The byte burst the gateway really uses (never below one maximum frame).
    assert.equal(inboundRetryMs(l, { frames: false, bytes: true }, 70_000, () => 0), 70_000);
    // Never below a second.
    assert.equal(inboundRetryMs({ ...l, in_frames_burst: 1 }, { frames: true, bytes: false }, l.in_bytes_burst, () => 0), MIN_RETRY_MS);
  });
});
