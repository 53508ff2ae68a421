/**
 * The embedded store engine: one lmdb environment in `<store.path>/lmdb`, opened by every
 * worker process at once. Any worker appends for any device; any worker replays.
 *
 * Why lmdb (docs/store.md has the longer version): prebuilt binaries (better-sqlite3
 * compiles from source, ~60 s here); made for many processes on one file (one
 * cross-process write lock, lock-free MVCC readers, robust mutexes so a worker killed
 * mid-write does not wedge the others); reads come straight from the mmap; ACID
 * copy-on-write B+tree with no WAL to replay and no repair step after a crash.
 *
 * Durability, and what we rely on: lmdb-js defaults to `overlappingSync: true` on Linux,
 * where a write promise resolves at commit and only `db.flushed` waits for the fsync. We
 * open with `overlappingSync: false`, so lmdb-js's writer thread runs a plain
 * mdb_txn_commit (no MDB_NOSYNC), which fdatasyncs the data pages and then the meta page
 * before it returns, and the transaction promise resolves only after that. So a resolved
 * `append` is on disk, and the API answers 202 only then. A process crash loses nothing
 * committed; an OS crash or power loss loses at most transactions whose promise had not
 * resolved yet: never a push that was answered 202. (Residual hazard: another worker can
 * read a commit during its final meta fsync; an OS crash inside that window drops the
 * commit and its seqs get reused. See docs/store.md.)
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
 *
 * Reads: lmdb-js keeps one read snapshot per event turn. Every read method calls
 * resetReadTxn() first so it sees what other workers committed a moment ago (e.g. the
 * append that a mesh message just announced).
 */
import * as path from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import { decodeDeviceRecord, encodeDeviceRecord } from './device-record';
import { checkU64, decodePush, encodePush, readU64, recordExpiry, writeU64 } from './push-record';
import type { DeviceRecord, InboxHeads, NewPush, ReadResult, Store, StoredPush } from './store';

type Db = Database<Buffer, Buffer>;

/** Device ids, idempotency and meta keys: lmdb keys max out at 1,978 bytes. */
const MAX_KEY_BYTES = 1024;
const KIND_PUSH = 1;
const KIND_IDEM = 2;
const DEPTH_KEY = Buffer.from('depth');
const MARK = Buffer.from([1]);
const SEQ_END = Buffer.alloc(8, 0xff);
/** 64 GiB of address space for the map; see open(). */
const MAP_BYTES = 2 ** 36;

// ---- encoding -------------------------------------------------------------------------

function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, 0, n);
  return b;
}

function keyBytes(name: string, s: string): Buffer {
  if (typeof s !== 'string') throw new TypeError(`${name} must be a string`);
  const b = Buffer.from(s, 'utf8');
  if (b.length === 0 || b.length > MAX_KEY_BYTES) {
    throw new RangeError(`${name} must be 1..${MAX_KEY_BYTES} UTF-8 bytes, got ${b.length}`);
  }
  return b;
}

function devKey(deviceId: string): Buffer {
  const id = keyBytes('deviceId', deviceId);
  const b = Buffer.allocUnsafe(2 + id.length);
  b.writeUInt16BE(id.length, 0);
  id.copy(b, 2);
  return b;
}

function inboxKey(dev: Buffer, seq: number): Buffer {
  const b = Buffer.allocUnsafe(dev.length + 8);
  dev.copy(b, 0);
  writeU64(b, dev.length, seq);
  return b;
}

function expiryKey(expiresAt: number, kind: number, rest: Buffer): Buffer {
  const b = Buffer.allocUnsafe(9 + rest.length);
  writeU64(b, 0, expiresAt);
  b[8] = kind;
  rest.copy(b, 9);
  return b;
}

function encodeHeads(h: InboxHeads): Buffer {
  const b = Buffer.allocUnsafe(16);
  writeU64(b, 0, h.headSeq);
  writeU64(b, 8, h.ackedSeq);
  return b;
}

function isExpired(expiresAt: number, nowMs: number): boolean {
  return expiresAt !== 0 && expiresAt <= nowMs;
}

// ---- the engine -----------------------------------------------------------------------

export class EmbeddedStore implements Store {
  readonly kind = 'embedded';
  private closed = false;

  private constructor(
    private readonly root: RootDatabase<Buffer, Buffer>,
    private readonly inbox: Db,
    private readonly headsDb: Db,
    private readonly expiry: Db,
    private readonly devices: Db,
    private readonly idem: Db,
    private readonly meta: Db,
    private readonly counters: Db,
  ) {}

