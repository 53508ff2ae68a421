/**
 * What the machine did to the probes during each phase, from counters read around each
 * measured block: how long processes waited runnable for a CPU (schedstat), the
 * hypervisor's steal (/proc/stat) and the I/O stall (PSI). On a 2-core machine shared
 * with the load clients, a latency tail is often a queue for a CPU or a stalled disk
 * rather than work, and a virtual machine's vCPUs stop now and then.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpuJiffies, ioStallUs, stallPercent } from '../soak/sampler';

/** Run-queue wait of `pid`'s main thread, or of all its threads, ns; null without schedstats. */
export function runWaitNs(pid: number, mainOnly = false): number | null {
  let total = 0;
  try {
    for (const tid of mainOnly ? [String(pid)] : readdirSync(`/proc/${pid}/task`)) {
      try {
        total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]);
      } catch {} // a thread that just ended
    }
  } catch {
    return null;
  }
  return total;
}

/** A counter's growth summed over measured intervals, with their wall time. */
class Delta {
  sum = 0;
  wallMs = 0;
  private start: { v: number | null; ms: number } | null = null;

  constructor(private readonly read: () => number | null) {}

  begin(): void {
    this.start = { v: this.read(), ms: performance.now() };
  }

  end(): void {
    const v = this.read();
    if (this.start && v !== null && this.start.v !== null) {
      this.sum += v - this.start.v;
      this.wallMs += performance.now() - this.start.ms;
    }
    this.start = null;
  }
}

const r1 = (x: number): number => Math.round(x * 10) / 10;

/** One phase's counters: begin/end around each of its blocks. */
export class PhaseCounters {
  private readonly worker: Delta;
  private readonly main: Delta;
  private readonly bench = new Delta(() => runWaitNs(process.pid));
  private readonly steal = new Delta(() => cpuJiffies()?.[7] ?? null);
  private readonly jiffies = new Delta(() => cpuJiffies()?.reduce((a, b) => a + b, 0) ?? null);
  private readonly io = new Delta(ioStallUs);
  private readonly all: Delta[];

  constructor(workerPid: number) {
    this.worker = new Delta(() => runWaitNs(workerPid));
    this.main = new Delta(() => runWaitNs(workerPid, true));
    this.all = [this.worker, this.main, this.bench, this.steal, this.jiffies, this.io];
  }

  begin(): void {
    for (const d of this.all) d.begin();
  }

  end(): void {
    for (const d of this.all) d.end();
  }

  /** ms per second of wall time the worker (all threads, main thread) and this process waited for a CPU; steal in %. */
  runWait(): { worker: number; worker_main: number; bench: number; steal_pct: number } {
    const msPerS = (d: Delta) => (d.wallMs > 0 ? r1(d.sum / 1e6 / (d.wallMs / 1000)) : Number.NaN);
    return {
      worker: msPerS(this.worker),
      worker_main: msPerS(this.main),
      bench: msPerS(this.bench),
      steal_pct: this.jiffies.sum > 0 ? r1((100 * this.steal.sum) / this.jiffies.sum) : 0,
    };
  }

  /** Percent of the phase's time some task waited for I/O (0 without PSI). */
  ioStallPct(): number {
    return +stallPercent(this.io.sum, this.io.wallMs).toFixed(2);
  }
}
