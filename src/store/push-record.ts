/**
 * The stored form of a durable push, the same bytes in every engine (embedded lmdb
 * values, Redis hash fields): u8 format, u8 priority, u64 expiresAt, u64 sentAt,
 * u32 len + id, u32 len + topic, then the body as the rest: bytes exact, empty allowed.
 * Numbers are big-endian, so an engine can also use them in keys that sort.
 */
import type { NewPush, StoredPush } from './store';

const FORMAT = 1;
/** Header: format, priority, expiresAt, sentAt. */
const HEAD_BYTES = 18;
const TWO_32 = 2 ** 32;

export function writeU64(buf: Buffer, off: number, n: number): void {
  buf.writeUInt32BE(Math.floor(n / TWO_32), off);
  buf.writeUInt32BE(n >>> 0, off + 4);
}

export function readU64(buf: Uint8Array, off: number): number {
  const v = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return v.readUInt32BE(off) * TWO_32 + v.readUInt32BE(off + 4);
}

export function checkU64(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer, got ${n}`);
  }
}

/** Validates and encodes; throws TypeError/RangeError before anything is written. */
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

/** expiresAt without decoding the rest: engines peek at it per entry. */
export function recordExpiry(rec: Uint8Array): number {
  return readU64(rec, 2);
}

export function decodePush(seq: number, rec: Uint8Array): StoredPush {
  const b = Buffer.isBuffer(rec) ? rec : Buffer.from(rec.buffer, rec.byteOffset, rec.byteLength);
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
    // Own copy: the record may be a view into lmdb-js's buffer or a socket chunk that holds other replies too.
    body: Buffer.from(b.subarray(o)),
    priority: b[1],
    expiresAtMs: readU64(b, 2),
    sentAtMs: readU64(b, 10),
  };
}