  /** Opens (creating if needed) the environment in `<dir>/lmdb`; safe from many processes at once. */
  static async open(dir: string): Promise<EmbeddedStore> {
    const root = open<Buffer, Buffer>({
      path: path.join(dir, 'lmdb'),
      maxDbs: 8,
      // Address space reserved up front (not disk: the file grows as pages are written).
      // Without it lmdb-js starts at 128 KB and remaps as the file doubles, and every old
      // mapping it keeps alive counts the same pages in the worker's RSS again: 2-4x the
      // file (docs/memory.md). Past this size lmdb grows the map as before.
      mapSize: MAP_BYTES,
      // Commit = fsynced before the promise resolves; see the comment at the top.
      overlappingSync: false,
      encoding: 'binary',
      keyEncoding: 'binary',
    });
    const db = (name: string): Db =>
      root.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary' });
    return new EmbeddedStore(
      root,
      db('inbox'),
      db('heads'),
      db('expiry'),
      db('devices'),
      db('idem'),
      db('meta'),
      db('counters'),
    );
  }

  async append(items: ReadonlyArray<{ deviceId: string; push: NewPush }>): Promise<number[]> {
    this.assertOpen();
    if (items.length === 0) return [];
    // Encode and validate before taking the cross-process write lock.
    const prepared = items.map(({ deviceId, push }) => ({
      deviceId,
      dev: devKey(deviceId),
      record: encodePush(push),
      expiresAt: push.expiresAtMs,
    }));
    // A child transaction so a throw rolls back this call alone, not its batch neighbours.
    return this.root.childTransaction(() => {
      const heads = new Map<string, { dev: Buffer; h: InboxHeads }>();
      const seqs: number[] = [];
      for (const it of prepared) {
        let e = heads.get(it.deviceId);
        if (!e) {
          e = { dev: it.dev, h: this.readHeads(it.dev) };
          heads.set(it.deviceId, e);
        }
        // Read and raised inside the write txn: lmdb's writer lock spans processes.
        const seq = ++e.h.headSeq;
        const key = inboxKey(it.dev, seq);
        this.inbox.putSync(key, it.record);
        if (it.expiresAt > 0) this.expiry.putSync(expiryKey(it.expiresAt, KIND_PUSH, key), MARK);
        seqs.push(seq);
      }
      for (const e of heads.values()) this.headsDb.putSync(e.dev, encodeHeads(e.h));
      this.addDepth(prepared.length);
      return seqs;
    });
  }

  async readAfter(
    deviceId: string,
    afterSeq: number,
    limit: number,
    nowMs: number,
  ): Promise<ReadResult> {
    this.assertOpen();
    checkU64('afterSeq', afterSeq);
    checkU64('limit', limit);
    checkU64('nowMs', nowMs);
    const dev = devKey(deviceId);
    this.fresh();
    const { headSeq } = this.readHeads(dev);
    const pushes: StoredPush[] = [];
    let more = false;
    if (afterSeq < headSeq) {
      const range = this.inbox.getRange({
        start: inboxKey(dev, afterSeq + 1),
        end: Buffer.concat([dev, SEQ_END]),
      });
      for (const { key, value } of range) {
        if (isExpired(recordExpiry(value), nowMs)) continue;
        if (pushes.length >= limit) {
          more = true;
          break;
        }
        pushes.push(decodePush(readU64(key, key.length - 8), value));
      }
    }
    return { pushes, more, headSeq };
  }

  async ack(deviceId: string, upToSeq: number, seqs: readonly number[]): Promise<void> {
    this.assertOpen();
    if (typeof upToSeq !== 'number' || !(upToSeq >= 0)) {
      throw new RangeError(`upToSeq must be a number >= 0, got ${upToSeq}`);
    }
    const dev = devKey(deviceId);
    await this.root.childTransaction(() => {
      const h = this.readHeads(dev);
      if (h.headSeq === 0) return; // never appended to: nothing to delete, nothing to record
      // A device cannot ack what was never assigned: cap at head (and tame huge uint64s).
      const upTo = Math.min(Math.floor(upToSeq), h.headSeq);
      let removed = 0;
      if (upTo > h.ackedSeq) {
        // Everything <= ackedSeq is already gone, so the scan starts after it.
        const doomed: Array<{ key: Buffer; expiresAt: number }> = [];
        const range = this.inbox.getRange({
          start: inboxKey(dev, h.ackedSeq + 1),
          end: inboxKey(dev, upTo + 1),
        });
        for (const { key, value } of range) doomed.push({ key, expiresAt: recordExpiry(value) });
        for (const d of doomed) removed += this.removePush(d.key, d.expiresAt);
        h.ackedSeq = upTo;
      }
      for (const s of seqs) {
        // Selective acks naming nothing we could hold are ignored, not errors: device input.
        if (!Number.isSafeInteger(s) || s <= h.ackedSeq || s > h.headSeq) continue;
        const key = inboxKey(dev, s);
        const rec = this.inbox.getBinary(key);
        if (rec !== undefined) removed += this.removePush(key, recordExpiry(rec));
      }
      this.headsDb.putSync(dev, encodeHeads(h));
      if (removed > 0) this.addDepth(-removed);
    });
  }

  async heads(deviceId: string): Promise<InboxHeads> {
    this.assertOpen();
    const dev = devKey(deviceId);
    this.fresh();
    return this.readHeads(dev);
  }

