/**
 * `--tls`: a throwaway self-signed certificate for the gateway (openssl), and a probe
 * that tells whether the gateway's WebSocket port really speaks TLS — the config keys
 * tls.cert/tls.key exist before the listeners implement them, and the soak must then
 * say so and go on in plain text rather than report TLS figures it never measured.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { ownDir } from '../lib/procs';

export function selfSignedCert(): { cert: string; key: string } {
  const dir = ownDir(mkdtempSync(path.join(os.tmpdir(), 'moor-soak-tls-')));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

/** True when a TLS handshake with host:port completes within `timeoutMs`. */
export function speaksTls(host: string, port: number, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tls.connect({ host, port, rejectUnauthorized: false });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('secureConnect', () => done(true));
    s.once('error', () => done(false));
  });
}
