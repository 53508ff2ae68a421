/**
 * The gateway under soak: `moor serve --workers=N` on loopback (its own process group,
 * owned by bench/lib/procs.ts so the primary and every worker die with the bench),
 * with raw TCP on, an embedded store in a temp dir, and optionally TLS. It follows
 * the log to know each worker's pid (also after a restart) and what went wrong.
 * (bench/lib/servers.ts starts a one-worker gateway for `bench idle`; the soak needs
 * N workers, their pids, the TCP and API ports.)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/util/ports';
import { own, ownDir, stop } from '../lib/procs';

const ROOT = path.resolve(__dirname, '..', '..', '..');

export interface LogLine {
  msg?: string;
  level?: number;
  worker?: number;
  pid?: number;
  worker_pid?: number;
  [k: string]: unknown;
}

export interface SoakGateway {
  primaryPid: number;
  wsPort: number;
  wsPath: string;
  tcpPort: number;
  apiPort: number;
  /** Worker index -> pid of its current process. */
  workers: Map<number, number>;
  /** Warnings and errors logged (the first 50), and how many in all. */
  problems: string[];
  problemCount: number;
  /** The last ~8 KB of the gateway's stderr (a worker that crashes says why there). */
  stderrTail(): string;
  /** Resolves with the next log line `pred` accepts. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs: number): Promise<LogLine>;
  stop(): Promise<void>;
}

export interface GatewayOptions {
  workers: number;
  jwtSecret: string;
  apiKey: string;
  tls: { cert: string; key: string } | null;
  /** Extra `moor serve` flags (from --gw.KEY=VALUE). */
  args: string[];
  /** Extra environment (e.g. gc.ts's NODE_OPTIONS). */
  env?: NodeJS.ProcessEnv;
  /** Every stderr line (e.g. for gc.ts's InspectorUrls). */
  onStderr?: (line: string) => void;
}


/** Calls `onLine` with each line of `stream`. */
export function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    buf += d;
    let i = buf.indexOf('\n');
    while (i >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
      i = buf.indexOf('\n');
    }
  });
}

export async function startGateway(o: GatewayOptions, timeoutMs = 60_000): Promise<SoakGateway> {
  const store = ownDir(mkdtempSync(path.join(os.tmpdir(), 'moor-bench-soak-')));
  const tcpPort = await freePort();
  const child = spawn(
    process.execPath,
    [
      path.join(ROOT, 'bin', 'moor.js'),
      'serve',
      `--workers=${o.workers}`,
      '--ws.host=127.0.0.1',
      '--ws.port=0',
      '--tcp.host=127.0.0.1',
      `--tcp.port=${tcpPort}`,
      '--api.port=0',
      `--store.path=${store}`,
      `--auth.jwt_secret=${o.jwtSecret}`,
      `--api.keys=${o.apiKey}`,
      '--node.id=soak',
      '--node.advertise=127.0.0.1',
      '--log.level=info',
      '--drain.grace_ms=500',
      ...(o.tls ? [`--tls.cert=${o.tls.cert}`, `--tls.key=${o.tls.key}`] : []),
      ...o.args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, ...o.env } },
  );
  own(child, { group: true });
  const workers = new Map<number, number>();
  const problems: string[] = [];
  let problemCount = 0;
  const waiters: Array<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  let stderr = '';
  let tail = '';
  lines(child.stdout as NodeJS.ReadableStream, (line) => {
    let l: LogLine;
    try {
      l = JSON.parse(line);
    } catch {
      return;
    }
    if ((l.level ?? 0) >= 40) {
      problemCount++;
      if (problems.length < 50) problems.push(line);
    }
    if (l.msg === 'worker listening' && typeof l.worker === 'number' && typeof l.pid === 'number') workers.set(l.worker, l.pid);
    if (l.msg === 'worker back' && typeof l.worker === 'number' && typeof l.worker_pid === 'number') workers.set(l.worker, l.worker_pid);
    for (let w = waiters.length - 1; w >= 0; w--) {
      if (waiters[w].pred(l)) waiters.splice(w, 1)[0].resolve(l);
    }
  });
  lines(child.stderr as NodeJS.ReadableStream, (line) => {
    o.onStderr?.(line);
    if (!line.startsWith('Debugger') && !line.startsWith('For help')) tail = `${tail}${line}\n`.slice(-8192);
    if (stderr.length < 20_000 && !line.startsWith('Debugger') && !line.startsWith('For help')) stderr += `${line}\n`;
  });
  let exited = false;
  const onExit = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) => {
      exited = true;
      reject(new Error(`the gateway exited (${signal ?? code}); stderr:\n${stderr}`));
    }),
  );
  onExit.catch(() => {});
  const waitForLog = (pred: (l: LogLine) => boolean, ms: number): Promise<LogLine> => {
    if (exited) return Promise.reject(new Error(`the gateway is not running; stderr:\n${stderr}`));
    let timer: NodeJS.Timeout | undefined;
    const found = new Promise<LogLine>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for a gateway log line; stderr:\n${stderr}`)), ms);
      waiters.push({ pred, resolve });
    });
    return Promise.race([found, onExit]).finally(() => clearTimeout(timer));
  };
  const ready = await waitForLog((l) => l.msg === 'moor ready', timeoutMs);
  const primaryPid = child.pid as number;
  return {
    primaryPid,
    wsPort: ready.ws as number,
    wsPath: (ready.ws_path as string | undefined) ?? '/ws',
    tcpPort,
    apiPort: ready.api as number,
    workers,
    problems,
    get problemCount() {
      return problemCount;
    },
    stderrTail: () => tail,
    waitForLog,
    stop: async () => {
      await stop(child, 15_000);
      // The primary removes its mesh dir when it drains; not when it is killed.
      ownDir(path.join(os.tmpdir(), `moor-${primaryPid}`));
    },
  };
}
