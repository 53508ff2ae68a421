/**
 * The bare uWS.js baseline of a soak run: as many bare-pub.ts processes as the gateway
 * has workers, all on one port (SO_REUSEPORT spreads connections over them as it
 * does over the gateway's workers), each owned by bench/lib/procs.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { own, stop } from '../lib/procs';
import { freePort, lines } from './gateway';

interface BareProc {
  child: ChildProcess;
  pid: number;
  waiters: Array<(m: Record<string, number | string>) => void>;
}

export interface Baseline {
  port: number;
  pids: number[];
  /** Connections each process holds. */
  conns(): Promise<number[]>;
  /** Publishes `text` in every process; resolves with each one's subscriber count and publish-call time. */
  publish(text: string): Promise<Array<{ n: number; us: number }>>;
  stop(): Promise<void>;
}

function startOne(port: number, timeoutMs: number): Promise<BareProc & { port: number }> {
  const child = spawn(process.execPath, [path.join(__dirname, 'bare-pub.js'), '127.0.0.1', String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
  own(child);
  let stderr = '';
  lines(child.stderr as NodeJS.ReadableStream, (l) => {
    if (stderr.length < 10_000) stderr += `${l}\n`;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bare uWS did not listen in ${timeoutMs} ms; stderr:\n${stderr}`)), timeoutMs);
    const p = { child, pid: child.pid as number, waiters: [] as BareProc['waiters'], port: 0 };
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

export async function startBaseline(processes: number): Promise<Baseline> {
  // An explicit port: a socket bound to port 0 gets no SO_REUSEPORT partner (as the
  // gateway's primary does, pick a free port first).
  const first = await startOne(await freePort(), 10_000);
  const procs: BareProc[] = [first];
  for (let k = 1; k < processes; k++) procs.push(await startOne(first.port, 10_000));
  return {
    port: first.port,
    pids: procs.map((p) => p.pid),
    conns: async () => (await Promise.all(procs.map((p) => ask(p, 'stats')))).map((m) => m.conns as number),
    publish: async (text) => (await Promise.all(procs.map((p) => ask(p, `pub ${text}`)))).map((m) => ({ n: m.n as number, us: m.us as number })),
    stop: async () => {
      await Promise.all(procs.map((p) => stop(p.child, 3_000)));
    },
  };
}
