/** What a worker's gateway is built from; assembled in src/cluster/worker.ts. */
import type { Logger } from 'pino';
import type { Config } from '../config/types';
import type { HandshakeResult } from '../metrics/registry';
import type { Store } from '../store/store';
import type { TokenVerifier } from './auth';
import type { Fleet } from './fleet';

/** The gateway's view of the metrics registry (src/metrics/), kept narrow so the hot path stays cheap. */
export interface GatewayMetrics {
  connOpened(transport: number): void;
  connClosed(transport: number): void;
  handshake(result: HandshakeResult): void;
  frameIn(type: number, bytes: number): void;
  frameOut(type: number, bytes: number): void;
  pushesAccepted(n: number): void;
  pushDelivered(latencyMs: number): void;
  pushesAcked(n: number): void;
  error(code: number): void;
  heartbeatAdvised(kind: number, ms: number): void;
  heartbeatProbe(success: boolean): void;
  heartbeatChange(change: 'step_up' | 'ceiling' | 'back_off'): void;
  natTimeoutSuspected(kind: number): void;
}

export interface Forwarder {
  forward(req: {
    method: string;
    body: Buffer;
    meta: Record<string, string>;
    deviceId: string;
    sessionId: string;
  }): Promise<{ status: number; body: Buffer; error: string }>;
}

export interface GatewayDeps {
  config: Config;
  store: Store;
  verifier: TokenVerifier;
  forwarder: Forwarder;
  metrics: GatewayMetrics;
  log: Logger;
  workerIndex: number;
  workerCount: number;
  /** Directory for the mesh's unix sockets (one per worker). */
  meshDir: string;
  /** host:port announced in WELCOME.resume_endpoint, per transport kind. */
  resumeEndpoints: [string, string];
  /** Fleet mode (store.kind = "redis"): presence and bus in Redis (fleet.ts); absent on a single node. */
  fleet?: Fleet | null;
}
