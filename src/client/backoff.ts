/**
 * Reconnect delays: capped exponential backoff with full jitter
 * (delay = random() × min(maxMs, baseMs × 2^attempt)), so a fleet that lost its
 * gateway at the same instant comes back spread over the whole window.
 */
export interface BackoffOptions {
  /** First window, ms. Default 500. */
  baseMs?: number;
  /** Largest window, ms. Default 60,000. */
  maxMs?: number;
  /** Uniform in [0, 1); injectable for tests. Default Math.random. */
  random?: () => number;
}

export class Backoff {
  readonly baseMs: number;
  readonly maxMs: number;
  private readonly random: () => number;
  private n = 0;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? 500;
    this.maxMs = opts.maxMs ?? 60_000;
    this.random = opts.random ?? Math.random;
    if (!(this.baseMs > 0) || !(this.maxMs >= this.baseMs)) {
      throw new RangeError(`backoff: need 0 < baseMs <= maxMs (got ${this.baseMs}, ${this.maxMs})`);
    }
  }

  /** Failed attempts since the last success. */
  get attempts(): number {
    return this.n;
  }

  /** The upper bound of the next delay. */
  window(): number {
    // 2^n overflows to Infinity long after the cap applies; min() keeps it finite.
    return Math.min(this.maxMs, this.baseMs * 2 ** this.n);
  }

  /** The delay before the next attempt; counts one more failure. */
  next(): number {
    const d = Math.floor(this.random() * this.window());
    this.n++;
    return d;
  }

  /** Counts a failure whose delay the server chose (Retry-After, GOAWAY, ...). */
  skip(): void {
    this.n++;
  }

  reset(): void {
    this.n = 0;
  }
}
