/**
 * Ramping connections up at the configured rate, with a live progress bar on stderr
 * (connections up, failures, rate); also the status line the other phases update.
 * On a terminal the bar redraws in place; otherwise (CI, a pipe) a line every 2 s.
 */
import type { ClientPool, PoolClient } from './pool';
import { int } from './stats';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Status {
  private readonly tty = Boolean(process.stderr.isTTY);
  private lastLine = 0;
  private drawn = false;

  /** Redraws the live line (throttled to one line per 2 s when stderr is not a terminal). */
  live(text: string): void {
    if (this.tty) {
      process.stderr.write(`\r\x1b[K${text}`);
      this.drawn = true;
      return;
    }
    const now = performance.now();
    if (now - this.lastLine < 2000) return;
    this.lastLine = now;
    process.stderr.write(`${text}\n`);
  }

  /** A permanent line (ends the live one). */
  log(text: string): void {
    if (this.drawn) process.stderr.write('\r\x1b[K');
    this.drawn = false;
    process.stderr.write(`soak: ${text}\n`);
  }
}

export function bar(done: number, total: number, width = 28): string {
  const f = total > 0 ? Math.min(1, done / total) : 1;
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(f * 100).toFixed(0).padStart(3)}%`;
}

export interface RampResult {
  target: number;
  open: number;
  /** Failed handshakes (each attempt counts) during this ramp. */
  failed: number;
  dead: number;
  seconds: number;
  /** Connections opened per second, over the ramp. */
  ratePerS: number;
  /** Highest rate over any 1 s window. */
  peakPerS: number;
  reasons: Record<string, number>;
  /** Receive-coalescing naps the client processes took during the ramp (client.ts). */
  clientNaps: number;
  /** [seconds since the ramp started, open, failed] every 250 ms. */
  series: Array<[number, number, number]>;
}

function diff(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

/**
 * Asks the pool for `n` connections in all (or `n(client)` from each) and waits until
 * every one is open or given up (failed handshakes are retried with backoff), or until
 * `deadline`.
 */
export async function ramp(pool: ClientPool, status: Status, label: string, n: number | ((c: PoolClient) => number), deadline: number): Promise<RampResult> {
  const failed0 = pool.sum((s) => s.failed);
  const open0 = pool.sum((s) => s.open);
  const reasons0 = pool.reasons();
  const naps0 = pool.sum((s) => s.naps);
  const target = pool.target(n);
  const t0 = performance.now();
  const series: Array<[number, number, number]> = [];
  let peak = 0;
  // Bounded by `deadline`.
  for (;;) {
    await sleep(250);
    const open = pool.sum((s) => s.open);
    const failed = pool.sum((s) => s.failed) - failed0;
    const t = (performance.now() - t0) / 1000;
    series.push([+t.toFixed(2), open, failed]);
    const back = series[Math.max(0, series.length - 5)];
    const rate = t > back[0] ? (open - back[1]) / (t - back[0]) : 0;
    if (series.length > 1) peak = Math.max(peak, rate);
    status.live(`${label} ${bar(open, target)} ${int(open)}/${int(target)} up · ${int(failed)} failed · ${int(rate)}/s · ${t.toFixed(0)} s`);
    const settled = pool.sum((s) => s.started) >= target && pool.sum((s) => s.pending + s.retrying) === 0;
    const dead = pool.dead();
    if (dead) throw new Error(`${label}: client ${dead.spec.id} (${dead.spec.localAddress}) exited while ramping`);
    if (settled || Date.now() > deadline) {
      const seconds = (performance.now() - t0) / 1000;
      const res: RampResult = {
        target,
        open,
        failed,
        dead: pool.sum((s) => s.dead),
        seconds: +seconds.toFixed(2),
        ratePerS: Math.round((open - open0) / seconds),
        peakPerS: Math.round(peak),
        reasons: diff(pool.reasons(), reasons0),
        clientNaps: pool.sum((s) => s.naps) - naps0,
        series,
      };
      status.log(`${label}: ${int(open)}/${int(target)} up in ${seconds.toFixed(1)} s (${int(res.ratePerS)}/s, peak ${int(res.peakPerS)}/s), ${int(failed)} failed handshakes, ${int(res.clientNaps)} client naps${settled ? '' : ' — DEADLINE reached'}`);
      return res;
    }
  }
}

/** Two ramps run back to back (the WebSocket then the raw TCP sessions) as one: failures, rates and series over both. */
export function joinRamps(a: RampResult, b: RampResult): RampResult {
  const seconds = a.seconds + b.seconds;
  const reasons = { ...a.reasons };
  for (const [k, v] of Object.entries(b.reasons)) reasons[k] = (reasons[k] ?? 0) + v;
  return {
    target: b.target,
    open: b.open,
    failed: a.failed + b.failed,
    dead: b.dead,
    seconds: +seconds.toFixed(2),
    ratePerS: seconds > 0 ? Math.round((a.ratePerS * a.seconds + b.ratePerS * b.seconds) / seconds) : 0,
    peakPerS: Math.max(a.peakPerS, b.peakPerS),
    reasons,
    clientNaps: a.clientNaps + b.clientNaps,
    series: [...a.series, ...b.series.map(([t, open, failed]): [number, number, number] => [+(t + a.seconds).toFixed(2), open, failed + a.failed])],
  };
}
