/**
 * One connection from open to close: sends HELLO, waits for WELCOME, checks what the
 * gateway sends against protocol.md §3, keeps the heartbeat, and reports how it ended.
 * Reconnecting is not its business: MoorClient decides that from the SessionEnd.
 */
import { DEFAULT_MAX_FRAME, FLAG_CODEC_MASK, FRAME_TYPE_NAMES, FrameType } from '../protocol/constants';
import { encodeFrame } from '../protocol/encoder';
import { moor } from '../protocol/generated/moor';
import type { ClientCompression } from './compression';
import type { Endpoint } from './endpoint';
import { GatewayError, MoorClientError } from './errors';
import type { Frame } from './frames';
import { Heartbeat } from './heartbeat';
import { type CloseInfo, openTransport, type Transport } from './transport';

export interface SessionEnd {
  info: CloseInfo;
  /** null if the session never reached WELCOME. */
  welcome: moor.v1.Welcome | null;
  /** From WELCOME to the end, ms. */
  livedMs: number;
  /** The heartbeat interval in use at the end, ms. */
  intervalMs: number;
  /** A WELCOMEd session died without a close, or the gateway missed a PONG: previous.timed_out. */
  timedOut: boolean;
  /** The ERROR frame that ended it, if any. */
  error: GatewayError | null;
  goaway: { msg: moor.v1.GoAway; at: number } | null;
}

export interface SessionHandlers {
  welcome(w: moor.v1.Welcome): void;
  push(p: moor.v1.Push): void;
  response(stream: number, r: moor.v1.Response): void;
  syncDone(d: moor.v1.SyncDone): void;
  goaway(g: moor.v1.GoAway): void;
  error(e: GatewayError): void;
  /** Called exactly once. */
  end(e: SessionEnd): void;
  /** TLS: a session to offer on the next connection. */
  tlsSession?(session: Buffer): void;
}

export interface SessionOptions {
  /** Decompresses frames from the gateway (absent: a compressed frame is a violation). */
  compression?: ClientCompression;
  handshakeTimeoutMs: number;
  pongTimeoutMs: number;
  /** Used when WELCOME carries no heartbeat_ms. */
  heartbeatMs: number;
}

/** Session states, in order: a state >= CLOSING takes no more frames. */
const State = { HANDSHAKE: 0, READY: 1, CLOSING: 2, ENDED: 3 } as const;
type StateValue = (typeof State)[keyof typeof State];

/**
 * protobufjs decodes uint64 as a Long object whenever the `long` package is installed
 * (it is), whatever the generated typings say; seqs and times stay below 2^53, so the
 * client hands out plain numbers. Number(long) goes through its decimal toString.
 */
const U64_FIELDS = ['seq', 'expiresAtMs', 'sentAtMs', 'headSeq', 'serverTimeMs'] as const;
function u64ToNumber<T>(m: T): T {
  const o = m as Record<string, unknown>;
  for (const k of U64_FIELDS) if (o[k] !== undefined && typeof o[k] !== 'number') o[k] = Number(o[k]);
  return m;
}

const PING = encodeFrame(FrameType.PING, 0, 0);
/** How long a polite close may take before the socket is dropped. */
const CLOSE_GRACE_MS = 1_000;

export class Session {
  private readonly transport: Transport;
  private state: StateValue = State.HANDSHAKE;
  private readonly heartbeat: Heartbeat;
  private welcome: moor.v1.Welcome | null = null;
  private welcomedAt = 0;
  /** The handshake deadline, later the close grace. */
  private timer: NodeJS.Timeout | null;
  private missedPong = false;
  private localError: Error | undefined;
  private gatewayError: GatewayError | null = null;
  private goaway: { msg: moor.v1.GoAway; at: number } | null = null;
  private markEnded!: () => void;
  /** Settles when the connection is gone and end() was called. */
  readonly ended = new Promise<void>((resolve) => {
    this.markEnded = resolve;
  });

  constructor(
    readonly endpoint: Endpoint,
    hello: Uint8Array,
    private readonly h: SessionHandlers,
    private readonly o: SessionOptions,
    /** TLS: a session saved from an earlier connection, offered for resumption. */
    tlsSession: Buffer | null = null,
  ) {
    this.heartbeat = new Heartbeat(
      () => this.transport.send(PING),
      () => {
        this.missedPong = true;
        this.transport.destroy();
      },
      o.pongTimeoutMs,
    );
    // Opened before the timer is armed: a bad address throws here and leaves nothing running.
    this.transport = openTransport(
      endpoint,
      {
        open: () => this.transport.send(hello),
        frame: (f) => this.onFrame(f),
        close: (info) => this.onClose(info),
        tlsSession: (session) => this.h.tlsSession?.(session),
      },
      { tlsSession },
    );
    this.timer = setTimeout(() => {
      this.timer = null;
      this.localError = new MoorClientError('TIMEOUT', `no WELCOME within ${o.handshakeTimeoutMs} ms`);
      this.transport.destroy();
    }, o.handshakeTimeoutMs);
  }

  /** WELCOMEd and not closing: frames may be sent. */
  get ready(): boolean {
    return this.state === State.READY;
  }

