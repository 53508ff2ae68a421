/**
 * Starts the real gateway (`moor serve`: primary + workers) on ephemeral ports for
 * a test, and gives the test what it needs to talk to it: ports, tokens, the API.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import { freePort } from './ports';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = path.join(ROOT, 'bin', 'moor.js');

export const JWT_SECRET = 'test-secret-0123456789abcdef';
export const API_KEY = 'test-api-key';

export interface LogLine {
  msg?: string;
  worker?: number;
  pid?: number;
  [k: string]: unknown;
}

export interface Gateway {
  proc: ChildProcess;
  wsPort: number;
  tcpPort: number;
  apiPort: number;
  resumePorts: number[];
  storePath: string;
  wsUrl: string;
  logs: LogLine[];
  /** pid of each worker by index, as last announced. */
  workerPids(): Map<number, number>;
  token(deviceId: string, opts?: { ttlS?: number; topics?: string[]; secret?: string }): Promise<string>;
  api(method: string, p: string, body?: unknown, key?: string | null): Promise<{ status: number; body: any; headers: Headers }>;
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export { freePort } from './ports';

/** `bare`: pass only `args` (a test that brings its own --config); the TCP port then comes from the ready line. */
export async function startGateway(args: string[] = [], opts: { workers?: number; storePath?: string; env?: NodeJS.ProcessEnv; bare?: boolean } = {}): Promise<Gateway> {
  const storePath = opts.storePath ?? mkdtempSync(path.join(os.tmpdir(), 'moor-test-'));
  const workers = opts.workers ?? 2;
  // Every listener on a port named here (ports.ts), not 0, and all from one free run
  // (TCP, WebSocket, API, then one resume port per worker), so no two picks can collide.
  const base = await freePort(Array.from({ length: workers + 2 }, (_, i) => i + 1));
  const tcpPort = base;
  const [wsPort, apiListenPort, resumeBase] = opts.bare ? [0, 0, 0] : [base + 1, base + 2, base + 3];
  const defaults = opts.bare
    ? []
    : [
        `--workers=${workers}`,
        '--ws.host=127.0.0.1',
        `--ws.port=${wsPort}`,
        `--ws.resume_port_base=${resumeBase}`,
        '--tcp.host=127.0.0.1',
        `--tcp.port=${tcpPort}`,
        `--api.port=${apiListenPort}`,
        `--store.path=${storePath}`,
        `--auth.jwt_secret=${JWT_SECRET}`,
        `--api.keys=${API_KEY}`,
        '--node.advertise=127.0.0.1',
        '--log.level=info',
      ];
  const proc = spawn(
    process.execPath,
    [BIN, 'serve', ...defaults, ...args],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } },
  );
  const logs: LogLine[] = [];
  const waiters: Array<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  let buf = '';
  let stderr = '';
  proc.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i = buf.indexOf('\n');
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      i = buf.indexOf('\n');
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line);
      } catch {
        continue;
      }
      logs.push(parsed);
      for (let w = waiters.length - 1; w >= 0; w--) {
        if (waiters[w].pred(parsed)) {
          waiters[w].resolve(parsed);
          waiters.splice(w, 1);
        }
      }
    }
  });
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (process.env.MOOR_TEST_VERBOSE) process.stderr.write(d);
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));

  const waitForLog = (pred: (l: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> => {
    const found = logs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for a log line; stderr:\n${stderr}`)), timeoutMs);
      waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(t);
          resolve(l);
        },
      });
      exited.then((code) => reject(new Error(`gateway exited (${code}) before the log line; stderr:\n${stderr}`)));
    });
  };

  /** Signals the primary, SIGKILL if it is still there after 20 s; removes a store this helper made. */
  const shutdown = async (signal: NodeJS.Signals): Promise<number | null> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    const t = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    const code = await exited;
    clearTimeout(t);
    if (!opts.storePath) rmSync(storePath, { recursive: true, force: true });
    return code;
  };

  let ready: LogLine;
  try {
    ready = await waitForLog((l) => l.msg === 'moor ready', 30_000);
  } catch (err) {
    // A gateway that never got ready (its workers keep failing, say) must not outlive the
    // test: its primary would restart them forever and keep the test file's process alive.
    await shutdown('SIGTERM');
    throw err;
  }
  const apiPort = ready.api as number;
  const gw: Gateway = {
    proc,
    wsPort: ready.ws as number,
    tcpPort: opts.bare ? (ready.tcp as number) : tcpPort,
    apiPort,
    resumePorts: ready.resume as number[],
    storePath,
    wsUrl: `ws://127.0.0.1:${ready.ws}/ws`,
    logs,
    workerPids() {
      const m = new Map<number, number>();
      for (const l of logs) if (l.msg === 'worker listening' && typeof l.worker === 'number' && typeof l.pid === 'number') m.set(l.worker, l.pid);
      return m;
    },
    token(deviceId, o = {}) {
      const jwt = new SignJWT({ ...(o.topics ? { topics: o.topics } : {}) })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(deviceId)
        .setExpirationTime(Math.floor(Date.now() / 1000) + (o.ttlS ?? 3600));
      return jwt.sign(new TextEncoder().encode(o.secret ?? JWT_SECRET));
    },
    async api(method, p, body, key = API_KEY) {
      const headers: Record<string, string> = {};
      if (key !== null) headers.authorization = `Bearer ${key}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`http://127.0.0.1:${apiPort}${p}`, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {}
      return { status: res.status, body: parsed, headers: res.headers };
    },
    waitForLog,
    stop: (signal: NodeJS.Signals = 'SIGTERM') => shutdown(signal),
  };
  return gw;
}
