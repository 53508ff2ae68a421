/**
 * The embedded store's write transactions, as plain data in and out so they can cross to
 * the store writer thread (embedded-writer.ts) by postMessage. Each body runs inside a
 * write transaction and reads that transaction's own state; arguments were validated and
 * encoded on the main thread before the cross-process write lock is taken.
 */
import {
  addDepth,
  encodeHeads,
  expiryKey,
  inboxKey,
  isExpired,
  KIND_IDEM,
  KIND_PUSH,
  type Layout,
  MARK,
  readHeads,
} from './embedded-layout';
import { readU64, recordExpiry } from './push-record';

/** postMessage turns Buffers into Uint8Arrays; lmdb-js wants Buffers. */
function buf(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

export type WriteOp =
  | { op: 'append'; items: Array<{ dev: Uint8Array; record: Uint8Array; expiresAt: number }> }
  | { op: 'ack'; dev: Uint8Array; upToSeq: number; seqs: number[] }
  | { op: 'sweep'; end: Uint8Array; limit: number }
  | { op: 'idem'; key: Uint8Array; value: Uint8Array; expiresAtMs: number }
  | { op: 'idemClaim'; key: Uint8Array; value: Uint8Array; expiresAtMs: number; nowMs: number };

/** What each op resolves to: append -> seqs, sweep -> pushes removed, idemClaim -> the value found or null, the others -> null. */
export type WriteResult = number[] | number | string | null;

export function runWrite(l: Layout, w: WriteOp): WriteResult {
  switch (w.op) {
    case 'append':
      return append(l, w.items);
    case 'ack':
      ack(l, buf(w.dev), w.upToSeq, w.seqs);
      return null;
    case 'sweep':
      return sweep(l, buf(w.end), w.limit);
    case 'idem':
      putIdempotent(l, buf(w.key), buf(w.value), w.expiresAtMs);
      return null;
    case 'idemClaim': {
      // In the write transaction: no other worker can claim between the read and the put.
      const key = buf(w.key);
      const old = l.idem.getBinary(key);
      if (old !== undefined && !isExpired(readU64(old, 0), w.nowMs)) return old.toString('utf8', 8);
      putIdempotent(l, key, buf(w.value), w.expiresAtMs);
      return null;
    }
  }
}

function append(l: Layout, items: Array<{ dev: Uint8Array; record: Uint8Array; expiresAt: number }>): number[] {
  // One heads read per device: several items for one device take consecutive seqs.
  const heads = new Map<string, { dev: Buffer; h: { headSeq: number; ackedSeq: number } }>();
  const seqs: number[] = [];
  for (const it of items) {
    const dev = buf(it.dev);
    const id = dev.toString('latin1');
    let e = heads.get(id);
    if (!e) {
      e = { dev, h: readHeads(l, dev) };
      heads.set(id, e);
    }
    // Read and raised inside the write txn: lmdb's writer lock spans processes.
    const seq = ++e.h.headSeq;
    const key = inboxKey(dev, seq);
    l.inbox.putSync(key, buf(it.record));
    if (it.expiresAt > 0) l.expiry.putSync(expiryKey(it.expiresAt, KIND_PUSH, key), MARK);
    seqs.push(seq);
  }
  for (const e of heads.values()) l.heads.putSync(e.dev, encodeHeads(e.h));
  addDepth(l, items.length);
  return seqs;
}

/**
 * Acks covering at most this many seqs read each one by key instead of scanning a range:
 * the usual ack (the push just delivered) then allocates no cursor or iterator, which were
 * most of the writer thread's garbage (~1 KB per ack, promoted to its old space and
 * collected only when that heap doubled).
 */
const POINT_ACK_MAX = 64;

function ack(l: Layout, dev: Buffer, upToSeq: number, seqs: number[]): void {
  const h = readHeads(l, dev);
  if (h.headSeq === 0) return; // never appended to: nothing to delete, nothing to record
  // A device cannot ack what was never assigned: cap at head (and tame huge uint64s).
  const upTo = Math.min(Math.floor(upToSeq), h.headSeq);
  let removed = 0;
  if (upTo - h.ackedSeq > POINT_ACK_MAX) {
    // Everything <= ackedSeq is already gone, so the scan starts after it.
    const doomed: Array<{ key: Buffer; expiresAt: number }> = [];
    const range = l.inbox.getRange({ start: inboxKey(dev, h.ackedSeq + 1), end: inboxKey(dev, upTo + 1) });
    for (const { key, value } of range) doomed.push({ key, expiresAt: recordExpiry(value) });
    for (const d of doomed) removed += removePush(l, d.key, d.expiresAt);
  } else {
    for (let seq = h.ackedSeq + 1; seq <= upTo; seq++) removed += removeIfStored(l, inboxKey(dev, seq));
  }
  if (upTo > h.ackedSeq) h.ackedSeq = upTo;
  for (const s of seqs) {
    // Selective acks naming nothing we could hold are ignored, not errors: device input.
    if (!Number.isSafeInteger(s) || s <= h.ackedSeq || s > h.headSeq) continue;
    removed += removeIfStored(l, inboxKey(dev, s));
  }
  l.heads.putSync(dev, encodeHeads(h));
  if (removed > 0) addDepth(l, -removed);
}

function sweep(l: Layout, end: Buffer, limit: number): number {
  const keys: Buffer[] = [];
  for (const key of l.expiry.getKeys({ end, limit })) keys.push(key);
  let removed = 0;
  for (const key of keys) {
    l.expiry.removeSync(key);
    const target = key.subarray(9);
    if (key[8] === KIND_PUSH) {
      if (l.inbox.doesExist(target)) {
        l.inbox.removeSync(target);
        removed++;
      }
    } else if (key[8] === KIND_IDEM) {
      const rec = l.idem.getBinary(target);
      if (rec !== undefined && readU64(rec, 0) === readU64(key, 0)) l.idem.removeSync(target);
    }
  }
  if (removed > 0) addDepth(l, -removed);
  return removed;
}

function putIdempotent(l: Layout, key: Buffer, value: Buffer, expiresAtMs: number): void {
  // Drop the old index entry so the expiry index names only live records.
  const old = l.idem.getBinary(key);
  const oldExp = old === undefined ? 0 : readU64(old, 0);
  if (oldExp > 0) l.expiry.removeSync(expiryKey(oldExp, KIND_IDEM, key));
  l.idem.putSync(key, value);
  if (expiresAtMs > 0) l.expiry.putSync(expiryKey(expiresAtMs, KIND_IDEM, key), MARK);
}

/** Removes the push at `key` (and its expiry entry) if it is stored; 1 if it was. */
function removeIfStored(l: Layout, key: Buffer): number {
  // A view of lmdb's shared read buffer, read at once: no copy of the record.
  const rec = l.inbox.getBinaryFast(key);
  return rec === undefined ? 0 : removePush(l, key, recordExpiry(rec));
}

/** Returns 1 for the depth counter. */
function removePush(l: Layout, key: Buffer, expiresAt: number): number {
  l.inbox.removeSync(key);
  if (expiresAt > 0) l.expiry.removeSync(expiryKey(expiresAt, KIND_PUSH, key));
  return 1;
}
