/**
 * Session-ticket keys for the raw TCP TLS listener (node:tls). A key is node's 48-byte
 * `ticketKeys` value: 16 bytes of key name (written in clear at the start of every
 * ticket), 16 of HMAC secret, 16 of AES key. One SecureContext holds one key, so the
 * gateway keeps a context per key and picks it from the ticket's key name (tcp.ts):
 * that is how the previous key stays accepted after a rotation.
 *
 * Keys come from the primary (primary.ts), which either generates and rotates them
 * (kept in `${store.path}/tls-ticket-keys.json`, mode 0600, so a restart keeps them) or
 * reads them from `tls.ticket_keys_file` (shared by several hosts). Key bytes are never
 * logged: only their names' first 4 bytes, as an id.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const TICKET_KEY_BYTES = 48;
export const TICKET_KEY_NAME_BYTES = 16;
/** TLS 1.3 caps a ticket's lifetime at 7 days (RFC 8446 §4.6.1). */
const MAX_SESSION_TIMEOUT_S = 604_800;

/** What workers hold: the key new tickets are made with, and the one before it. */
export interface TicketKeySet {
  /** Increases with every change, so a late message never undoes a newer one. */
  generation: number;
  current: Buffer;
  previous: Buffer | null;
}

/** The wire form (node:cluster IPC is JSON). */
export interface TicketKeySetMessage {
  generation: number;
  current: string;
  previous: string;
}

export function toMessage(set: TicketKeySet): TicketKeySetMessage {
  return { generation: set.generation, current: set.current.toString('base64'), previous: set.previous?.toString('base64') ?? '' };
}

export function fromMessage(m: TicketKeySetMessage): TicketKeySet {
  const current = Buffer.from(m.current, 'base64');
  const previous = m.previous === '' ? null : Buffer.from(m.previous, 'base64');
  if (current.length !== TICKET_KEY_BYTES || (previous !== null && previous.length !== TICKET_KEY_BYTES)) {
    throw new Error('ticket key message: keys must be 48 bytes');
  }
  return { generation: m.generation, current, previous };
}

/** The key name as hex: how tcp.ts finds the context for a ticket. */
export function keyName(key: Buffer): string {
  return key.subarray(0, TICKET_KEY_NAME_BYTES).toString('hex');
}

/** A loggable id of a key (the first 4 bytes of its name, which travels in clear anyway). */
export function keyId(key: Buffer | null): string {
  return key === null ? '-' : key.subarray(0, 4).toString('hex');
}

export function newTicketKey(): Buffer {
  return crypto.randomBytes(TICKET_KEY_BYTES);
}

/** node:tls sessionTimeout: a ticket lives as long as its key is accepted (two periods). */
export function sessionTimeoutS(rotateS: number): number {
  return Math.min(MAX_SESSION_TIMEOUT_S, 2 * rotateS);
}

/** Why `file` cannot hold ticket keys (missing, readable by others, wrong size), or null. */
export function ticketKeysFileProblem(file: string): { message: string; hint?: string } | null {
  try {
    readTicketKeysFile(file);
    return null;
  } catch (err) {
    const e = err as Error & { hint?: string };
    return { message: e.message, hint: e.hint };
  }
}

function problem(message: string, hint?: string): Error {
  return Object.assign(new Error(message), { hint });
}

/**
 * `tls.ticket_keys_file`: 48 bytes (one key) or 96 (the current key, then the previous
 * one), raw. Refused unless only its owner may read it. The message never holds key bytes.
 */
export function readTicketKeysFile(file: string): { current: Buffer; previous: Buffer | null } {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (err) {
    throw problem(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!stat.isFile()) throw problem(`${file} is not a regular file`);
  const mode = stat.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw problem(`${file} is mode ${mode.toString(8)}: ticket keys must be readable by their owner only`, `chmod 600 ${file}`);
  }
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw problem(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (bytes.length !== TICKET_KEY_BYTES && bytes.length !== 2 * TICKET_KEY_BYTES) {
    throw problem(
      `${file} holds ${bytes.length} bytes; expected 48 (one key) or 96 (current key, then previous key)`,
      `head -c 48 /dev/urandom > ${file}`,
    );
  }
  const current = Buffer.from(bytes.subarray(0, TICKET_KEY_BYTES));
  const previous = bytes.length === 2 * TICKET_KEY_BYTES ? Buffer.from(bytes.subarray(TICKET_KEY_BYTES)) : null;
  if (previous !== null && keyName(previous) === keyName(current)) throw problem(`${file}: the two keys have the same name (first 16 bytes)`);
  return { current, previous };
}

/** Generated keys as kept on disk between restarts. */
interface StoredKeys {
  v: 1;
  /** When `current` became current (ms since the epoch). */
  since_ms: number;
  current: string;
  previous: string;
}

export const GENERATED_KEYS_FILE = 'tls-ticket-keys.json';

export interface GeneratedKeys {
  current: Buffer;
  previous: Buffer | null;
  sinceMs: number;
}

/**
 * The generated keys of the last run, brought up to date: rotated once if a period has
 * passed since, started afresh if two have (every ticket they made has expired). null
 * when there is no usable file.
 */
export function loadGeneratedKeys(dir: string, rotateS: number, now: number): GeneratedKeys | null {
  const file = path.join(dir, GENERATED_KEYS_FILE);
  let raw: StoredKeys;
  try {
    if ((fs.statSync(file).mode & 0o077) !== 0) return null;
    raw = JSON.parse(fs.readFileSync(file, 'utf8')) as StoredKeys;
  } catch {
    return null;
  }
  const current = Buffer.from(String(raw.current ?? ''), 'base64');
  const previous = raw.previous ? Buffer.from(String(raw.previous), 'base64') : null;
  if (raw.v !== 1 || current.length !== TICKET_KEY_BYTES || (previous !== null && previous.length !== TICKET_KEY_BYTES) || !Number.isFinite(raw.since_ms)) {
    return null;
  }
  const periodMs = rotateS * 1000;
  const age = now - raw.since_ms;
  if (age < 0 || age >= 2 * periodMs) return null;
  if (age >= periodMs) return { current: newTicketKey(), previous: current, sinceMs: now };
  return { current, previous, sinceMs: raw.since_ms };
}

/** Atomically, mode 0600. */
export function saveGeneratedKeys(dir: string, keys: GeneratedKeys): void {
  const file = path.join(dir, GENERATED_KEYS_FILE);
  const body: StoredKeys = { v: 1, since_ms: keys.sinceMs, current: keys.current.toString('base64'), previous: keys.previous?.toString('base64') ?? '' };
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.fchmodSync(fd, 0o600);
    fs.writeSync(fd, JSON.stringify(body));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}
