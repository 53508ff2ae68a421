/**
 * Forced garbage collection in the server processes before each memory reading, so
 * bytes per connection count what sessions retain, not handshake garbage that the
 * next GC would free. Through bench/lib/inspector.ts: a server started with
 * `gcEnv()` in its environment opens an inspector when sent SIGUSR1 and prints its
 * URL on stderr; node:cluster gives worker k the primary's inspect port + k.
 * The inspectors stay attached from the baseline reading to the held one, so their
 * own memory is in both and cancels out. Best effort: when attaching fails, the
 * readings go on without a forced GC and the report says so.
 */

import { freePort } from '../../src/util/ports';
import { Inspector } from '../lib/inspector';
import { sleep } from '../lib/procs';

/** Collects "Debugger listening on ws://…" lines from a server's stderr. */
export class InspectorUrls {
  private readonly waiters: Array<(url: string) => void> = [];

  line(l: string): void {
    const m = /Debugger listening on (ws:\/\/\S+)/.exec(l);
    if (m) this.waiters.shift()?.(m[1]);
  }

  next = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const w = (url: string): void => {
        clearTimeout(timer);
        resolve(url);
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error('no inspector URL on stderr within 10 s'));
      }, 10_000);
      this.waiters.push(w);
    });
}

/** NODE_OPTIONS letting SIGUSR1 open an inspector on a free port (`offset` below it: cluster workers add their id). */
export async function gcEnv(offset: number): Promise<NodeJS.ProcessEnv> {
  const port = await freePort();
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --inspect-port=${port - offset}`.trim() };
}

export class ForcedGc {
  private constructor(
    private readonly inspectors: Inspector[],
    readonly note: string,
    private readonly pids: number[] = [],
  ) {}

  /** Attaches to each process in turn (its URL comes from the stderr it shares with `urls`). */
  static async attach(procs: Array<{ pid: number; urls: InspectorUrls }>): Promise<ForcedGc> {
    const out: Inspector[] = [];
    try {
      for (const p of procs) out.push(await Inspector.attach(p.pid, p.urls.next));
      return new ForcedGc(out, 'forced GC (inspector) before each reading', procs.map((p) => p.pid));
    } catch (err) {
      for (const i of out) i.close();
      return new ForcedGc([], `no forced GC: ${(err as Error).message}`);
    }
  }

  static none(note: string): ForcedGc {
    return new ForcedGc([], note);
  }

  /** The open inspectors, with the pid each is attached to (for loop-probe.ts). */
  sessions(): Array<{ pid: number; insp: Inspector }> {
    return this.inspectors.map((insp, k) => ({ pid: this.pids[k] ?? 0, insp }));
  }

  get active(): boolean {
    return this.inspectors.length > 0;
  }

  /** Full GC in every attached process, then a moment for the allocator to hand pages back. */
  async collect(): Promise<void> {
    if (!this.active) return;
    await Promise.all(this.inspectors.map((i) => i.gc().catch(() => {})));
    await sleep(500);
  }

  close(): void {
    for (const i of this.inspectors) i.close();
    this.inspectors.length = 0;
  }
}
