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
 * where a commit returns before the fsync and only `db.flushed` waits for it. We open with
 * `overlappingSync: false`, so a commit is a plain mdb_txn_commit (no MDB_NOSYNC), which
 * fdatasyncs the data pages and then the meta page before it returns; the store writer
 * thread answers only after that. So a resolved `append` is on disk, and the API answers
 * 202 only then. A process crash loses nothing committed; an OS crash or power loss loses
 * at most writes whose promise had not resolved yet: never a push that was answered 202.
 * (Residual hazard: another worker can read a commit during its final meta fsync; an OS
 * crash inside that window drops the commit and its seqs get reused. See docs/store.md.)
 *
 * Layout and keys: embedded-layout.ts. Writes: every write transaction runs on the store
 * writer thread (embedded-writer.ts), so none waits for this event loop; device records and
 * meta go through lmdb-js's own off-thread puts.
 *
 * Memory: each worker drops its mapped pages of the store file every 10 s
 * (mapping-release.ts), so the file is not counted again in every worker's RSS.
 *
 * Reads: lmdb-js keeps one read snapshot per event turn. Every read method calls
 * resetReadTxn() first so it sees what other workers committed a moment ago (e.g. the
 * append that a mesh message just announced).
 */

import * as path from 'node:path';
import { decodeDeviceRecord, encodeDeviceRecord } from './device-record';
import {
  devKey,
  inboxKey,
  isExpired,
  keyBytes,
  type Layout,
  openLayout,
  readDepth,
  readHeads,
  SEQ_END,
  u64,
} from './embedded-layout';
import { StoreWriter } from './embedded-writer-client';
import { releaseMappingEvery } from './mapping-release';
import { checkU64, decodePush, encodePush, readU64, recordExpiry, writeU64 } from './push-record';
import type { DeviceRecord, InboxHeads, NewPush, ReadResult, Store, StoredPush } from './store';

export class EmbeddedStore implements Store {
  readonly kind = 'embedded';
  private closed = false;

  private constructor(
    private readonly l: Layout,
    private readonly writer: StoreWriter,
    private readonly stopRelease: () => void,
  ) {}

  /** Opens (creating if needed) the environment in `<dir>/lmdb`; safe from many processes at once. */
  static async open(dir: string): Promise<EmbeddedStore> {
    const l = openLayout(dir);
    return new EmbeddedStore(l, new StoreWriter(dir), releaseMappingEvery(path.join(dir, 'lmdb', 'data.mdb')));
  }

  async append(items: ReadonlyArray<{ deviceId: string; push: NewPush }>): Promise<number[]> {
    this.assertOpen();
    if (items.length === 0) return [];
    // Encode and validate here, before the writer thread takes the cross-process write lock.
    const prepared = items.map(({ deviceId, push }) => ({
      dev: devKey(deviceId),
      record: encodePush(push),
      expiresAt: push.expiresAtMs,
    }));
    return (await this.writer.run({ op: 'append', items: prepared })) as number[];
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
    const { headSeq } = readHeads(this.l, dev);
    const pushes: StoredPush[] = [];
    let more = false;
    if (afterSeq < headSeq) {
      const range = this.l.inbox.getRange({
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
    await this.writer.run({ op: 'ack', dev: devKey(deviceId), upToSeq, seqs: [...seqs] });
  }

  async heads(deviceId: string): Promise<InboxHeads> {
    this.assertOpen();
    const dev = devKey(deviceId);
    this.fresh();
    return readHeads(this.l, dev);
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
    for (const _ of this.l.expiry.getKeys({ end, limit: 1 })) due = true;
    if (!due) return 0;
    return (await this.writer.run({ op: 'sweep', end, limit })) as number;
  }

  async depth(): Promise<number> {
    this.assertOpen();
    this.fresh();
    return readDepth(this.l);
  }

  async putDevice(rec: DeviceRecord): Promise<void> {
    this.assertOpen();
    const key = keyBytes('deviceId', rec.deviceId);
    await this.l.devices.put(key, encodeDeviceRecord(rec));
  }

  async getDevice(deviceId: string): Promise<DeviceRecord | null> {
    this.assertOpen();
    const key = keyBytes('deviceId', deviceId);
    this.fresh();
    const b = this.l.devices.getBinary(key);
    return b === undefined ? null : decodeDeviceRecord(deviceId, b);
  }

  async getIdempotent(key: string, nowMs: number): Promise<string | null> {
    this.assertOpen();
    checkU64('nowMs', nowMs);
    const k = keyBytes('idempotency key', key);
    this.fresh();
    const b = this.l.idem.getBinary(k);
    if (b === undefined || isExpired(readU64(b, 0), nowMs)) return null;
    return b.toString('utf8', 8);
  }

  async putIdempotent(key: string, answer: string, expiresAtMs: number): Promise<void> {
    this.assertOpen();
    checkU64('expiresAtMs', expiresAtMs);
    const k = keyBytes('idempotency key', key);
    await this.writer.run({ op: 'idem', key: k, value: idemValue(answer, expiresAtMs), expiresAtMs });
  }

  async claimIdempotent(key: string, nowMs: number, expiresAtMs: number): Promise<string | null> {
    this.assertOpen();
    checkU64('nowMs', nowMs);
    checkU64('expiresAtMs', expiresAtMs);
    const k = keyBytes('idempotency key', key);
    return (await this.writer.run({ op: 'idemClaim', key: k, value: idemValue('', expiresAtMs), expiresAtMs, nowMs })) as string | null;
  }

  async getMeta(key: string): Promise<Buffer | null> {
    this.assertOpen();
    const k = keyBytes('meta key', key);
    this.fresh();
    const b = this.l.meta.getBinary(k);
    return b === undefined ? null : Buffer.from(b);
  }

  async putMeta(key: string, value: Buffer): Promise<void> {
    this.assertOpen();
    const k = keyBytes('meta key', key);
    if (!(value instanceof Uint8Array)) throw new TypeError('meta value must be a Buffer');
    await this.l.meta.put(k, Buffer.from(value));
  }

  async ping(): Promise<boolean> {
    if (this.closed) return false;
    try {
      this.fresh();
      readDepth(this.l);
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopRelease();
    await this.writer.close(); // waits for the writes already sent to commit
    await this.l.root.close(); // and for lmdb-js's own queued puts
  }

  // ---- helpers ------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new Error('store is closed');
  }

  /** Newest snapshot: without this a read could miss another worker's commit this turn. */
  private fresh(): void {
    this.l.root.resetReadTxn();
  }
}

/** An idempotency value as stored: u64 expiry (0 = none), then the answer ('' = a claim). */
function idemValue(answer: string, expiresAtMs: number): Buffer {
  const text = Buffer.from(answer, 'utf8');
  const value = Buffer.allocUnsafe(8 + text.length);
  writeU64(value, 0, expiresAtMs);
  text.copy(value, 8);
  return value;
}
