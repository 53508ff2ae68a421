/**
 * Token buckets, clock-injected (every method takes `now` in ms), and the two limits
 * built on them that sit in the device paths: the per-worker accept rate and the
 * per-session inbound rate (frames/s and bytes/s).
 *
 * The session limit keeps its state on the Session itself as three small integers
 * (two token counts and the second they were last refilled), refilled lazily when a
 * frame arrives: no object, no timer per session (design.md: ~1 KB per session).
 */

/** A classic token bucket: `rate` tokens/s, at most `burst` saved. Tokens may go negative (debt). */
export class TokenBucket {
  tokens: number;
  private at: number;

  constructor(
    public rate: number,
    public burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }

  refill(now: number): void {
    if (now > this.at) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.rate) / 1000);
      this.at = now;
    }
  }

  /** Takes `n` if that many are there. */
  take(n: number, now: number): boolean {
    this.refill(now);
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  /**
   * Takes `n` once min(n, burst) tokens are there, leaving the bucket in debt for the
   * rest: a push to 1,000 devices costs 1,000 tokens and must not wait forever behind
   * a burst of 100; it waits for a full bucket and the next ones wait out the debt.
   */
  takeDebt(n: number, now: number): boolean {
    this.refill(now);
    if (this.tokens < Math.min(n, this.burst)) return false;
    this.tokens -= n;
    return true;
  }

  /** Milliseconds until takeDebt(n) can succeed (0 if it can now). */
  msUntil(n: number, now: number): number {
    this.refill(now);
    const need = Math.min(n, this.burst);
    if (this.tokens >= need) return 0;
    return Math.max(1, Math.ceil(((need - this.tokens) * 1000) / this.rate));
  }
}

export interface AcceptLimits {
  accept_per_s: number;
  accept_burst: number;
  accept_retry_max_ms: number;
}

/** Shortest retry hint: a refusal tells the device to wait at least this long. */
export const MIN_RETRY_MS = 1_000;

/**
 * The accept rate of one worker (WebSocket upgrades and TCP connections together).
 * A refusal carries a jittered retry delay, uniform in [1 s, window], where the window
 * grows with the refusals of the last second divided by the rate (how long the crowd
 * at the door needs to get in at that rate), capped at `accept_retry_max_ms`. So a
 * reconnect storm of N devices comes back spread over about N / rate seconds.
 */
export class AcceptLimiter {
  private readonly bucket: TokenBucket;
  private sec = -1;
  private refusedThisSec = 0;
  private refusedLastSec = 0;
  refused = 0;

  constructor(
    private readonly limits: () => AcceptLimits,
    now: number,
    private readonly random: () => number = Math.random,
  ) {
    const l = limits();
    this.bucket = new TokenBucket(l.accept_per_s, l.accept_burst, now);
  }

  /** 0 when the connection may proceed, else the retry delay to tell it (ms, ≥ 1 s). */
  admit(now: number): number {
    const l = this.limits();
    this.bucket.rate = l.accept_per_s;
    this.bucket.burst = l.accept_burst;
    if (this.bucket.take(1, now)) return 0;
    const sec = Math.floor(now / 1000);
    if (sec !== this.sec) {
      this.refusedLastSec = sec === this.sec + 1 ? this.refusedThisSec : 0;
      this.refusedThisSec = 0;
      this.sec = sec;
    }
    this.refusedThisSec++;
    this.refused++;
    const crowd = Math.max(this.refusedThisSec, this.refusedLastSec);
    const max = Math.max(MIN_RETRY_MS, l.accept_retry_max_ms);
    const window = Math.min(max, Math.max(2 * MIN_RETRY_MS, Math.ceil((crowd * 1000) / l.accept_per_s)));
    return MIN_RETRY_MS + Math.floor(this.random() * (window - MIN_RETRY_MS));
  }
}

/** What the inbound limit reads and writes on a Session: three small integers. */
export interface InboundState {
  /** Frame tokens left. */
  inFrames: number;
  /** Byte tokens left. */
  inBytes: number;
  /** Second (since T0) of the last refill; -1 = never (full buckets). */
  inSec: number;
}

export interface InboundLimits {
  in_frames_per_s: number;
  in_frames_burst: number;
  in_bytes_per_s: number;
  in_bytes_burst: number;
}

/** Seconds are counted from here so they stay small integers (V8 Smis). */
const T0 = Date.now();

/** The second `inboundSecond` gives for Date.now() value `now` (≥ 0 in this process). */
export function inboundSecond(now: number): number {
  return Math.floor((now - T0) / 1000);
}

/**
 * Counts one device frame of `bytes` against the session's buckets, at second `sec`
 * (inboundSecond). Refilled once per whole second by `rate` (lazily, at the next
 * frame), capped at `burst`. False when either bucket is empty: the device has used
 * its burst and kept going faster than the rate, the point where it gets RATE_LIMITED.
 */
export function admitInbound(s: InboundState, bytes: number, sec: number, l: InboundLimits, bytesBurst = l.in_bytes_burst): boolean {
  if (s.inSec < 0) {
    s.inFrames = l.in_frames_burst;
    s.inBytes = bytesBurst;
    s.inSec = sec;
  } else if (sec > s.inSec) {
    const dt = sec - s.inSec;
    s.inFrames = Math.min(l.in_frames_burst, s.inFrames + dt * l.in_frames_per_s);
    s.inBytes = Math.min(bytesBurst, s.inBytes + dt * l.in_bytes_per_s);
    s.inSec = sec;
  }
  if (s.inFrames < 1 || s.inBytes < bytes) return false;
  s.inFrames -= 1;
  s.inBytes -= bytes;
  return true;
}

/**
 * The retry hint of RATE_LIMITED: long enough for the bucket that ran out (frames,
 * bytes, or both) to refill its burst, jittered by up to 2x.
 */
export function inboundRetryMs(l: InboundLimits, out: { frames: boolean; bytes: boolean }, bytesBurst = l.in_bytes_burst, random: () => number = Math.random): number {
  const frames = out.frames ? (l.in_frames_burst / l.in_frames_per_s) * 1000 : 0;
  const bytes = out.bytes ? (bytesBurst / l.in_bytes_per_s) * 1000 : 0;
  const base = Math.max(MIN_RETRY_MS, Math.ceil(Math.max(frames, bytes)));
  return base + Math.floor(random() * base);
}
