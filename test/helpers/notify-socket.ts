/**
 * A stand-in for systemd's notification socket: a unix datagram socket (path or abstract
 * `@name`) that records every sd_notify datagram and the sender's pid (SCM_CREDENTIALS,
 * as systemd checks it for NotifyAccess=main). Node cannot bind datagram unix sockets,
 * so a tiny python3 receiver does it and prints one JSON line per datagram.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const RECEIVER = `
import json, socket, struct, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(b"\\0" + addr[1:].encode() if addr.startswith("@") else addr)
print(json.dumps({"ready": True}), flush=True)
while True:
    data, anc, _flags, _addr = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = -1
    for level, kind, d in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", d[:12])[0]
    print(json.dumps({"pid": pid, "data": data.decode()}), flush=True)
`;

export interface Notification {
  pid: number;
  /** `KEY=value` lines as an object. */
  fields: Record<string, string>;
  at: number;
}

export interface NotifySocket {
  /** For NOTIFY_SOCKET: a path, or `@name` for an abstract socket. */
  address: string;
  received: Notification[];
  waitFor(pred: (n: Notification) => boolean, timeoutMs?: number): Promise<Notification>;
  close(): void;
}

export function parseState(data: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of data.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

export async function notifySocket(opts: { abstract?: boolean } = {}): Promise<NotifySocket> {
  const name = `moor-test-notify-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  const address = opts.abstract ? `@${name}` : path.join(os.tmpdir(), `${name}.sock`);
  const proc: ChildProcess = spawn('python3', ['-u', '-c', RECEIVER, address], { stdio: ['ignore', 'pipe', 'pipe'] });
  const received: Notification[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  let buf = '';
  const ready = new Promise<void>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`python3 notify receiver exited (${code}): ${stderr}`)));
    proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = JSON.parse(buf.slice(0, i)) as { ready?: boolean; pid: number; data: string };
        buf = buf.slice(i + 1);
        if (line.ready) resolve();
        else received.push({ pid: line.pid, fields: parseState(line.data), at: Date.now() });
        for (const w of [...waiters]) w();
      }
    });
  });
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  await ready;
  return {
    address,
    received,
    waitFor(pred, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const n = received.find(pred);
          if (!n) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(n);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching notification in ${timeoutMs} ms; got ${JSON.stringify(received.map((n) => n.fields))}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close() {
      proc.kill('SIGKILL');
      if (!opts.abstract) rmSync(address, { force: true });
    },
  };
}
