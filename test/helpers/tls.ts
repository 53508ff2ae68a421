/** TLS material and TLS devices for tests against a real gateway. */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type ConnectionOptions, connect as tlsConnectRaw } from 'node:tls';
import { hello, RawConnection } from '../../src/client/raw';
import { FrameType } from '../../src/protocol/constants';
import { moor } from '../../src/protocol/generated/moor';
import type { Gateway, LogLine } from './gateway';

const ROOT = path.resolve(__dirname, '..', '..', '..');

export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';
export const TLS_VERSIONS: TlsVersion[] = ['TLSv1.2', 'TLSv1.3'];

export interface CertDir {
  dir: string;
  cert: string;
  key: string;
  /** The certificate as the CA to trust (it is self-signed). */
  ca: Buffer;
  /** sha256 fingerprint as node's PeerCertificate.fingerprint256 shows it. */
  fingerprint: string;
  /** Writes a fresh pair over the same paths (a renewed certificate). */
  renew(): void;
  /** The args that turn TLS on. */
  args: string[];
  remove(): void;
}

function fingerprintOf(pem: Buffer): string {
  return new crypto.X509Certificate(pem).fingerprint256;
}

/** A self-signed ECDSA P-256 pair from scripts/gen-cert.sh in a temp dir. */
export function makeCerts(): CertDir {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'moor-tls-'));
  const gen = () => execFileSync('bash', [path.join(ROOT, 'scripts', 'gen-cert.sh'), dir], { stdio: 'ignore' });
  gen();
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const out: CertDir = {
    dir,
    cert,
    key,
    ca: readFileSync(cert),
    fingerprint: fingerprintOf(readFileSync(cert)),
    renew() {
      gen();
      out.ca = readFileSync(cert);
      out.fingerprint = fingerprintOf(out.ca);
    },
    args: [`--tls.cert=${cert}`, `--tls.key=${key}`],
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return out;
}

/** A ticket keys file (mode 0600) holding `keys` (48 bytes each, current first). */
export function writeTicketKeys(file: string, ...keys: Buffer[]): void {
  writeFileSync(file, Buffer.concat(keys), { mode: 0o600 });
  chmodSync(file, 0o600);
}

export function ticketKey(): Buffer {
  return crypto.randomBytes(48);
}

export function tlsOptions(certs: CertDir, version?: TlsVersion, extra: ConnectionOptions = {}): ConnectionOptions {
  return { ca: certs.ca, servername: 'localhost', ...(version ? { minVersion: version, maxVersion: version } : {}), ...extra };
}

export interface TlsDevice {
  conn: RawConnection;
  welcome: moor.v1.Welcome;
  resumed: boolean | null;
}

/**
 * HELLO → WELCOME over TLS. `ws`: a wss:// URL on `port` (default the shared port);
 * `tcp`: raw TCP on the shared TCP port. Offers `session` when given.
 */
export async function tlsConnect(
  gw: Gateway,
  transport: 'ws' | 'tcp',
  deviceId: string,
  tls: ConnectionOptions,
  opts: { port?: number; session?: Buffer | null; token?: string } = {},
): Promise<TlsDevice> {
  const conn =
    transport === 'ws'
      ? await RawConnection.ws(`wss://127.0.0.1:${opts.port ?? gw.wsPort}/ws`, { tls, tlsSession: opts.session })
      : await RawConnection.tcp('127.0.0.1', opts.port ?? gw.tcpPort, { tls, tlsSession: opts.session });
  conn.send(hello({ deviceId, token: opts.token ?? (await gw.token(deviceId)) }));
  const f = await conn.nextFrame(5000);
  if (f.type !== FrameType.WELCOME) throw new Error(`expected WELCOME, got type ${f.type}`);
  return { conn, welcome: moor.v1.Welcome.decode(f.payload), resumed: conn.tlsResumed };
}

/** Close politely and wait for it; returns the newest TLS session the connection got. */
export async function leave(d: TlsDevice): Promise<Buffer | null> {
  const s = d.conn.tlsSession;
  d.conn.close();
  await d.conn.closed(3000).catch(() => {});
  return s;
}

/** The `port` of a `host:port` endpoint. */
export function portOf(endpoint: string): number {
  return Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
}

/** Waits until at least `n` log lines match (they accumulate over the gateway's life). */
export async function waitForLogCount(gw: Gateway, pred: (l: LogLine) => boolean, n: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (gw.logs.filter(pred).length < n) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${n} log lines (have ${gw.logs.filter(pred).length})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The fingerprint of the certificate a new TLS connection to `port` is shown (no moor/1 spoken). */
export function certShownAt(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = tlsConnectRaw({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const fp = sock.getPeerCertificate().fingerprint256;
      sock.destroy();
      resolve(fp);
    });
    sock.once('error', reject);
  });
}
