/**
 * Key names and record bytes of the Redis engine (docs/store.md, "Redis: keys").
 *
 * Every key of one device carries the same hash tag, `{<escaped id>}`, so a Lua script
 * touching all of them runs on one Redis Cluster slot. Escaping `%`, `{` and `}` keeps
 * the tag exactly the id: unescaped, an id like `}x` would make the tag empty (`{}`) and
 * Redis would hash each whole key to a different slot (CROSSSLOT).
 */

/** Same limit as the embedded engine, so both accept the same ids and keys. */
export const MAX_KEY_BYTES = 1024;
/**
 * Global keys (expiry index, depth counter) are split this many ways so they spread
 * over a cluster's masters instead of making one hot key. Fixed: entries live in the
 * shard of their device, so changing it would orphan them.
 */
export const SHARDS = 16;

/** Push records: push-record.ts, the same bytes as the embedded engine's. */
export { checkU64, decodePush, encodePush } from './push-record';

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
