/**
 * Key names and record bytes of the Redis engine (docs/store.md, "Redis: keys").
 *
 * Every key of one device carries the same hash tag, `{<escaped id>}`, so a Lua script
 * touching all of them runs on one Redis Cluster slot. Escaping `%`, `{` and `}` keeps
 * the tag exactly the id: unescaped, an id like `}x` would make the tag empty (`{}`) and
 * Redis would hash each whole key to a different slot (CROSSSLOT).
 */
import type { NewPush, StoredPush } from './store';

/** Same limit as the embedded engine, so both accept the same ids and keys. */
export const MAX_KEY_BYTES = 1024;
/**
 * Global keys (expiry index, depth counter) are split this many ways so they spread
 * over a cluster's masters instead of making one hot key. Fixed: entries live in the
 * shard of their device, so changing it would orphan them.
 */
export const SHARDS = 16;

const FORMAT = 1;
/** Record header: format, priority, expiresAt, sentAt. */
const HEAD_BYTES = 18;
const TWO_32 = 2 ** 32;

export function checkU64(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer, got ${n}`);
  }
}

export function checkKey(name: string, s: string): void {
  if (typeof s !== 'string') throw new TypeError(`${name} must be a string`);
  const n = Buffer.byteLength(s, 'utf8');
  if (n === 0 || n > MAX_KEY_BYTES) {
    throw new RangeError(`${name} must be 1..${MAX_KEY_BYTES} UTF-8 bytes, got ${n}`);
  }
}

/** The hash tag body for a device: the id with `%`, `{`, `}` percent-encoded (injective). */
export function deviceTag(deviceId: string): string {
  checkKey('deviceId', deviceId);
  return deviceId.replace(/[%{}]/g, (c) => (c === '%' ? '%25' : c === '{' ? '%7B' : '%7D'));
}

/** FNV-1a over the tag's UTF-8 bytes: which shard of the global keys a device uses. */
export function shardOf(tag: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(tag, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % SHARDS;
}

export class Keys {
  constructor(readonly prefix: string) {}

  /** The keys the per-device scripts take, in the order they expect them. */
  device(tag: string): [head: string, inbox: string, body: string, exp: string] {
    const base = `${this.prefix}:{${tag}}:`;
    return [`${base}head`, `${base}inbox`, `${base}body`, `${base}exp`];
  }

  record(tag: string): string {
    return `${this.prefix}:{${tag}}:device`;
  }

  expiry(shard: number): string {
    return `${this.prefix}:expiry:{${shard}}`;
  }

  depth(shard: number): string {
    return `${this.prefix}:depth:{${shard}}`;
  }

  idem(key: string): string {
    checkKey('idempotency key', key);
    return `${this.prefix}:idem:${key}`;
  }

  meta(key: string): string {
    checkKey('meta key', key);
    return `${this.prefix}:meta:${key}`;
  }
}

/** Expiry index member: one per (device, expiresAt); see redis.ts sweepExpired. */
export function marker(expiresAtMs: number, tag: string): string {
  return `${expiresAtMs}|${tag}`;
}

export function markerTag(member: string): string {
  return member.slice(member.indexOf('|') + 1);
}

// ---- push records (same layout as the embedded engine's) ------------------------------

function writeU64(buf: Buffer, off: number, n: number): void {
  buf.writeUInt32BE(Math.floor(n / TWO_32), off);
  buf.writeUInt32BE(n >>> 0, off + 4);
}

function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off) * TWO_32 + buf.readUInt32BE(off + 4);
}

/** Validates and encodes; throws TypeError/RangeError before anything is sent. */
export function encodePush(p: NewPush): Buffer {
  if (typeof p.id !== 'string' || typeof p.topic !== 'string') {
    throw new TypeError('push id and topic must be strings');
  }
  if (!(p.body instanceof Uint8Array)) throw new TypeError('push body must be a Buffer');
  if (!Number.isInteger(p.priority) || p.priority < 0 || p.priority > 255) {
    throw new RangeError(`push priority must be 0..255, got ${p.priority}`);
  }
  checkU64('push expiresAtMs', p.expiresAtMs);
  checkU64('push sentAtMs', p.sentAtMs);
  const id = Buffer.from(p.id, 'utf8');
  const topic = Buffer.from(p.topic, 'utf8');
  const b = Buffer.allocUnsafe(HEAD_BYTES + 8 + id.length + topic.length + p.body.length);
  b[0] = FORMAT;
  b[1] = p.priority;
  writeU64(b, 2, p.expiresAtMs);
  writeU64(b, 10, p.sentAtMs);
  let o = b.writeUInt32BE(id.length, HEAD_BYTES);
  o += id.copy(b, o);
  o = b.writeUInt32BE(topic.length, o);
  o += topic.copy(b, o);
  b.set(p.body, o);
  return b;
}

export function decodePush(seq: number, b: Buffer): StoredPush {
  if (b.length < HEAD_BYTES + 8 || b[0] !== FORMAT) {
    throw new Error(`inbox record of ${b.length} bytes, format ${b[0]}, is not format ${FORMAT}`);
  }
  let o = HEAD_BYTES;
  const idLen = b.readUInt32BE(o);
  const id = b.toString('utf8', o + 4, o + 4 + idLen);
  o += 4 + idLen;
  const topicLen = b.readUInt32BE(o);
  const topic = b.toString('utf8', o + 4, o + 4 + topicLen);
  o += 4 + topicLen;
  return {
    seq,
    id,
    topic,
    // Own copy: the reply may be a view into a socket chunk that holds other replies too.
    body: Buffer.from(b.subarray(o)),
    priority: b[1],
    expiresAtMs: readU64(b, 2),
    sentAtMs: readU64(b, 10),
  };
}
