/** Messages between the primary and its workers over node:cluster IPC. One table. */
import type { ConfigKey } from '../config/schema';
import type { Config } from '../config/types';

/** What a worker is told at fork, through the environment (MOOR_WORKER). */
export interface WorkerSpec {
  index: number;
  /** The resolved config: concrete ports, secrets filled in, live values as last reloaded. */
  config: Config;
  /** Each worker's own WebSocket resume port, by worker index. */
  resumePorts: number[];
  meshDir: string;
  /** The primary's start (base 36 ms): fleet mode tells this node's boots apart (src/gateway/fleet.ts). */
  boot?: string;
}

/**
 * `shutdown` (SIGTERM): the worker keeps its HTTP API open so pushes are still accepted
 * while devices leave. `roll` (SIGUSR2): the other workers carry the load, so it closes
 * the API too.
 */
export type DrainMode = 'shutdown' | 'roll';

/** New values of every key that may change live (schema `live`), by dotted name. */
export type LiveValues = Partial<Record<ConfigKey, unknown>>;

export type ToPrimary =
  /** Listening on every port and the mesh is whole. */
  | { type: 'moor:listening'; index: number }
  /** Every STATS_INTERVAL_MS from `listening` on; silence means a blocked event loop. */
  | { type: 'moor:stats'; index: number; ws: number; tcp: number }
  /** Its devices are gone; `dropped` were still connected at the deadline and closed. */
  | { type: 'moor:drained'; index: number; dropped: number }
  | { type: 'moor:reloaded'; index: number; generation: number };

export type ToWorker =
  /** Worker `worker` died: forget its sessions in this directory shard. */
  | { type: 'moor:peer-down'; worker: number }
  /**
   * Stop accepting devices, GOAWAY the connected ones with reconnect_after_ms spread over
   * [0, windowMs), close the rest after windowMs + graceMs, flush the store and exit.
   * With `hold`, wait for `moor:retire` before exiting (the directory shard stays up
   * until its successor listens).
   */
  | { type: 'moor:drain'; windowMs: number; graceMs: number; mode: DrainMode; hold: boolean }
  | { type: 'moor:retire' }
  /** SIGHUP: apply `live`; `changed` names what differs (TLS files are always listed: renewed certificates keep their paths). */
  | { type: 'moor:reload'; generation: number; live: LiveValues; changed: ConfigKey[] };

/** How often a listening worker reports its connection counts. */
export const STATS_INTERVAL_MS = 1_000;

export function isMoorMessage(m: unknown): m is { type: string } {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string' && (m as { type: string }).type.startsWith('moor:');
}
