/**
 * Secrets the operator did not configure (auth.jwt_secret, api.keys) are generated once
 * and kept in `${store.path}/secrets.json` (mode 0600), so device tokens and API keys
 * survive restarts and `moor token` / `moor push` work against a default gateway.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from './types';

/** What was generated just now (and so must be shown to the operator once). */
export interface GeneratedSecrets {
  jwtSecret?: string;
  apiKey?: string;
}

export interface ResolvedSecrets {
  /** The input config with the stored or generated secrets filled in. */
  config: Config;
  generated: GeneratedSecrets;
  /** The secrets file, whether or not it was used. */
  file: string;
}

interface StoredSecrets {
  jwt_secret?: string;
  api_key?: string;
}

export function secretsFile(config: Config): string {
  return path.join(path.resolve(config.store.path), 'secrets.json');
}

/** The stored secrets, without generating anything ({} when there is no file). */
export function readSecrets(config: Config, warn: (m: string) => void = () => {}): StoredSecrets {
  const file = secretsFile(config);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  // Secrets readable by others are no longer secret; tighten rather than refuse to start.
  const mode = fs.statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    fs.chmodSync(file, 0o600);
    warn(`${file} was mode ${mode.toString(8)}; changed to 600`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {}
  const stored = obj as Record<string, unknown>;
  const valid = typeof obj === 'object' && obj !== null && !Array.isArray(obj);
  if (!valid || !isSecret(stored.jwt_secret) || !isSecret(stored.api_key)) {
    // Never overwrite a damaged file: that would silently invalidate every issued token.
    throw new Error(`${file} is damaged (expected {"jwt_secret": "…", "api_key": "…"}); fix or remove it`);
  }
  return { jwt_secret: (stored.jwt_secret as string) || undefined, api_key: (stored.api_key as string) || undefined };
}

function isSecret(v: unknown): boolean {
  return v === undefined || (typeof v === 'string' && v !== '');
}

/**
 * Fills in auth.jwt_secret (unless auth.jwt_public_key is set) and api.keys when they are
 * not configured: from the secrets file, or generated and written there.
 */
export function resolveSecrets(config: Config, warn: (m: string) => void = () => {}): ResolvedSecrets {
  const file = secretsFile(config);
  const needJwt = config.auth.jwt_secret === '' && config.auth.jwt_public_key === '';
  const needApi = config.api.keys.length === 0;
  if (!needJwt && !needApi) return { config, generated: {}, file };

  // Two processes may start at once (serve and token): the loser of the race re-reads.
  for (let attempt = 0; ; attempt++) {
    const existed = fs.existsSync(file);
    const stored = readSecrets(config, warn);
    const generated: GeneratedSecrets = {};
    if (needJwt && stored.jwt_secret === undefined) stored.jwt_secret = generated.jwtSecret = randomSecret();
    if (needApi && stored.api_key === undefined) stored.api_key = generated.apiKey = randomSecret();
    if (generated.jwtSecret !== undefined || generated.apiKey !== undefined) {
      if (!writeSecrets(file, stored, existed)) {
        if (attempt > 0) throw new Error(`${file} keeps appearing and changing under us; is another moor writing it?`);
        continue;
      }
    }
    const out = structuredClone(config);
    if (needJwt) out.auth.jwt_secret = stored.jwt_secret!;
    if (needApi) out.api.keys = [stored.api_key!];
    return { config: out, generated, file };
  }
}

function randomSecret(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/**
 * Writes atomically with mode 0600. A new file is linked into place so it never replaces
 * one another process created meanwhile (returns false then); an existing one is replaced.
 */
function writeSecrets(file: string, secrets: StoredSecrets, replace: boolean): boolean {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.writeSync(fd, `${JSON.stringify(secrets, null, 2)}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    if (replace) {
      fs.renameSync(tmp, file);
      return true;
    }
    fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}
