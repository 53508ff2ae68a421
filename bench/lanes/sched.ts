/**
 * How long a process's threads waited in the kernel's run queue (runnable, not running),
 * from /proc/<pid>/task/<tid>/schedstat (second field, ns). Per phase this says how much
 * of a latency tail is waiting for a CPU rather than work: on a 2-core machine shared
 * with the load clients, the gateway and the bench's own probe loop both queue.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Run-queue wait of `pid`'s main thread, or of all its threads, ns; null without schedstats. */
export function runWaitNs(pid: number, mainOnly = false): number | null {
  let total = 0;
  try {
    for (const tid of mainOnly ? [String(pid)] : readdirSync(`/proc/${pid}/task`)) {
      try {
        const f = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ');
        total += Number(f[1]);
      } catch {} // a thread that just ended
    }
  } catch {
    return null;
  }
  return total;
}

/** Accumulates run-queue wait of a set of processes over measured intervals. */
export class RunWait {
  private waitNs = 0;
  private wallMs = 0;
  private start: { ns: number | null; ms: number } | null = null;

  constructor(
    private readonly pids: () => number[],
    private readonly mainOnly = false,
  ) {}

  private read(): number | null {
    let sum = 0;
    for (const pid of this.pids()) {
      const ns = runWaitNs(pid, this.mainOnly);
      if (ns === null) return null;
      sum += ns;
    }
    return sum;
  }

  begin(): void {
    this.start = { ns: this.read(), ms: performance.now() };
  }

  end(): void {
    if (!this.start) return;
    const ns = this.read();
    if (ns !== null && this.start.ns !== null) {
      this.waitNs += ns - this.start.ns;
      this.wallMs += performance.now() - this.start.ms;
    }
    this.start = null;
  }

  /** Milliseconds spent waiting for a CPU per second of wall time (summed over threads). */
  msPerS(): number {
    return this.wallMs > 0 ? Math.round((this.waitNs / 1e6 / (this.wallMs / 1000)) * 10) / 10 : Number.NaN;
  }
}

/** [steal, total] jiffies of the whole machine (/proc/stat), or null. */
function stealJiffies(): [number, number] | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
    return [f[7], f.reduce((a, b) => a + b, 0)];
  } catch {
    return null;
  }
}

/**
 * The share of CPU time the hypervisor gave to someone else over measured intervals
 * (steal): a virtual machine's vCPUs stop now and then, and every probe in flight then
 * waits, idle phase or loaded.
 */
export class Steal {
  private steal = 0;
  private total = 0;
  private start: [number, number] | null = null;

  begin(): void {
    this.start = stealJiffies();
  }

  end(): void {
    const now = stealJiffies();
    if (now && this.start) {
      this.steal += now[0] - this.start[0];
      this.total += now[1] - this.start[1];
    }
    this.start = null;
  }

  percent(): number {
    return this.total > 0 ? Math.round((1000 * this.steal) / this.total) / 10 : 0;
  }
}
