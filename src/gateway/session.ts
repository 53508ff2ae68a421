/**
 * One device connection. Kept deliberately small (design.md: ~1 KB per session on
 * top of uWS): plain fields, no closures, no per-session timers (the timing wheel
 * links through the wheel* fields), transport behaviour in shared objects.
 * docs/memory.md: every field is 8 bytes on every session, and a field that ever holds
 * a number beyond 2^31 (e.g. a Date.now() value) costs a 16-byte box on top; state
 * that few sessions need lives in one `rare` object behind accessors.
 */
import type { WheelNode } from './wheel';

export const SessionState = {
  /** TCP only: waiting for the `MOOR/1\r\n` preface. */
  PREFACE: 0,
  /** Connected, no HELLO yet. */
  HANDSHAKE: 1,
  /** HELLO received, token being verified. */
  AUTHENTICATING: 2,
  OPEN: 3,
  /** ERROR sent or close requested; frames are ignored. */
  CLOSING: 4,
  CLOSED: 5,
} as const;
export type SessionStateValue = (typeof SessionState)[keyof typeof SessionState];

export const TransportKind = { WS: 0, TCP: 1 } as const;
export type TransportKindValue = (typeof TransportKind)[keyof typeof TransportKind];
export const TRANSPORT_NAMES = ['ws', 'tcp'] as const;

/** uWS's send statuses, used by both transports. */
export const SendResult = { BACKPRESSURE: 0, OK: 1, DROPPED: 2 } as const;
export type SendResultValue = (typeof SendResult)[keyof typeof SendResult];

/** Behaviour shared by every session of one transport. */
export interface Transport {
  readonly kind: TransportKindValue;
  send(s: Session, frame: Uint8Array): SendResultValue;
  /**
   * Send `frame` (an ERROR, or null) then close. The WebSocket close code is
   * `wsCloseCode` when given, else the one mapped from `errorCode`.
   */
  close(s: Session, frame: Uint8Array | null, errorCode: number, wsCloseCode: number): void;
  subscribe(s: Session, topic: string): void;
  bufferedAmount(s: Session): number;
  /** Several sends in one syscall where the transport supports it. */
  cork(s: Session, fn: () => void): void;
}

/**
 * lastSeen's clock. 16 ms units keep it a Smi for a year of uptime (2^31 units); the
 * rounding makes the idle deadline at most 16 ms early, against heartbeat intervals of
 * seconds to minutes.
 */
const SEEN_EPOCH = Date.now();
const SEEN_UNIT_MS = 16;

export class Session implements WheelNode {
  wheelNext: WheelNode | null = null;
  wheelPrev: WheelNode | null = null;
  wheelSlot = -1;
  wheelDeadline = 0;

  state: SessionStateValue;
  deviceId = '';
  heartbeatMs = 0;
  /** Heartbeat policy tag (network class, mode, quiet intervals survived); 0 = none. */
  hb = 0;
  /** When the last frame arrived, in SEEN_UNIT_MS units since SEEN_EPOCH: a Smi, where a Date.now() value would be a 16-byte box. */
  private seen = 0;
  /** Highest durable seq sent to the device in this session (replay cursor). */
  sentSeq = 0;
  /** Highest cumulative ACK seen in this session. */
  ackedSeq = 0;
  /** Compression (src/compression/gateway.ts): codecs it may receive, bits 0-1, and its dictionary slot, bits 2-9. */
  cx = 0;
  private rare: SessionRare | null = null;
  /** Inbound limit (src/flow/bucket.ts): frame and byte tokens left, second of the last refill (-1: none yet). */
  inFrames = 0;
  inBytes = 0;
  inSec = -1;

  constructor(
    public readonly transport: Transport,
    /** The uWS WebSocket or the net.Socket. */
    public conn: unknown,
    /** Per-worker counter; with the worker's prefix it makes the session id. */
    public readonly sid: number,
    nowMs: number,
    state: SessionStateValue,
  ) {
    this.state = state;
    this.lastSeen = nowMs;
  }

  /** Date.now() of the last frame, rounded down to SEEN_UNIT_MS. */
  get lastSeen(): number {
    return SEEN_EPOCH + this.seen * SEEN_UNIT_MS;
  }
  set lastSeen(ms: number) {
    this.seen = Math.floor((ms - SEEN_EPOCH) / SEEN_UNIT_MS);
  }

  get open(): boolean {
    return this.state === SessionState.OPEN;
  }

  /** TCP only: topics from the token, for the worker's topic index. */
  get topics(): string[] | null {
    return this.rare?.topics ?? null;
  }
  set topics(v: string[] | null) {
    this.setRare('topics', v);
  }

  /** Frames received while the token is being verified (copied). */
  get early(): EarlyFrame[] | null {
    return this.rare?.early ?? null;
  }
  set early(v: EarlyFrame[] | null) {
    this.setRare('early', v);
  }

  /**
   * While > 0, a replay is running; live durable pushes above sentSeq are left to it.
   * Back at 0, liveMissed is cleared too: the next replay reads the inbox afresh.
   */
  get replaying(): number {
    return this.rare?.replaying ?? 0;
  }
  set replaying(v: number) {
    this.setRare('replaying', v);
    if (v === 0) this.setRare('liveMissed', 0);
  }

  /** Highest live durable seq skipped for a replay: the replay re-reads up to it. */
  get liveMissed(): number {
    return this.rare?.liveMissed ?? 0;
  }
  set liveMissed(v: number) {
    this.setRare('liveMissed', v);
  }

  /** Resolves a replay waiting for the transport to drain. */
  get waiter(): (() => void) | null {
    return this.rare?.waiter ?? null;
  }
  set waiter(v: (() => void) | null) {
    this.setRare('waiter', v);
  }

  private setRare<K extends keyof SessionRare>(key: K, v: SessionRare[K]): void {
    if ((v === null || v === 0) && this.rare === null) return;
    this.rare ??= { topics: null, early: null, waiter: null, replaying: 0, liveMissed: 0 };
    this.rare[key] = v;
    const r = this.rare;
    if (r.topics === null && r.early === null && r.waiter === null && r.replaying === 0 && r.liveMissed === 0) this.rare = null;
  }
}

export interface EarlyFrame {
  type: number;
  stream: number;
  payload: Buffer;
}

/** What few sessions need, or need only for a while (HELLO, a replay), kept off the others. */
interface SessionRare {
  topics: string[] | null;
  early: EarlyFrame[] | null;
  waiter: (() => void) | null;
  replaying: number;
  liveMissed: number;
}
