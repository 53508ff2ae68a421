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

/** Resident bytes by kind of mapping, from /proc/<pid>/smaps. */
export interface RssBreakdown {
  /** The main thread's malloc heap (brk): uWS's sockets, N-API and libuv allocations. */
  mallocMain: number;
  /** glibc arenas of other threads (libuv pool: crypto; lmdb's writer). */
  mallocThreads: number;
  /** Other anonymous memory: V8's heap pages and large mmap'd allocations. */
  anonOther: number;
  /** The embedded store's memory-mapped files (*.mdb): page cache, shared, reclaimable. */
  storeFile: number;
  /** Other file mappings: executable and library pages. */
  codeFile: number;
}

const ARENA = 64 * 1024 * 1024;

export function readBreakdown(pid: number): RssBreakdown {
  const out: RssBreakdown = { mallocMain: 0, mallocThreads: 0, anonOther: 0, storeFile: 0, codeFile: 0 };
  const maps: Array<{ lo: number; hi: number; perm: string; name: string; rss: number }> = [];
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) maps.push({ lo: Number.parseInt(m[1], 16), hi: Number.parseInt(m[2], 16), perm: m[3], name: m[4], rss: 0 });
    else if (line.startsWith('Rss:') && maps.length) maps[maps.length - 1].rss = Number(line.split(/\s+/)[1]) * 1024;
  }
  for (let i = 0; i < maps.length; i++) {
    const m = maps[i];
    const next = maps[i + 1];
    if (m.name === '[heap]') out.mallocMain += m.rss;
    else if (m.name.endsWith('.mdb')) out.storeFile += m.rss;
    else if (m.name.startsWith('/')) out.codeFile += m.rss;
    // A thread arena: 64 MiB aligned, its unused tail reserved (---p) right after it.
    else if (!m.name && m.lo % ARENA === 0 && next && next.perm === '---p' && next.hi - m.lo === ARENA) out.mallocThreads += m.rss;
    else if (!m.name || m.name.startsWith('[anon')) out.anonOther += m.rss;
  }
  return out;
}

/** Proportional set size (shared pages split between the processes mapping them), bytes, from /proc/<pid>/smaps_rollup. */
export interface Pss {
  pss: number;
  pssAnon: number;
  /** File pages (e.g. a store's memory map that every worker maps: each counts its share). */
  pssFile: number;
}

export function readPss(pid: number): Pss {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { pss: kb('Pss'), pssAnon: kb('Pss_Anon'), pssFile: kb('Pss_File') };
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
