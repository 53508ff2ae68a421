/** Messages between the primary and its workers over node:cluster IPC. One table. */
import type { Config } from '../config/types';

/** What a worker is told at fork, through the environment (MOOR_WORKER). */
export interface WorkerSpec {
  index: number;
  /** The resolved config: concrete ports, secrets filled in. */
  config: Config;
  /** Each worker's own WebSocket resume port, by worker index. */
  resumePorts: number[];
  meshDir: string;
}

export type ToPrimary =
  | { type: 'moor:listening'; index: number }
  | { type: 'moor:stats'; index: number; ws: number; tcp: number }
  | { type: 'moor:drained'; index: number };

export type ToWorker =
  | { type: 'moor:peer-down'; worker: number }
  | { type: 'moor:drain'; windowMs: number; graceMs: number };

export function isMoorMessage(m: unknown): m is { type: string } {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string' && (m as { type: string }).type.startsWith('moor:');
}
