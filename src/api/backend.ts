/**
 * What the HTTP API (src/api/) needs from the worker it runs in. The worker
 * implements it with the store, the presence directory and the mesh; the API layer
 * only parses, validates, authorises and formats.
 */
import type { StoredPush } from '../store/store';
import type { ApiError } from './errors';

export type PushTarget =
  | { kind: 'device'; deviceIds: string[]; single: boolean }
  | { kind: 'topic'; topic: string }
  | { kind: 'all' };

/** A validated `POST /v1/push` body. */
export interface PushCommand {
  target: PushTarget;
  body: Buffer;
  /** 0 NORMAL, 1 HIGH, 2 BULK. */
  priority: number;
  /** 0 = no expiry. */
  ttlMs: number;
  durable: boolean;
  /** Idempotency key given by the caller, or a generated id. */
  id: string;
  idGiven: boolean;
  /** The API key that sent it (for idempotency scoping and rate limits). */
  apiKey: string;
}

export interface PushOutcome {
  id: string;
  accepted: number;
  online: number;
  /** Seqs of durable pushes, in target order. */
  seqs?: number[];
  /** Over its unit's budget: accepted (and stored, if durable) and paced; `online` is then 0 (src/flow/). */
  queued?: boolean;
}

export interface DeviceInfo {
  online: boolean;
  node: string | null;
  worker: number | null;
  connected_at: string | null;
  network: { kind: string; carrier: string } | null;
  heartbeat_ms: number | null;
  head_seq: number;
  acked_seq: number;
}

export interface ApiBackend {
  /**
   * Called with the caller's key before a push's body is read: an error (429) to answer
   * at once, without reading or parsing the body, or null to go on. Optional.
   */
  gatePush?(apiKey: string): ApiError | null;
  push(cmd: PushCommand): Promise<PushOutcome>;
  /** null when the device was never seen. */
  deviceInfo(deviceId: string): Promise<DeviceInfo | null>;
  /** Closes the device's session wherever it is; false when it has none. */
  kick(deviceId: string): Promise<boolean>;
  /** Aggregated Prometheus text over all workers. */
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Readiness: workers up, store reachable, not draining. */
  ready(): Promise<{ ok: boolean; reasons: string[] }>;
  /** A dictionary's bytes (issue 5); null when unknown. */
  dict(id: number): Promise<Buffer | null>;
  /** POST /v1/dicts: trains and installs a dictionary; the JSON answer. Absent: 501. */
  trainDict?(opts: { maxBytes?: number }): Promise<Record<string, unknown>>;
}

export type { StoredPush };
