/**
 * The certificate and key files as both listeners use them: read, checked as a pair
 * (node:tls parses them the way OpenSSL will in uWS), and fingerprinted so a SIGHUP
 * that finds the same files changes nothing.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';

export interface PemPair {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
  /** sha256 of both files: equal fingerprints, same certificate. */
  fingerprint: string;
}

/** Reads and checks tls.cert / tls.key; the error names the file and what is wrong. */
export function readPemPair(certFile: string, keyFile: string): PemPair {
  const read = (what: string, file: string): Buffer => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new Error(`tls.${what}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const cert = read('cert', certFile);
  const key = read('key', keyFile);
  try {
    tls.createSecureContext({ cert, key });
  } catch (err) {
    throw new Error(`tls.cert ${certFile} and tls.key ${keyFile} cannot be used together: ${(err as Error).message}`);
  }
  const fingerprint = crypto.createHash('sha256').update(cert).update('\0').update(key).digest('hex');
  return { certFile, keyFile, cert, key, fingerprint };
}
