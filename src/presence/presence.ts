/**
 * The presence seam: device id → the session holding it. One session per device across
 * every worker and node (protocol.md §5), so a registration says whom it replaced, and
 * the caller tells that session to close (REPLACED).
 *
 * Engines: `DirectoryPresence` (embedded.ts), the in-process directory a worker keeps for
 * its shard of one node, and `RedisPresence` (redis.ts), shared by every node of a fleet.
 * One shared suite (test/presence-suite.ts) runs against both.
 */

/** A worker process: its node, its index there and its boot epoch (a restart is another worker). */
export interface WorkerAddress {
  node: string;
  worker: number;
  /** Unique per worker process start; a restarted worker never reuses one. */
  epoch: string;
}

/** Where a device's session lives: a worker and the session's number there. */
export interface Owner extends WorkerAddress {
  sid: number;
}

export interface PresenceEntry {
  deviceId: string;
  owner: Owner;
}

export interface Presence {
  readonly kind: string;
  /**
   * Makes each entry its device's session, in order, atomically per device. Resolves with
   * what each one replaced: the previous owner, or null when there was none or it was
   * this very session. The caller tells replaced sessions to close.
   */
  register(entries: readonly PresenceEntry[]): Promise<Array<Owner | null>>;
  /**
   * Registers each entry only where its device has no session or this one (re-asserting
   * after an outage must not take a device from a session that registered meanwhile).
   * Per entry: true = written now, false = it was already there, an Owner = that session
   * keeps the device and this one lost it.
   */
  claim(entries: readonly PresenceEntry[]): Promise<Array<Owner | boolean>>;
  /** Forgets each entry where it still names that session (a newer one may have replaced it). */
  unregister(entries: readonly PresenceEntry[]): Promise<void>;
  /** The owner of each device, in order; null when it has no session. */
  lookup(deviceIds: readonly string[]): Promise<Array<Owner | null>>;
  /**
   * Keeps this worker's entries alive; called every few seconds. Resolves true when the
   * engine had lost them (expired or wiped) and the caller should register its sessions again.
   */
  refresh(): Promise<boolean>;
  close(): Promise<void>;
}

export function sameWorker(a: WorkerAddress, b: WorkerAddress): boolean {
  return a.worker === b.worker && a.epoch === b.epoch && a.node === b.node;
}

export function sameOwner(a: Owner, b: Owner): boolean {
  return a.sid === b.sid && sameWorker(a, b);
}

/** `node/worker/epoch`: a worker's name in keys, channels and logs (node ids hold no `/`). */
export function workerName(w: WorkerAddress): string {
  return `${w.node}/${w.worker}/${w.epoch}`;
}
