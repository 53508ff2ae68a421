/**
 * The Redis engine (`store.kind = "redis"`), for fleets: every gateway node reads and
 * writes the same inboxes, on one Redis or a Redis Cluster. docs/store.md, "Redis", has
 * the longer version; the short one:
 *
 * - Keys: everything of one device shares the hash tag `{<escaped id>}` (redis-keys.ts),
 *   so the per-device Lua scripts (redis-scripts.ts) are atomic on a Cluster too.
 *   Inbox = zset of seqs + hash of records: deleting frees memory at once (a Stream's
 *   XDEL leaves tombstones behind) and a selective ack is one O(log n) ZREM.
 * - Seqs come from HINCRBY on a per-device field that is never deleted.
 * - Cross-device state cannot share a slot with every device, so it is sharded 16 ways
 *   and written next to, not inside, the device scripts: the expiry index (which devices
 *   may have something to sweep) and the depth counter (a gauge).
 * - Durability is Redis's (appendonly + appendfsync); append resolves once Redis answered.
 * - Any Redis failure (refused, timed out, closed, OOM, CLUSTERDOWN, ...) rejects with
 *   `code = 'STORE_UNAVAILABLE'`; nothing is queued while Redis is away.
 */
import {
  checkServers,
  clusterSetupMistake,
  connectWithin,
  createClient,
  masters,
  type RedisClient,
  RedisSetupError,
} from './redis-client';
import {
  checkU64,
  decodePush,
  deviceTag,
  encodePush,
  Keys,
  marker,
  markerTag,
  SHARDS,
  shardOf,
} from './redis-keys';
import { ACK_LUA, APPEND_LUA, READ_LUA, SCRIPT_KEYS, SWEEP_LUA } from './redis-scripts';
import { parseRedisUrl, type RedisTarget, redactRedisUrl } from './redis-url';
import type { DeviceRecord, InboxHeads, NewPush, ReadResult, Store, StoredPush } from './store';

type Arg = string | Buffer | number;

/** The commands defineCommand adds (ioredis adds a `...Buffer` twin of each). */
interface Scripts {
  moorAppend(...args: Arg[]): Promise<number>;
  moorReadBuffer(...args: Arg[]): Promise<Array<number | Buffer | null>>;
  moorAck(...args: Arg[]): Promise<number>;
  moorSweep(...args: Arg[]): Promise<[number, number]>;
}

/** Redis could not do it (or could not say it did); the API answers 503 + Retry-After. */
export class RedisUnavailableError extends Error {
  readonly code = 'STORE_UNAVAILABLE' as const;
  readonly retryAfterMs = 1000;

  constructor(message: string, options?: { cause: unknown }) {
    super(message, options);
    this.name = 'RedisUnavailableError';
  }

  /** `what` (store, presence, bus) failed at `op`; names the last connection error too when it differs. */
  static of(what: string, op: string, err: unknown, lastError: string): RedisUnavailableError {
    const msg = err instanceof Error ? err.message : String(err);
    const last = lastError && lastError !== msg ? ` (last connection error: ${lastError})` : '';
    return new RedisUnavailableError(`redis ${what} unavailable (${op}): ${msg}${last}`, { cause: err });
  }
}

/** How long depth deltas are summed before one INCRBY per shard (depth() and close() flush at once). */
const DEPTH_FLUSH_MS = 1000;
/** Markers read from the expiry index per round trip of a sweep. */
const SWEEP_PAGE = 256;
/** Stale markers (their pushes were acked) a sweep may clear beyond its limit. */
const SWEEP_EXTRA_MARKERS = 1024;

interface AppendGroup {
  tag: string;
  /** Positions in the append's items, in order. */
  idx: number[];
  /** (expiresAt, record) pairs for the append script. */
  args: Arg[];
}

export class RedisStore implements Store {
  readonly kind = 'redis';
  private closed = false;
  private lastError = '';
  private sweepCursor = 0;
  /** Depth changes Redis has not counted yet (a failed INCRBY is retried with the next one). */
  private readonly pendingDepth: number[] = new Array(SHARDS).fill(0);
  private depthTimer: NodeJS.Timeout | null = null;
  private readonly keys: Keys;
  private readonly scripts: Scripts;

  private constructor(
    private readonly client: RedisClient,
    readonly target: RedisTarget,
  ) {
    this.keys = new Keys(target.prefix);
    const remember = (err: Error) => {
      this.lastError = err.message;
    };
    client.on('error', remember);
    client.on('node error', remember);
    client.defineCommand('moorAppend', { numberOfKeys: SCRIPT_KEYS, lua: APPEND_LUA });
    client.defineCommand('moorRead', { numberOfKeys: SCRIPT_KEYS, lua: READ_LUA });
    client.defineCommand('moorAck', { numberOfKeys: SCRIPT_KEYS, lua: ACK_LUA });
    client.defineCommand('moorSweep', { numberOfKeys: SCRIPT_KEYS, lua: SWEEP_LUA });
    this.scripts = client as unknown as Scripts;
  }

