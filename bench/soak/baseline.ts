/**
 * The bare uWS.js baseline of a soak run: as many bare-pub.ts processes as the gateway
 * has workers, all on one port (SO_REUSEPORT spreads connections over them as it
 * does over the gateway's workers), each owned by bench/lib/procs.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { workerExecArgv } from '../../src/cluster/primary';
import { freePort } from '../../src/util/ports';
import { own, stop } from '../lib/procs';
import { lines } from './gateway';
import { ForcedGc, gcEnv, InspectorUrls } from './gc';

interface BareProc {
  child: ChildProcess;
  pid: number;
  urls: InspectorUrls;
  waiters: Array<(m: Record<string, number | string>) => void>;
}

export interface Baseline {
  port: number;
  pids: number[];
  /** Connections each process holds. */
  conns(): Promise<number[]>;
  /** Publishes `text` in every process; resolves with each one's subscriber count and publish-call time. */
  publish(text: string): Promise<Array<{ n: number; us: number }>>;
  /** Inspectors in every process for forced GCs (see gc.ts). */
  attachGc(): Promise<ForcedGc>;
  stop(): Promise<void>;
}

/**
 * The runtime settings moor gives its workers unless the operator sets them
 * (src/cluster/pool.ts, primary.ts): the baselines run with the same, so a per-connection
 * difference is the servers' own, not glibc's or V8's tuning.
 */
function workerLikeEnv(gc: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const base = gc.NODE_OPTIONS ?? process.env.NODE_OPTIONS ?? '';
  const nodeOptions = [base, ...workerExecArgv([], base)].join(' ').trim();
  return { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '1', ...gc, NODE_OPTIONS: nodeOptions };
}

async function startOne(port: number, args: string[], gc: boolean, timeoutMs: number): Promise<BareProc & { port: number }> {
  const env = workerLikeEnv(gc ? await gcEnv(0) : {});
  const child = spawn(process.execPath, [path.join(__dirname, 'bare-pub.js'), '127.0.0.1', String(port), ...args], { stdio: ['pipe', 'pipe', 'pipe'], env });
  own(child);
  let stderr = '';
  const urls = new InspectorUrls();
  lines(child.stderr as NodeJS.ReadableStream, (l) => {
    urls.line(l);
    if (stderr.length < 10_000) stderr += `${l}\n`;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bare uWS did not listen in ${timeoutMs} ms; stderr:\n${stderr}`)), timeoutMs);
    const p = { child, pid: child.pid as number, urls, waiters: [] as BareProc['waiters'], port: 0 };
    lines(child.stdout as NodeJS.ReadableStream, (line) => {
      const m = JSON.parse(line) as Record<string, number | string>;
      if (m.t === undefined) {
        clearTimeout(timer);
        p.port = m.port as number;
        resolve(p);
      } else p.waiters.shift()?.(m);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`bare uWS exited (${signal ?? code}); stderr:\n${stderr}`));
    });
  });
}

function ask(p: BareProc, line: string): Promise<Record<string, number | string>> {
  return new Promise((resolve) => {
    p.waiters.push(resolve);
    p.child.stdin?.write(`${line}\n`);
  });
}

/** `tls`: certificate and key files; the servers then speak TLS (uWS SSLApp), as the gateway does with --tls. */
export async function startBaseline(processes: number, o: { gc: boolean; tls: { cert: string; key: string } | null }): Promise<Baseline> {
  const args = o.tls ? [o.tls.cert, o.tls.key] : [];
  // An explicit port: a socket bound to port 0 gets no SO_REUSEPORT partner (as the
  // gateway's primary does, pick a free port first).
  const first = await startOne(await freePort(), args, o.gc, 10_000);
  const procs: BareProc[] = [first];
  for (let k = 1; k < processes; k++) procs.push(await startOne(first.port, args, o.gc, 10_000));
  return {
    port: first.port,
    pids: procs.map((p) => p.pid),
    conns: async () => (await Promise.all(procs.map((p) => ask(p, 'stats')))).map((m) => m.conns as number),
    publish: async (text) => (await Promise.all(procs.map((p) => ask(p, `pub ${text}`)))).map((m) => ({ n: m.n as number, us: m.us as number })),
    attachGc: () => (o.gc ? ForcedGc.attach(procs) : Promise.resolve(ForcedGc.none('no forced GC (--no-gc)'))),
    stop: async () => {
      await Promise.all(procs.map((p) => stop(p.child, 3_000)));
    },
  };
}

/** The raw TCP baseline (bare-net.ts): a node:cluster of `workers` bare node:net servers on one port. */
export interface NetBaseline {
  port: number;
  /** Worker pids. */
  pids: number[];
  /** Connections each worker holds (pids order). */
  conns(): Promise<number[]>;
  attachGc(): Promise<ForcedGc>;
  stop(): Promise<void>;
}

export async function startBareNet(workers: number, o: { gc: boolean }, timeoutMs = 15_000): Promise<NetBaseline> {
  const port = await freePort();
  const env = workerLikeEnv(o.gc ? await gcEnv(1) : {});
  const child = spawn(process.execPath, [path.join(__dirname, 'bare-net.js'), '127.0.0.1', String(port), String(workers)], { stdio: ['pipe', 'pipe', 'pipe'], env, detached: true });
  own(child, { group: true });
  let stderr = '';
  const urls = new InspectorUrls();
  lines(child.stderr as NodeJS.ReadableStream, (l) => {
    urls.line(l);
    if (stderr.length < 10_000) stderr += `${l}\n`;
  });
  const waiters: Array<(m: { conns: number[] }) => void> = [];
  const pids = await new Promise<number[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bare node:net did not listen in ${timeoutMs} ms; stderr:\n${stderr}`)), timeoutMs);
    lines(child.stdout as NodeJS.ReadableStream, (line) => {
      const m = JSON.parse(line) as { t?: string; pids?: number[]; conns?: number[] };
      if (m.t === undefined) {
        clearTimeout(timer);
        resolve(m.pids ?? []);
      } else waiters.shift()?.(m as { conns: number[] });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`bare node:net exited (${signal ?? code}); stderr:\n${stderr}`));
    });
  });
  return {
    port,
    pids,
    conns: () =>
      new Promise((resolve) => {
        waiters.push((m) => resolve(m.conns));
        child.stdin?.write('stats\n');
      }),
    attachGc: () => (o.gc ? ForcedGc.attach(pids.map((pid) => ({ pid, urls }))) : Promise.resolve(ForcedGc.none('no forced GC (--no-gc)'))),
    stop: () => stop(child, 3_000),
  };
}
