/**
 * The two servers `bench idle` compares: the real gateway (`moor serve`, its own
 * process group so the primary and its workers die together) and the bare uWS.js
 * echo server (bare-uws.ts). Both are owned by procs.ts and killed however the bench ends.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { own, ownDir, stop } from './procs';

const ROOT = path.resolve(__dirname, '..', '..', '..');

export interface Server {
  kind: 'gateway' | 'bare';
  /** The process holding the connections (the gateway's worker 0). */
  pid: number;
  port: number;
  path: string;
  /** Warnings and errors the server logged (gateway only). */
  problems: string[];
  /** The next inspector URL the server prints (after SIGUSR1; see inspector.ts). */
  inspectorUrl(): Promise<string>;
  stop(): Promise<void>;
}

/** Watches a server's stderr for "Debugger listening on ws://…" lines. */
class InspectorUrls {
  private waiters: Array<(url: string) => void> = [];
  line(l: string): void {
    const m = /Debugger listening on (ws:\/\/\S+)/.exec(l);
    if (m) for (const w of this.waiters.splice(0)) w(m[1]);
  }
  next = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('the server printed no inspector URL (was it started with inspect: true?)')), 10_000);
      this.waiters.push((url) => {
        clearTimeout(t);
        resolve(url);
      });
    });
}

/**
 * Lets SIGUSR1 open an inspector on a free port. node:cluster gives its first worker the
 * primary's debug port + 1 (and refuses port 0 there), hence `offset`.
 */
async function inspectEnv(offset: number): Promise<NodeJS.ProcessEnv> {
  const port = await new Promise<number>((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --inspect-port=${port - offset}`.trim() };
}

/** Calls `onLine` with each line of `stream`. */
function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
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

export interface GatewayOptions {
  jwtSecret: string;
  apiKey: string;
  /** Extra `moor serve` flags. */
  args?: string[];
  /** Extra node flags for the primary (cluster workers inherit them). */
  nodeArgs?: string[];
  /** Allow inspector.ts to attach (forced GC, heap figures). */
  inspect?: boolean;
}

/** `moor serve --workers=1` on loopback, plain WS (TLS through `args`), embedded store in a temp dir, raw TCP off. */
export async function startGateway(o: GatewayOptions, timeoutMs = 30_000): Promise<Server> {
  const env = { ...process.env, ...(o.inspect ? await inspectEnv(1) : {}) };
  const store = ownDir(mkdtempSync(path.join(os.tmpdir(), 'moor-bench-idle-')));
  const child = spawn(
    process.execPath,
    [
      ...(o.nodeArgs ?? []),
      path.join(ROOT, 'bin', 'moor.js'),
      'serve',
      '--workers=1',
      '--ws.host=127.0.0.1',
      '--ws.port=0',
      '--tcp.port=0',
      '--api.port=0',
      `--store.path=${store}`,
      `--auth.jwt_secret=${o.jwtSecret}`,
      `--api.keys=${o.apiKey}`,
      '--node.id=bench',
      '--node.advertise=127.0.0.1',
      '--log.level=info',
      '--drain.grace_ms=500',
      ...(o.args ?? []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env },
  );
  own(child, { group: true });
  const problems: string[] = [];
  const urls = new InspectorUrls();
  let stderr = '';
  return new Promise((resolve, reject) => {
    let ready: { ws: number; path: string } | null = null;
    let workerPid = 0;
    const timer = setTimeout(() => reject(new Error(`the gateway did not get ready in ${timeoutMs} ms; stderr:\n${stderr}`)), timeoutMs);
    const settle = (): void => {
      if (!ready || !workerPid) return;
      clearTimeout(timer);
      const primaryPid = child.pid as number;
      resolve({
        kind: 'gateway',
        pid: workerPid,
        port: ready.ws,
        path: ready.path,
        problems,
        inspectorUrl: urls.next,
        stop: async () => {
          await stop(child, 5_000);
          // The primary removes its mesh dir when it drains; not when it is killed.
          ownDir(path.join(os.tmpdir(), `moor-${primaryPid}`));
        },
      });
    };
    lines(child.stdout as NodeJS.ReadableStream, (line) => {
      let l: { msg?: string; level?: number; pid?: number; ws?: number; ws_path?: string };
      try {
        l = JSON.parse(line);
      } catch {
        return;
      }
      if ((l.level ?? 0) >= 40 && problems.length < 20) problems.push(line);
      if (l.msg === 'worker listening' && typeof l.pid === 'number') workerPid = l.pid;
      if (l.msg === 'moor ready' && typeof l.ws === 'number') ready = { ws: l.ws, path: l.ws_path ?? '/ws' };
      settle();
    });
    lines(child.stderr as NodeJS.ReadableStream, (line) => {
      urls.line(line);
      if (stderr.length < 20_000) stderr += `${line}\n`;
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the gateway exited (${signal ?? code}) before it was ready; stderr:\n${stderr}`));
    });
  });
}

/** The bare uWS.js echo server (bare-uws.ts) on 127.0.0.1; an SSLApp with `tls`. */
export async function startBare(o: { inspect?: boolean; tls?: { cert: string; key: string } } = {}, timeoutMs = 10_000): Promise<Server> {
  const env = { ...process.env, ...(o.inspect ? await inspectEnv(0) : {}) };
  const args = [path.join(__dirname, 'bare-uws.js'), '127.0.0.1', ...(o.tls ? [o.tls.cert, o.tls.key] : [])];
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
  own(child);
  const urls = new InspectorUrls();
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bare uWS did not listen in ${timeoutMs} ms; stderr:\n${stderr}`)), timeoutMs);
    lines(child.stdout as NodeJS.ReadableStream, (line) => {
      const l = JSON.parse(line) as { port: number; pid: number };
      clearTimeout(timer);
      resolve({ kind: 'bare', pid: l.pid, port: l.port, path: '/ws', problems: [], inspectorUrl: urls.next, stop: () => stop(child, 3_000) });
    });
    lines(child.stderr as NodeJS.ReadableStream, (line) => {
      urls.line(line);
      if (stderr.length < 20_000) stderr += `${line}\n`;
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`bare uWS exited (${signal ?? code}); stderr:\n${stderr}`));
    });
  });
}