  /**
   * Parses `store.redis_url` (redis-url.ts), connects within its timeout and checks the
   * server. Rejects with code STORE_CONFIG for a URL or server that cannot work, and
   * STORE_UNAVAILABLE when Redis cannot be reached (the worker then restarts with backoff).
   */
  static async open(url: string): Promise<RedisStore> {
    const target = parseRedisUrl(url);
    const client = createClient(target);
    const store = new RedisStore(client, target);
    try {
      await connectWithin(client, target.timeoutMs);
      await checkServers(client, target);
    } catch (err) {
      client.disconnect();
      if (err instanceof RedisSetupError) throw err;
      const mistake = target.cluster ? await clusterSetupMistake(target) : null;
      if (mistake) throw mistake;
      throw store.unavailable(`open ${redactRedisUrl(url)}`, err);
    }
    return store;
  }

  /**
   * The store's connection, for fleet mode's presence lookups and bus publishes
   * (src/gateway/fleet.ts): a push that was just stored is routed over the same link.
   */
  get connection(): RedisClient {
    return this.client;
  }

  async append(items: ReadonlyArray<{ deviceId: string; push: NewPush }>): Promise<number[]> {
    this.assertOpen();
    if (items.length === 0) return [];
    // Validate and encode everything before the first command: a bad item writes nothing.
    const groups = new Map<string, AppendGroup>();
    const markers = new Map<number, Map<string, number>>();
    items.forEach(({ deviceId, push }, i) => {
      let g = groups.get(deviceId);
      if (!g) {
        g = { tag: deviceTag(deviceId), idx: [], args: [] };
        groups.set(deviceId, g);
      }
      const record = encodePush(push);
      g.idx.push(i);
      g.args.push(String(push.expiresAtMs), record);
      if (push.expiresAtMs > 0) {
        const shard = shardOf(g.tag);
        const m = markers.get(shard) ?? new Map<string, number>();
        m.set(marker(push.expiresAtMs, g.tag), push.expiresAtMs);
        markers.set(shard, m);
      }
    });
    const seqs = new Array<number>(items.length);
    await this.run('append', async () => {
      // Index first, pushes second: a crash in between leaves a marker with nothing to
      // sweep (harmless), never a push no sweep will find.
      await Promise.all(
        [...markers].map(([shard, m]) => {
          const args: Arg[] = [];
          for (const [member, score] of m) args.push(String(score), member);
          return this.client.call('ZADD', this.keys.expiry(shard), ...args);
        }),
      );
      // One script call per device, all in flight at once (auto-pipelined). Atomic per
      // device, not across devices: a Cluster cannot span slots.
      const results = await Promise.allSettled(
        [...groups.values()].map(async (g) => {
          const first = Number(await this.scripts.moorAppend(...this.keys.device(g.tag), g.idx.length, ...g.args));
          this.pendingDepth[shardOf(g.tag)] += g.idx.length;
          g.idx.forEach((i, j) => {
            seqs[i] = first + j;
          });
        }),
      );
      this.depthSoon();
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
    });
    return seqs;
  }

  async readAfter(deviceId: string, afterSeq: number, limit: number, nowMs: number): Promise<ReadResult> {
    this.assertOpen();
    checkU64('afterSeq', afterSeq);
    checkU64('limit', limit);
    checkU64('nowMs', nowMs);
    const keys = this.keys.device(deviceTag(deviceId));
    const reply = await this.run('readAfter', () =>
      this.scripts.moorReadBuffer(...keys, String(afterSeq), String(limit), String(nowMs)),
    );
    const pushes: StoredPush[] = [];
    for (let i = 2; i < reply.length; i += 2) {
      const seq = Number(String(reply[i]));
      const rec = reply[i + 1];
      if (!Buffer.isBuffer(rec)) throw new Error(`redis inbox of ${deviceId}: seq ${seq} has no record`);
      pushes.push(decodePush(seq, rec));
    }
    return { pushes, more: reply[1] === 1, headSeq: Number(reply[0]) };
  }