  /** TLS: whether this connection resumed a saved session (null before the handshake, or without TLS). */
  get tlsResumed(): boolean | null {
    return this.transport.tlsResumed();
  }

  /** The largest payload the gateway accepts. */
  get maxFrame(): number {
    return this.welcome?.maxFrame || DEFAULT_MAX_FRAME;
  }

  send(type: number, payload?: Uint8Array, stream = 0): void {
    if (this.state === State.READY) this.transport.send(encodeFrame(type, 0, stream, payload));
  }

  /** Close politely (WebSocket close frame or TCP FIN); drop the socket if that stalls. */
  close(code = 1000): void {
    if (this.state >= State.CLOSING) return;
    this.state = State.CLOSING;
    this.heartbeat.stop();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.transport.destroy(), CLOSE_GRACE_MS);
    this.transport.end(code);
  }

  /** The gateway broke the protocol: say so and leave. */
  private violation(message: string): void {
    this.localError ??= new MoorClientError('BAD_FRAME', message);
    this.close(1002);
  }

  private decode<T>(f: Frame, codec: { decode(b: Uint8Array): T }): T | null {
    try {
      return codec.decode(f.payload);
    } catch (e) {
      this.violation(`undecodable ${FRAME_TYPE_NAMES[f.type]}: ${(e as Error).message}`);
      return null;
    }
  }

  private onFrame(f: Frame): void {
    if (this.state >= State.CLOSING) return;
    const name = FRAME_TYPE_NAMES[f.type];
    if ((f.flags & FLAG_CODEC_MASK) !== 0) {
      // Bounded by max_frame; a codec HELLO did not offer is the gateway's mistake.
      const plain = this.o.compression ? this.o.compression.inflate(f.flags, f.payload, this.maxFrame) : 'only identity was offered';
      if (typeof plain === 'string') return this.violation(`compressed ${name}: ${plain}`);
      f = { ...f, payload: plain };
    }
    if (f.type === FrameType.WELCOME) this.onWelcome(f);
    else if (f.type === FrameType.ERROR) this.onError(f);
    else if (f.type === FrameType.GOAWAY) this.onGoaway(f);
    else if (this.state !== State.READY) this.violation(`${name} before WELCOME`);
    else if (f.type === FrameType.PONG) this.onPong(f);
    else if (f.type === FrameType.PUSH) this.deliver(f, moor.v1.Push, (p) => this.h.push(p));
    else if (f.type === FrameType.SYNC_DONE) this.deliver(f, moor.v1.SyncDone, (d) => this.h.syncDone(d));
    else if (f.type !== FrameType.RESPONSE) this.violation(`${name} is not sent by a gateway`);
    else if (f.stream === 0) this.violation('RESPONSE on stream 0');
    else this.deliver(f, moor.v1.Response, (r) => this.h.response(f.stream, r));
  }

  /** Decode, then hand over outside the try: a throwing listener is not the gateway's fault. */
  private deliver<T>(f: Frame, codec: { decode(b: Uint8Array): T }, to: (m: T) => void): void {
    const m = this.decode(f, codec);
    if (m !== null) to(u64ToNumber(m));
  }

  private onWelcome(f: Frame): void {
    if (this.state !== State.HANDSHAKE) {
      this.violation('a second WELCOME');
      return;
    }
    this.deliver(f, moor.v1.Welcome, (w) => {
      this.state = State.READY;
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      this.welcome = w;
      this.welcomedAt = performance.now();
      this.heartbeat.start(w.heartbeatMs || this.o.heartbeatMs);
      this.h.welcome(w);
    });
  }

  private onError(f: Frame): void {
    this.deliver(f, moor.v1.Error, (e) => {
      this.gatewayError = new GatewayError(e);
      // The gateway closes right after ERROR; closing from here too avoids waiting on it.
      this.close();
      this.h.error(this.gatewayError);
    });
  }

  private onGoaway(f: Frame): void {
    this.deliver(f, moor.v1.GoAway, (g) => {
      this.goaway = { msg: g, at: performance.now() };
      this.h.goaway(g);
    });
  }

  private onPong(f: Frame): void {
    if (f.payload.length === 0) this.heartbeat.pong();
    else this.deliver(f, moor.v1.HeartbeatAdvice, (a) => this.heartbeat.pong(a.heartbeatMs));
  }

  private onClose(info: CloseInfo): void {
    // Closing by choice (ours or after ERROR/violation) is not a dead network.
    const chosen = this.state === State.CLOSING && !this.missedPong;
    this.state = State.ENDED;
    this.heartbeat.stop();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.h.end({
      info: { ...info, error: this.localError ?? info.error },
      welcome: this.welcome,
      livedMs: this.welcome === null ? 0 : performance.now() - this.welcomedAt,
      intervalMs: this.heartbeat.intervalMs,
      // Only a session has a heartbeat to report on; a failed attempt is not a NAT timeout.
      timedOut: this.welcome !== null && (this.missedPong || (info.abnormal && !chosen && this.localError === undefined)),
      error: this.gatewayError,
      goaway: this.goaway,
    });
    this.markEnded();
  }
}