  async sweepExpired(nowMs: number, limit: number): Promise<number> {
    this.assertOpen();
    checkU64('nowMs', nowMs);
    checkU64('limit', limit);
    if (limit === 0) return 0;
    const end = u64(nowMs + 1);
    // Peek first, under no lock: every worker sweeps, and most sweeps find nothing due.
    this.fresh();
    let due = false;
    for (const _ of this.expiry.getKeys({ end, limit: 1 })) due = true;
    if (!due) return 0;
    return this.root.childTransaction(() => {
      const keys: Buffer[] = [];
      for (const key of this.expiry.getKeys({ end, limit })) keys.push(key);
      let removed = 0;
      for (const key of keys) {
        this.expiry.removeSync(key);
        const target = key.subarray(9);
        if (key[8] === KIND_PUSH) {
          if (this.inbox.doesExist(target)) {
            this.inbox.removeSync(target);
            removed++;
          }
        } else if (key[8] === KIND_IDEM) {
          const rec = this.idem.getBinary(target);
          if (rec !== undefined && readU64(rec, 0) === readU64(key, 0)) this.idem.removeSync(target);
        }
      }
      if (removed > 0) this.addDepth(-removed);
      return removed;
    });
  }

  async depth(): Promise<number> {
    this.assertOpen();
    this.fresh();
    return this.readDepth();
  }

  async putDevice(rec: DeviceRecord): Promise<void> {
    this.assertOpen();
    const key = keyBytes('deviceId', rec.deviceId);
    await this.devices.put(key, encodeDeviceRecord(rec));
  }

  async getDevice(deviceId: string): Promise<DeviceRecord | null> {
    this.assertOpen();
    const key = keyBytes('deviceId', deviceId);
    this.fresh();
    const b = this.devices.getBinary(key);
    return b === undefined ? null : decodeDeviceRecord(deviceId, b);
  }

  async getIdempotent(key: string, nowMs: number): Promise<string | null> {
    this.assertOpen();
    checkU64('nowMs', nowMs);
    const k = keyBytes('idempotency key', key);
    this.fresh();
    const b = this.idem.getBinary(k);
    if (b === undefined || isExpired(readU64(b, 0), nowMs)) return null;
    return b.toString('utf8', 8);
  }

  async putIdempotent(key: string, answer: string, expiresAtMs: number): Promise<void> {
    this.assertOpen();
    checkU64('expiresAtMs', expiresAtMs);
    const k = keyBytes('idempotency key', key);
    const text = Buffer.from(answer, 'utf8');
    const value = Buffer.allocUnsafe(8 + text.length);
    writeU64(value, 0, expiresAtMs);
    text.copy(value, 8);
    await this.root.childTransaction(() => {
      // Drop the old index entry so the expiry index names only live records.
      const old = this.idem.getBinary(k);
      const oldExp = old === undefined ? 0 : readU64(old, 0);
      if (oldExp > 0) this.expiry.removeSync(expiryKey(oldExp, KIND_IDEM, k));
      this.idem.putSync(k, value);
      if (expiresAtMs > 0) this.expiry.putSync(expiryKey(expiresAtMs, KIND_IDEM, k), MARK);
    });
  }

  async getMeta(key: string): Promise<Buffer | null> {
    this.assertOpen();
    const k = keyBytes('meta key', key);
    this.fresh();
    const b = this.meta.getBinary(k);
    return b === undefined ? null : Buffer.from(b);
  }

  async putMeta(key: string, value: Buffer): Promise<void> {
    this.assertOpen();
    const k = keyBytes('meta key', key);
    if (!(value instanceof Uint8Array)) throw new TypeError('meta value must be a Buffer');
    await this.meta.put(k, Buffer.from(value));
  }

  async ping(): Promise<boolean> {
    if (this.closed) return false;
    try {
      this.fresh();
      this.readDepth();
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.root.close(); // waits for queued writes to commit
  }

  // ---- helpers ------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new Error('store is closed');
  }

  /** Newest snapshot: without this a read could miss another worker's commit this turn. */
  private fresh(): void {
    this.root.resetReadTxn();
  }

  /** Inside a write transaction this reads the transaction's own state. */
  private readHeads(dev: Buffer): InboxHeads {
    const b = this.headsDb.getBinary(dev);
    return b === undefined
      ? { headSeq: 0, ackedSeq: 0 }
      : { headSeq: readU64(b, 0), ackedSeq: readU64(b, 8) };
  }

  private readDepth(): number {
    const b = this.counters.getBinary(DEPTH_KEY);
    return b === undefined ? 0 : readU64(b, 0);
  }

  /** Only inside a write transaction. */
  private addDepth(delta: number): void {
    this.counters.putSync(DEPTH_KEY, u64(Math.max(0, this.readDepth() + delta)));
  }

  /** Only inside a write transaction; returns 1 for the depth counter. */
  private removePush(key: Buffer, expiresAt: number): number {
    this.inbox.removeSync(key);
    if (expiresAt > 0) this.expiry.removeSync(expiryKey(expiresAt, KIND_PUSH, key));
    return 1;
  }
}
