/**
 * Child processes of a bench and their memory: every process a bench starts is
 * registered here and killed (its whole process group when detached) on exit,
 * on SIGINT/SIGTERM and on an uncaught error, so a failed run leaves nothing behind.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

/** Resident memory of a process, bytes (from /proc/<pid>/status). */
export interface Rss {
  rss: number;
  anon: number;
  file: number;
  shmem: number;
}

export function readRss(pid: number): Rss {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!m) throw new Error(`/proc/${pid}/status has no ${key}`);
    return Number(m[1]) * 1024;
  };
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), shmem: kb('RssShmem') };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * `n` samples `everyMs` apart; the one with the smallest VmRSS wins. Nothing outside
 * the process can force a GC, so the minimum is the sample with the least garbage in it.
 */
export async function minRss(pid: number, n: number, everyMs: number): Promise<{ min: Rss; samples: number[] }> {
  let min: Rss | null = null;
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    if (i > 0) await sleep(everyMs);
    const r = readRss(pid);
    samples.push(r.rss);
    if (!min || r.rss < min.rss) min = r;
  }
  return { min: min as Rss, samples };
}

interface Owned {
  child: ChildProcess;
  /** Started with `detached: true`: kill the whole group (e.g. a cluster primary and its workers). */
  group: boolean;
}

const owned = new Map<ChildProcess, Owned>();
const dirs = new Set<string>();
let installed = false;

function alive(c: ChildProcess): boolean {
  return c.exitCode === null && c.signalCode === null;
}

/** SIGKILL everything still running and remove registered temp dirs. Synchronous: safe in 'exit'. */
export function killAll(): void {
  for (const o of owned.values()) {
    const pid = o.child.pid;
    if (pid === undefined) continue;
    try {
      if (o.group) process.kill(-pid, 'SIGKILL');
      else if (alive(o.child)) o.child.kill('SIGKILL');
    } catch {}
  }
  owned.clear();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: stopping everything this bench started\n`);
      killAll();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (err) => {
    process.stderr.write(`${err.stack ?? err}\n`);
    killAll();
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : err}\n`);
    killAll();
    process.exit(1);
  });
}

/** Register a child to be killed when the bench ends, however it ends. */
export function own(child: ChildProcess, opts: { group?: boolean } = {}): ChildProcess {
  install();
  const o: Owned = { child, group: opts.group ?? false };
  owned.set(child, o);
  child.once('exit', () => {
    // A group leader's exit does not end its group: keep group entries until stopped.
    if (!o.group) owned.delete(child);
  });
  return child;
}

/** Register a directory to be removed when the bench ends. */
export function ownDir(dir: string): string {
  install();
  dirs.add(dir);
  return dir;
}

/** SIGTERM, wait up to `ms`, then SIGKILL (the group, when it was owned with `group`). */
export async function stop(child: ChildProcess, ms: number): Promise<void> {
  const group = owned.get(child)?.group ?? false;
  const pid = child.pid;
  if (pid === undefined) return;
  if (alive(child)) {
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(ms)]);
  }
  try {
    if (group) process.kill(-pid, 'SIGKILL');
    else if (alive(child)) child.kill('SIGKILL');
  } catch {}
  owned.delete(child);
}
