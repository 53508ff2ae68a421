/**
 * What the soak bench's parent and its client processes (client.ts) say to each other
 * over IPC: the spec a client is forked with, the commands it takes, what it reports.
 */

export interface SoakClientSpec {
  /** Index of this client process (0-based), for labels. */
  id: number;
  /** "moor": HELLO/WELCOME, heartbeat, PUSH/ACK. "bare": upgrade (WebSocket) or connect (raw TCP), one echo, then receive. */
  mode: 'moor' | 'bare';
  host: string;
  wsPort: number;
  wsPath: string;
  /** Raw TCP port; 0 = every connection uses WebSocket. */
  tcpPort: number;
  /** Percent of connections on raw TCP (connection i when i % 100 < tcpPct). */
  tcpPct: number;
  tls: boolean;
  localAddress: string;
  /** Device ids are `${prefix}${first + i}` for i < count. */
  prefix: string;
  first: number;
  count: number;
  /**
   * Ramp order: devices [0, mixedFirst) first, in index order (the transports mixed),
   * then the rest of the WebSocket devices, then the rest of the raw TCP ones, so the
   * bench can read memory between the two transports. Absent: index order.
   */
  mixedFirst?: number;
  secret: string;
  /** New connections per second this process starts while ramping. */
  ratePerS: number;
  /** Handshakes in flight at most while ramping. */
  inflight: number;
  handshakeTimeoutMs: number;
  /** Reconnect delay: uniform in [0, jitterMs] the first time, doubling per failure up to maxMs. */
  reconnectJitterMs: number;
  reconnectMaxMs: number;
  /** The HTTP API the dial test and the storm pusher post to (moor mode). */
  apiPort: number;
  apiKey: string;
  maxLifeMs: number;
  /** Receive coalescing: nap this long while data trickles in (0: off; client.ts). */
  napUs: number;
}

export interface ClientStats {
  /** Connections open now. */
  open: number;
  /** Connections started so far (ramp index). */
  started: number;
  /** Handshakes that failed (each attempt counts). */
  failed: number;
  /** Open sessions that were closed under us. */
  lost: number;
  /** Sessions opened again after a loss. */
  reopened: number;
  /** Connections that were open once and are not now (waiting to reconnect or reconnecting). */
  down: number;
  pending: number;
  /** Waiting for a reconnect (or a retry of a failed handshake). */
  retrying: number;
  /** Given up after too many attempts. */
  dead: number;
  /** Wall-clock ms when `down` last went from > 0 to 0 (0 = never). */
  backAt: number;
  pings: number;
  pongs: number;
  /** Failure and loss reasons, e.g. "ECONNREFUSED", "ERROR 5", "upgrade answered 503". */
  reasons: Record<string, number>;
  /** Open sessions per gateway worker index (from the WELCOME session id); bare: []. */
  perWorker: number[];
  /** Open sessions per transport: [ws, tcp]. */
  perTransport: [number, number];
  rss: number;
  cpuMs: number;
  /** The newest fan-out round seen and how many devices here received it. */
  fanRound: number;
  fanGot: number;
  /** Receive-coalescing naps taken so far (client.ts). */
  naps: number;
}

export interface DialResult {
  /** End-to-end ms, POST sent -> PUSH received, same process and clock. */
  latencies: number[];
  /** ms until the API answered 202. */
  apiMs: number[];
  sent: number;
  /** Answers other than 202, by status ("fetch" = no answer). */
  errors: Record<string, number>;
  /** Accepted but not received by the time of the report. */
  missing: number;
}

export interface StormResult {
  sent: number;
  accepted: number;
  /** Non-202 answers by status, "fetch" for a request that got no answer (refused, reset). */
  refused: Record<string, number>;
  /** The first answer body of each non-202 status (truncated). */
  refusedExamples: Record<string, string>;
  /** Accepted pushes received live or by the replay after a reconnect. */
  received: number;
  /** Accepted pushes only found by a SYNC at verification. */
  bySync: number;
  /** Accepted pushes never received: lost. */
  lost: number;
  duplicates: number;
  /** Examples of lost pushes: device id and seq. */
  lostExamples: Array<{ device: string; seq: number }>;
  /** Examples of pushes only a SYNC brought: device, seq, worker holding it, ms from POST to 202. */
  syncExamples: Array<{ device: string; seq: number; worker: number; sentAtS: number }>;
  /** ms, POST sent -> PUSH received, for accepted pushes. */
  latencies: number[];
}

export type ToClient =
  | { t: 'target'; n: number }
  | { t: 'dial'; perS: number }
  | { t: 'fanout-times'; round: number }
  | { t: 'storm'; perS: number; victim: number }
  | { t: 'verify'; waitMs: number }
  | { t: 'dial-report' }
  | { t: 'stop' };

export type FromClient =
  | { t: 'ready'; rss: number }
  | { t: 'progress'; s: ClientStats }
  | { t: 'fanout-times'; round: number; times: number[] }
  | { t: 'dial-report'; r: DialResult }
  | { t: 'verify'; r: StormResult };