  async ack(deviceId: string, upToSeq: number, seqs: readonly number[]): Promise<void> {
    this.assertOpen();
    if (typeof upToSeq !== 'number' || !(upToSeq >= 0)) {
      throw new RangeError(`upToSeq must be a number >= 0, got ${upToSeq}`);
    }
    const tag = deviceTag(deviceId);
    // Device input: a huge uint64 is capped here and at headSeq in the script.
    const upTo = Math.min(Math.floor(upToSeq), Number.MAX_SAFE_INTEGER);
    const listed = [...new Set(seqs.filter((s) => Number.isSafeInteger(s) && s > 0))].map(String);
    const removed = await this.run('ack', () =>
      this.scripts.moorAck(...this.keys.device(tag), String(upTo), ...listed),
    );
    if (removed > 0) {
      this.pendingDepth[shardOf(tag)] -= removed;
      this.depthSoon();
    }
  }

  async heads(deviceId: string): Promise<InboxHeads> {
    this.assertOpen();
    const [head] = this.keys.device(deviceTag(deviceId));
    const [seq, ack] = await this.run('heads', () => this.client.hmget(head, 'seq', 'ack'));
    return { headSeq: Number(seq ?? 0), ackedSeq: Number(ack ?? 0) };
  }

  /**
   * Walks the expiry index shards (starting one further each call, so a small limit still
   * reaches every shard over time). A marker `<expiresAt>|<tag>` says "this device may have
   * pushes expiring then"; the device's own sweep script finds and deletes what is due and
   * says whether more is due. Markers are dropped once their device has nothing due. Two
   * workers sweeping at once only repeat work: the per-device script counts each push once.
   */
  async sweepExpired(nowMs: number, limit: number): Promise<number> {
    this.assertOpen();
    checkU64('nowMs', nowMs);
    checkU64('limit', limit);
    if (limit === 0) return 0;
    const start = this.sweepCursor;
    this.sweepCursor = (this.sweepCursor + 1) % SHARDS;
    let removed = 0;
    let markerBudget = limit + SWEEP_EXTRA_MARKERS;
    await this.run('sweepExpired', async () => {
      for (let i = 0; i < SHARDS && removed < limit && markerBudget > 0; i++) {
        const shard = (start + i) % SHARDS;
        const index = this.keys.expiry(shard);
        while (removed < limit && markerBudget > 0) {
          const page = Math.min(SWEEP_PAGE, limit - removed, markerBudget);
          const members = (await this.client.zrangebyscore(index, '-inf', String(nowMs), 'LIMIT', 0, page)) as string[];
          if (members.length === 0) break;
          markerBudget -= members.length;
          const byTag = new Map<string, string[]>();
          for (const m of members) {
            const tag = markerTag(m);
            byTag.set(tag, [...(byTag.get(tag) ?? []), m]);
          }
          // Split what is left of the limit over the devices, so the sum cannot exceed it.
          const quota = Math.max(1, Math.floor((limit - removed) / byTag.size));
          const tags = [...byTag.keys()].slice(0, limit - removed);
          const results = await Promise.all(
            tags.map((tag) => this.scripts.moorSweep(...this.keys.device(tag), String(nowMs), quota)),
          );
          const done: string[] = [];
          results.forEach(([n, stillDue], j) => {
            removed += n;
            this.pendingDepth[shard] -= n;
            if (stillDue === 0) done.push(...(byTag.get(tags[j]) ?? []));
          });
          if (done.length > 0) await this.client.zrem(index, ...done);
        }
      }
    });
    await this.flushDepth();
    return removed;
  }

  async depth(): Promise<number> {
    this.assertOpen();
    await this.flushDepth();
    const counts = await this.run('depth', () =>
      Promise.all(Array.from({ length: SHARDS }, (_, k) => this.client.get(this.keys.depth(k)))),
    );
    const stored = counts.reduce((sum, c) => sum + Number(c ?? 0), 0);
    const pending = this.pendingDepth.reduce((a, b) => a + b, 0);
    return Math.max(0, stored + pending);
  }

  async putDevice(rec: DeviceRecord): Promise<void> {
    this.assertOpen();
    const key = this.keys.record(deviceTag(rec.deviceId));
    const json = JSON.stringify(rec);
    await this.run('putDevice', () => this.client.set(key, json));
  }

  async getDevice(deviceId: string): Promise<DeviceRecord | null> {
    this.assertOpen();
    const key = this.keys.record(deviceTag(deviceId));
    const json = await this.run('getDevice', () => this.client.get(key));
    return json === null ? null : (JSON.parse(json) as DeviceRecord);
  }

  async getIdempotent(key: string, nowMs: number): Promise<string | null> {
    this.assertOpen();
    checkU64('nowMs', nowMs);
    const k = this.keys.idem(key);
    const b = await this.run('getIdempotent', () => this.client.getBuffer(k));
    if (b === null || b.length < 8) return null;
    // Checked against the caller's clock; Redis's own expiry (PXAT) only frees memory.
    const expiresAt = b.readUInt32BE(0) * 2 ** 32 + b.readUInt32BE(4);
    if (expiresAt !== 0 && expiresAt <= nowMs) return null;
    return b.toString('utf8', 8);
  }

