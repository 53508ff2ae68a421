/**
 * The bus seam: node-addressed messages between gateway workers. On one node the worker
 * mesh (src/mesh/mesh.ts, unix sockets) is the bus; a fleet's workers talk through
 * `RedisBus` (redis.ts): sharded pub/sub, one channel per worker process.
 * Messages are opaque bytes (the gateway sends mesh payloads: op, header, raw body).
 */
import type { WorkerAddress } from '../presence/presence';

export interface Bus {
  /** The worker process this bus instance receives for. */
  readonly self: WorkerAddress;
  /**
   * Delivers `msg` to one worker process. Resolves true when a receiver got it, false
   * when nobody listens there (that process is gone): at most once, never queued.
   */
  sendTo(to: WorkerAddress, msg: Uint8Array): Promise<boolean>;
  /** Delivers `msg` to every worker of every node, this one included; resolves with how many got it. */
  broadcast(msg: Uint8Array): Promise<number>;
  /** Every message addressed to this worker or broadcast, in the order each sender sent them. */
  onMessage(handler: (msg: Buffer) => void): void;
  close(): Promise<void>;
}
