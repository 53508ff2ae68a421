/**
 * The embedded store's on-disk layout, shared by the worker's main thread (reads) and its
 * store writer thread (write transactions, embedded-writer.ts): how the lmdb environment
 * is opened, the named databases, and the binary keys. Both threads must open the
 * environment with the same options; lmdb-js shares one environment per path in a process.
 *
 * Layout: named databases, binary keys, big-endian numbers so byte order = numeric order.
 *   inbox    dev + u64 seq            -> push record
 *   heads    dev                      -> u64 headSeq, u64 ackedSeq (never deleted: seqs never repeat)
 *   expiry   u64 expiresAt + u8 kind + (inbox key | idem key) -> 1 byte (sweeps read only what is due)
 *   devices  utf8 id                  -> device record (device-record.ts: binary; older JSON still read)
 *   idem     utf8 key                 -> u64 expiresAt, utf8 answer
 *   meta     utf8 key                 -> bytes
 *   counters "depth"                  -> u64, changed in the same transactions as inbox
 * dev = u16 byte length + utf8 id: the length prefix keeps device "ab"'s range out of "abc".
 * Push record: push-record.ts (the same bytes as the Redis engine's).
 */
import * as path from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import { readU64, writeU64 } from './push-record';
import type { InboxHeads } from './store';

export type Db = Database<Buffer, Buffer>;

export interface Layout {
  root: RootDatabase<Buffer, Buffer>;
  inbox: Db;
  heads: Db;
  expiry: Db;
  devices: Db;
  idem: Db;
  meta: Db;
  counters: Db;
}

/** Device ids, idempotency and meta keys: lmdb keys max out at 1,978 bytes. */
const MAX_KEY_BYTES = 1024;
export const KIND_PUSH = 1;
export const KIND_IDEM = 2;
const DEPTH_KEY = Buffer.from('depth');
export const MARK = Buffer.from([1]);
export const SEQ_END = Buffer.alloc(8, 0xff);
/** 64 GiB of address space for the map; see openLayout(). */
const MAP_BYTES = 2 ** 36;

/** Opens (creating if needed) the environment in `<dir>/lmdb`; safe from many processes at once. */
export function openLayout(dir: string): Layout {
  const root = open<Buffer, Buffer>({
    path: path.join(dir, 'lmdb'),
    maxDbs: 8,
    // Address space reserved up front (not disk: the file grows as pages are written).
    // Without it lmdb-js starts at 128 KB and remaps as the file doubles, and every old
    // mapping it keeps alive counts the same pages in the worker's RSS again: 2-4x the
    // file (docs/memory.md). Past this size lmdb grows the map as before.
    mapSize: MAP_BYTES,
    // Commit = fsynced before the promise (or transactionSync) returns; see embedded.ts.
    overlappingSync: false,
    encoding: 'binary',
    keyEncoding: 'binary',
  });
  const db = (name: string): Db => root.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary' });
  return {
    root,
    inbox: db('inbox'),
    heads: db('heads'),
    expiry: db('expiry'),
    devices: db('devices'),
    idem: db('idem'),
    meta: db('meta'),
    counters: db('counters'),
  };
}

// ---- keys -----------------------------------------------------------------------------

export function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, 0, n);
  return b;
}

export function keyBytes(name: string, s: string): Buffer {
  if (typeof s !== 'string') throw new TypeError(`${name} must be a string`);
  const b = Buffer.from(s, 'utf8');
  if (b.length === 0 || b.length > MAX_KEY_BYTES) {
    throw new RangeError(`${name} must be 1..${MAX_KEY_BYTES} UTF-8 bytes, got ${b.length}`);
  }
  return b;
}

export function devKey(deviceId: string): Buffer {
  const id = keyBytes('deviceId', deviceId);
  const b = Buffer.allocUnsafe(2 + id.length);
  b.writeUInt16BE(id.length, 0);
  id.copy(b, 2);
  return b;
}

export function inboxKey(dev: Uint8Array, seq: number): Buffer {
  const b = Buffer.allocUnsafe(dev.length + 8);
  b.set(dev, 0);
  writeU64(b, dev.length, seq);
  return b;
}

export function expiryKey(expiresAt: number, kind: number, rest: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(9 + rest.length);
  writeU64(b, 0, expiresAt);
  b[8] = kind;
  b.set(rest, 9);
  return b;
}

export function encodeHeads(h: InboxHeads): Buffer {
  const b = Buffer.allocUnsafe(16);
  writeU64(b, 0, h.headSeq);
  writeU64(b, 8, h.ackedSeq);
  return b;
}

export function isExpired(expiresAt: number, nowMs: number): boolean {
  return expiresAt !== 0 && expiresAt <= nowMs;
}

// ---- reads (inside a write transaction they read the transaction's own state) ---------

export function readHeads(l: Layout, dev: Uint8Array): InboxHeads {
  const b = l.heads.getBinary(dev as Buffer);
  return b === undefined ? { headSeq: 0, ackedSeq: 0 } : { headSeq: readU64(b, 0), ackedSeq: readU64(b, 8) };
}

export function readDepth(l: Layout): number {
  const b = l.counters.getBinary(DEPTH_KEY);
  return b === undefined ? 0 : readU64(b, 0);
}

/** Only inside a write transaction. */
export function addDepth(l: Layout, delta: number): void {
  l.counters.putSync(DEPTH_KEY, u64(Math.max(0, readDepth(l) + delta)));
}
