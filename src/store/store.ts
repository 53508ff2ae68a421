/**
 * The storage seam: every engine (embedded lmdb, Redis) implements `Store`, and one
 * shared suite (test/store-suite.ts) runs against each. All methods are async so
 * networked engines fit; a resolved write is durable (it survives a crash).
 */

/** A durable push as kept in a device's inbox. */
export interface StoredPush {
  seq: number;
  id: string;
  topic: string;
  body: Buffer;
  /** 0 NORMAL, 1 HIGH, 2 BULK (protocol.md Priority). */
  priority: number;
  /** 0 = never expires; otherwise expired once `nowMs >= expiresAtMs`. */
  expiresAtMs: number;
  sentAtMs: number;
}

export type NewPush = Omit<StoredPush, 'seq'>;

export interface InboxHeads {
  /** Newest seq ever assigned to the device (0 if none). */
  headSeq: number;
  /** Highest cumulative ACK (Ack.up_to_seq) received. */
  ackedSeq: number;
}

export interface ReadResult {
  pushes: StoredPush[];
  /** True when unexpired pushes remain after the last one returned. */
  more: boolean;
  headSeq: number;
}

/** What the gateway remembers of a device between sessions (api.md GET /v1/devices). */
export interface DeviceRecord {
  deviceId: string;
  firstSeenMs: number;
  connectedAtMs: number;
  network: { kind: number; carrier: string };
  heartbeatMs: number;
  node: string;
  worker: number;
}

export interface Store {
  readonly kind: string;
  /**
   * Append one durable push per item, in one atomic write; returns the seqs in item order.
   * Resolves only once the write is durable (the push API answers 202 after this). Seqs are
   * per device, start at 1 and never repeat, even after every push was acked or expired.
   * Device ids are 1..1024 UTF-8 bytes; numbers are non-negative safe integers.
   */
  append(items: ReadonlyArray<{ deviceId: string; push: NewPush }>): Promise<number[]>;
  /** Unexpired pushes with seq > afterSeq, oldest first, at most `limit`. */
  readAfter(deviceId: string, afterSeq: number, limit: number, nowMs: number): Promise<ReadResult>;
  /**
   * Delete pushes with seq <= upToSeq and those listed; raises ackedSeq to upToSeq, capped
   * at headSeq, never lowering it. Listed seqs that name nothing stored are ignored (device
   * input); an ack for a device never appended to is a no-op.
   */
  ack(deviceId: string, upToSeq: number, seqs: readonly number[]): Promise<void>;
  heads(deviceId: string): Promise<InboxHeads>;
  /**
   * Remove up to `limit` expired pushes; returns how many were removed. Engines may drop
   * expired idempotency answers in the same pass (not counted).
   */
  sweepExpired(nowMs: number, limit: number): Promise<number>;
  /** Number of pushes currently stored (all devices), for the inbox-depth gauge. */
  depth(): Promise<number>;

  putDevice(rec: DeviceRecord): Promise<void>;
  getDevice(deviceId: string): Promise<DeviceRecord | null>;

  /** Idempotency keys of the push API: remember a JSON answer until expiresAtMs (0 = forever). */
  getIdempotent(key: string, nowMs: number): Promise<string | null>;
  putIdempotent(key: string, answer: string, expiresAtMs: number): Promise<void>;
  /**
   * Atomically (across workers and nodes): when a live value is stored under `key`, return
   * it (an answer, or '' for a claim a push in progress holds); else store a claim ('')
   * until expiresAtMs and return null: the caller owns the key until it puts an answer.
   */
  claimIdempotent(key: string, nowMs: number, expiresAtMs: number): Promise<string | null>;

  /** Small named documents (heartbeat class table, dictionary index, ...). */
  getMeta(key: string): Promise<Buffer | null>;
  putMeta(key: string, value: Buffer): Promise<void>;

  /** Cheap reachability probe for /readyz. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
