/**
 * What takes the workers' event loops during the reconnect storm, through the inspectors
 * gc.ts already holds: an event-loop delay histogram (perf_hooks monitorEventLoopDelay,
 * installed with Runtime.evaluate) in each surviving worker, and with --storm-profile a
 * V8 CPU profile (1 ms sampling) summarized by self time, by the nearest moor function
 * on the stack, and for the longest stretch without an idle sample (the worst stall).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Inspector } from '../lib/inspector';

const START = `(() => {
  const h = process.mainModule.require('perf_hooks').monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  globalThis.__soakLoop = h;
  return 1;
})()`;

const READ = `(() => {
  const h = globalThis.__soakLoop;
  globalThis.__soakLoop = null;
  if (!h) return 'null';
  h.disable();
  const ms = (ns) => Math.round(ns / 1e4) / 100;
  return JSON.stringify({ max_ms: ms(h.max), p99_ms: ms(h.percentile(99)), p50_ms: ms(h.percentile(50)), mean_ms: ms(h.mean) });
})()`;

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: CallFrame; children?: number[] }>;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  ms: number;
  idle_ms: number;
  gc_ms: number;
  /** Functions by self time, ms. */
  top_self: Array<[string, number]>;
  /** The nearest moor (dist/src) function on each sample's stack, by time, ms. */
  top_moor: Array<[string, number]>;
  /** The longest run of samples with no idle one: its length and what filled it. */
  longest_busy_ms: number;
  longest_busy_moor: Array<[string, number]>;
}

export interface LoopReport {
  worker: number;
  pid: number;
  max_ms: number;
  p99_ms: number;
  p50_ms: number;
  mean_ms: number;
  profile: ProfileSummary | null;
  profileFile: string | null;
}

function label(f: CallFrame): string {
  const file = f.url ? path.basename(f.url) : '';
  return `${f.functionName || '(anonymous)'}${file ? ` ${file}:${f.lineNumber + 1}` : ''}`;
}

function top(m: Map<string, number>, n: number): Array<[string, number]> {
  return [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, us]) => [k, Math.round(us / 100) / 10]);
}

export function summarizeProfile(p: CpuProfile): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const moorOf = new Map<number, string>();
  const moor = (id: number): string => {
    const known = moorOf.get(id);
    if (known !== undefined) return known;
    // No moor frame on the stack: the nearest JavaScript frame (a native function's own
    // name can be wrong: V8 names some API callbacks after another native function).
    let cur: number | undefined = id;
    let found = '';
    while (cur !== undefined) {
      const f = (byId.get(cur) as { callFrame: CallFrame }).callFrame;
      if (f.url.includes('/dist/src/')) {
        found = label(f);
        break;
      }
      if (!found && f.url) found = label(f);
      cur = parent.get(cur);
    }
    found ||= label((byId.get(id) as { callFrame: CallFrame }).callFrame);
    moorOf.set(id, found);
    return found;
  };
  const self = new Map<string, number>();
  const byMoor = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let gc = 0;
  let run = new Map<string, number>();
  let runUs = 0;
  let best = new Map<string, number>();
  let bestUs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const us = p.timeDeltas[i + 1] ?? 0;
    const node = byId.get(p.samples[i]);
    if (!node) continue;
    const name = node.callFrame.functionName;
    total += us;
    if (name === '(idle)') {
      idle += us;
      if (runUs > bestUs) [best, bestUs] = [run, runUs];
      run = new Map();
      runUs = 0;
      continue;
    }
    if (name === '(garbage collector)') gc += us;
    const l = label(node.callFrame);
    self.set(l, (self.get(l) ?? 0) + us);
    const m = moor(node.id);
    byMoor.set(m, (byMoor.get(m) ?? 0) + us);
    run.set(m, (run.get(m) ?? 0) + us);
    runUs += us;
  }
  if (runUs > bestUs) [best, bestUs] = [run, runUs];
  const ms = (us: number): number => Math.round(us / 100) / 10;
  return { ms: ms(total), idle_ms: ms(idle), gc_ms: ms(gc), top_self: top(self, 12), top_moor: top(byMoor, 12), longest_busy_ms: ms(bestUs), longest_busy_moor: top(best, 8) };
}

/** Started in the given workers' inspectors before the kill; `stop` reads and summarizes. */
export class LoopProbe {
  private constructor(
    private readonly procs: Array<{ worker: number; pid: number; insp: Inspector }>,
    private readonly profile: boolean,
  ) {}

  static async start(procs: Array<{ worker: number; pid: number; insp: Inspector }>, profile: boolean): Promise<LoopProbe> {
    const ok: typeof procs = [];
    for (const p of procs) {
      try {
        await p.insp.call('Runtime.evaluate', { expression: START, returnByValue: true });
        if (profile) {
          await p.insp.call('Profiler.enable');
          await p.insp.call('Profiler.setSamplingInterval', { interval: 1000 });
          await p.insp.call('Profiler.start');
        }
        ok.push(p);
      } catch {}
    }
    return new LoopProbe(ok, profile);
  }

  /** `stem`: where the raw .cpuprofile files go (stem-worker<k>.cpuprofile). */
  async stop(stem: string): Promise<LoopReport[]> {
    const out: LoopReport[] = [];
    for (const p of this.procs) {
      try {
        const r = await p.insp.call<{ result: { value: string } }>('Runtime.evaluate', { expression: READ, returnByValue: true });
        const loop = JSON.parse(r.result.value) as Omit<LoopReport, 'worker' | 'pid' | 'profile' | 'profileFile'> | null;
        let profile: ProfileSummary | null = null;
        let profileFile: string | null = null;
        if (this.profile) {
          const res = await p.insp.call<{ profile: CpuProfile }>('Profiler.stop');
          profileFile = `${stem}-worker${p.worker}.cpuprofile`;
          writeFileSync(profileFile, JSON.stringify(res.profile));
          profile = summarizeProfile(res.profile);
        }
        if (loop) out.push({ worker: p.worker, pid: p.pid, ...loop, profile, profileFile });
      } catch {
        // The worker went away (or its inspector did): nothing to report for it.
      }
    }
    return out;
  }
}