  async putIdempotent(key: string, answer: string, expiresAtMs: number): Promise<void> {
    this.assertOpen();
    checkU64('expiresAtMs', expiresAtMs);
    const k = this.keys.idem(key);
    const value = idemValue(answer, expiresAtMs);
    await this.run('putIdempotent', () =>
      expiresAtMs > 0 ? this.client.call('SET', k, value, 'PXAT', String(expiresAtMs)) : this.client.set(k, value),
    );
  }

  async claimIdempotent(key: string, nowMs: number, expiresAtMs: number): Promise<string | null> {
    this.assertOpen();
    checkU64('nowMs', nowMs);
    checkU64('expiresAtMs', expiresAtMs);
    const k = this.keys.idem(key);
    const claim = idemValue('', expiresAtMs);
    const expiry = expiresAtMs > 0 ? ['PXAT', String(expiresAtMs)] : [];
    // SET NX is the atomic claim. A value found is checked against the caller's clock, as
    // getIdempotent does: one Redis still keeps past that clock's expiry is taken over.
    for (let attempt = 0; ; attempt++) {
      const set = await this.run('claimIdempotent', () => this.client.call('SET', k, claim, 'NX', ...expiry));
      if (set === 'OK') return null;
      const found = await this.getIdempotent(key, nowMs);
      if (found !== null) return found;
      if (attempt > 0) {
        await this.run('claimIdempotent', () => this.client.call('SET', k, claim, ...expiry));
        return null;
      }
    }
  }

  async getMeta(key: string): Promise<Buffer | null> {
    this.assertOpen();
    const k = this.keys.meta(key);
    const b = await this.run('getMeta', () => this.client.getBuffer(k));
    // Own copy, as the embedded engine gives: the reply may view a shared socket chunk.
    return b === null ? null : Buffer.from(b);
  }

  async putMeta(key: string, value: Buffer): Promise<void> {
    this.assertOpen();
    const k = this.keys.meta(key);
    if (!(value instanceof Uint8Array)) throw new TypeError('meta value must be a Buffer');
    const copy = Buffer.from(value);
    await this.run('putMeta', () => this.client.set(k, copy));
  }

  /** True when every master answers PING within the command timeout. Never throws. */
  async ping(): Promise<boolean> {
    if (this.closed) return false;
    try {
      const nodes = masters(this.client);
      if (nodes.length === 0) return false;
      const answers = await Promise.all(nodes.map((n) => n.ping()));
      return answers.every((a) => a === 'PONG');
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.depthTimer) clearTimeout(this.depthTimer);
    this.depthTimer = null;
    await this.flushDepth();
    this.closed = true;
    try {
      // QUIT waits for the replies still owed to us; when Redis is gone, just drop the socket.
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }

  // ---- helpers ------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new Error('store is closed');
  }

  /** Runs Redis work; any failure becomes STORE_UNAVAILABLE, never a silent success. */
  private async run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.unavailable(op, err);
    }
  }

  private unavailable(op: string, err: unknown): RedisUnavailableError {
    return RedisUnavailableError.of('store', op, err, this.lastError);
  }

  /**
   * Appends and acks send their depth deltas at most once a second, summed: two INCRBYs
   * per push (append, ack) would be a third of a push's round trips, for a gauge.
   */
  private depthSoon(): void {
    if (this.depthTimer) return;
    this.depthTimer = setTimeout(() => {
      this.depthTimer = null;
      if (!this.closed) void this.flushDepth();
    }, DEPTH_FLUSH_MS);
    this.depthTimer.unref();
  }

  /** Sends pending depth changes; a failed shard keeps its delta for the next try. */
  private async flushDepth(): Promise<void> {
    await Promise.all(
      this.pendingDepth.map(async (delta, shard) => {
        if (delta === 0) return;
        this.pendingDepth[shard] -= delta;
        try {
          await this.client.incrby(this.keys.depth(shard), delta);
        } catch {
          this.pendingDepth[shard] += delta;
        }
      }),
    );
  }
}

/** An idempotency value: the expiry (u64 BE, our clock; 0 = none), then the answer ('' = a claim). */
function idemValue(answer: string, expiresAtMs: number): Buffer {
  const text = Buffer.from(answer, 'utf8');
  const value = Buffer.allocUnsafe(8 + text.length);
  value.writeUInt32BE(Math.floor(expiresAtMs / 2 ** 32), 0);
  value.writeUInt32BE(expiresAtMs >>> 0, 4);
  text.copy(value, 8);
  return value;
}
