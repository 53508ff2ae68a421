/**
 * The per-frame policy: which codec a payload goes out with, given what the device
 * negotiated and how loaded the worker is.
 *
 * - A payload below `min_bytes` goes out as it is; so does one whose compressed form
 *   would not be smaller (the compressor writes into a buffer one byte shorter).
 * - zstd (with the session's dictionary, or without) for devices that listed zstd;
 *   lz4 for those that listed only lz4.
 * - Back-off: when the worker's event loop lags (its worst stall in a second above `lag_ms`) it
 *   steps, once per second of lag, from FULL to RAISED (threshold x 4) to LZ4 (zstd
 *   sessions get lz4 if they listed it, else identity) to IDENTITY. Lag below half of
 *   `lag_ms` for `lag_recover_ms` steps back one state.
 *
 * The state machine is pure and clock-injected; LagMonitor feeds it.
 */
import { Codec } from './codec';

export const PolicyState = { FULL: 0, RAISED: 1, LZ4: 2, IDENTITY: 3 } as const;
export type PolicyStateValue = (typeof PolicyState)[keyof typeof PolicyState];
/** The threshold multiplier from RAISED on. */
export const RAISED_FACTOR = 4;

/** The session value's codec bits (see gateway.ts): what the device listed and the gateway offers. */
export const ACCEPTS_LZ4 = 1;
export const ACCEPTS_ZSTD = 2;

export interface LagConfig {
  lag_ms: number;
  lag_recover_ms: number;
}

export class LagPolicy {
  state: PolicyStateValue = PolicyState.FULL;
  private calmSince: number;

  constructor(
    private readonly config: () => LagConfig,
    now: number,
  ) {
    this.calmSince = now;
  }

  /** One reading of the lag (ms) per period; returns true when the state changed. */
  observe(lagMs: number, now: number): boolean {
    const { lag_ms, lag_recover_ms } = this.config();
    if (lagMs > lag_ms) {
      this.calmSince = now;
      if (this.state === PolicyState.IDENTITY) return false;
      this.state = (this.state + 1) as PolicyStateValue;
      return true;
    }
    if (lagMs >= lag_ms / 2) {
      this.calmSince = now;
      return false;
    }
    if (this.state === PolicyState.FULL || now - this.calmSince < lag_recover_ms) return false;
    this.state = (this.state - 1) as PolicyStateValue;
    this.calmSince = now;
    return true;
  }

  /**
   * The codec for a payload of `length` bytes to a session whose codec bits are
   * `accepts`, or -1 when it goes out as it is because of the state (back-off) and
   * -2 because it is small.
   */
  codecFor(accepts: number, length: number, minBytes: number): number {
    if (accepts === 0) return Codec.IDENTITY;
    const s = this.state;
    if (s === PolicyState.IDENTITY) return -1;
    if (length < (s === PolicyState.FULL ? minBytes : minBytes * RAISED_FACTOR)) return -2;
    if (s === PolicyState.LZ4) return accepts & ACCEPTS_LZ4 ? Codec.LZ4 : -1;
    return accepts & ACCEPTS_ZSTD ? Codec.ZSTD : Codec.LZ4;
  }
}

/**
 * Measures event-loop lag with a timer that should fire every `tickMs`: how late it
 * fires is how long the loop was busy. The worst lateness of each period goes to
 * `observe` (ms). (perf_hooks.monitorEventLoopDelay read back percentiles that missed
 * a 100 ms block here, and includes its own resolution in every sample.)
 */
export class LagMonitor {
  private timer: NodeJS.Timeout | null = null;
  private last = 0;
  private worst = 0;
  private periodStart = 0;

  constructor(
    private readonly observe: (lagMs: number, now: number) => void,
    private readonly periodMs = 1000,
    private readonly tickMs = 50,
  ) {}

  start(): void {
    this.last = this.periodStart = performance.now();
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  private tick(): void {
    const t = performance.now();
    const late = t - this.last - this.tickMs;
    this.last = t;
    if (late > this.worst) this.worst = late;
    if (t - this.periodStart < this.periodMs) return;
    const lag = this.worst;
    this.worst = 0;
    this.periodStart = t;
    this.observe(lag, Date.now());
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
