/**
 * The bare uWS.js baseline of a soak run: as many bare-pub.ts processes as the gateway
 * has workers, all on one port (SO_REUSEPORT spreads connections over them as it
 * does over the gateway's workers), each owned by bench/lib/procs.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { own, stop } from '../lib/procs';
import { freePort, lines } from './gateway';
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

async function startOne(port: number, args: string[], gc: boolean, timeoutMs: number): Promise<BareProc & { port: number }> {
  const env = { ...process.env, ...(gc ? await gcEnv(0) : {}) };
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
