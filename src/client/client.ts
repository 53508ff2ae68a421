/**
 * MoorClient: a Node device speaking moor/1 (shared/protocol.md) over WebSocket or raw
 * TCP. It keeps one session up (reconnecting as the gateway tells it, else with capped
 * exponential backoff and full jitter), delivers each durable push once, ACKs in batches,
 * and correlates requests. Roles live beside it: session.ts (one connection),
 * tracker.ts (seqs and ACKs), reconnect.ts (where and when next), requests.ts.
 */
import { EventEmitter } from 'node:events';
import { FrameType } from '../protocol/constants';
import { encodeFrame } from '../protocol/encoder';
import { moor } from '../protocol/generated/moor';
import { Backoff } from './backoff';
import { describeEndpoint, type Endpoint, endpointFrom } from './endpoint';
import { MoorClientError, typedError } from './errors';
import { type MoorClientOptions, type ResolvedOptions, resolveOptions } from './options';
import { planReconnect } from './reconnect';
import { RequestTable } from './requests';
import { Session, type SessionEnd } from './session';
import { SeqTracker } from './tracker';

export type ClientState = 'idle' | 'connecting' | 'ready' | 'waiting' | 'closing';

export interface ClientCloseInfo {
  /** WebSocket close code, when there was one. */
  code?: number;
  reason?: string;
  error?: Error;
  /** Died without a close or missed a PONG (reported next time as previous.timed_out). */
  timedOut: boolean;
  welcomed: boolean;
  willReconnect: boolean;
}

export interface ReconnectInfo {
  /** Failed attempts since the last WELCOME. */
  attempt: number;
  delayMs: number;
  /** Where the next attempt goes. */
  endpoint: string;
}

export interface MoorClientEvents {
  welcome: [welcome: moor.v1.Welcome];
  push: [push: moor.v1.Push];
  /** ERROR frames (GatewayError), and local failures such as a failing saveLastSeq. */
  error: [error: Error];
  goaway: [goaway: moor.v1.GoAway];
  close: [info: ClientCloseInfo];
  reconnecting: [info: ReconnectInfo];
}

/** Pushes per SYNC page when closing a hole; the gateway caps it to its own page size. */
const GAP_SYNC_LIMIT = 1000;
const EMPTY = new Uint8Array(0);

interface Waiter<T> {
  resolve(v: T): void;
  reject(e: Error): void;
  timer?: NodeJS.Timeout;
}

export class MoorClient extends EventEmitter<MoorClientEvents> {
  private readonly o: ResolvedOptions;
  private readonly backoff: Backoff;
  private tracker = new SeqTracker();
  private loaded = false;
  private savedSeq = 0;
  private stateName: ClientState = 'idle';
  /** Bumped by close(): async steps of an older run see it and stop. */
  private run = 0;
  private session: Session | null = null;
  private current: moor.v1.Welcome | null = null;
  private previous: moor.v1.HeartbeatReport.$Properties | null = null;
  private preferred: Endpoint | null = null;
  /**
   * TLS: the newest session the gateway gave, offered on every connect. Raw TCP tickets
   * resume on any worker (shared keys); WebSocket ones only on the worker that made
   * them, which is where WELCOME.resume_endpoint points and where reconnects go first.
   */
  private tlsSession: Buffer | null = null;
  private ready: (Waiter<moor.v1.Welcome> & { promise: Promise<moor.v1.Welcome> }) | null = null;
  private closing: Promise<void> = Promise.resolve();
  private retryTimer: NodeJS.Timeout | null = null;
  private goawayTimer: NodeJS.Timeout | null = null;
  private ackTimer: NodeJS.Timeout | null = null;
  private gapTimer: NodeJS.Timeout | null = null;
  private lastDurableAt = 0;
  private flushing = false;
  private flushAgain = false;
  private flushDone: Promise<void> = Promise.resolve();
  private readonly requests = new RequestTable();
  private syncWaiter: Waiter<moor.v1.SyncDone> | null = null;
  private syncTail: Promise<unknown> = Promise.resolve();
  /** SYNC_DONEs still owed to syncs that timed out: they must not settle a later one. */
  private staleSyncDones = 0;
  /** autoAck off: durable pushes handed to the app this session and not yet ack()ed. */
  private readonly inFlight = new Set<number>();

  constructor(options: MoorClientOptions) {
    super();
    this.o = resolveOptions(options);
    this.backoff = new Backoff({ baseMs: this.o.reconnect.baseMs, maxMs: this.o.reconnect.maxMs, random: this.o.random });
  }

  get state(): ClientState {
    return this.stateName;
  }

  /** The sync key: every durable seq at or below it is processed. */
  get lastSeq(): number {
    return this.tracker.lastSeq;
  }

  /** TLS: whether the current connection resumed a saved session (null without one, or without TLS). */
  get tlsResumed(): boolean | null {
    return this.session?.tlsResumed ?? null;
  }

  /** Forget the saved TLS session (the next handshake is a full one). */
  forgetTlsSession(): void {
    this.tlsSession = null;
  }

  /** The WELCOME of the current session, or null. */
  get welcome(): moor.v1.Welcome | null {
    return this.current;
  }

  /**
   * Start (if idle) and resolve on the next WELCOME. Transient failures are retried, not
   * reported here; rejects on a terminal ERROR (AUTH_FAILED, REPLACED), with reconnect
   * disabled, or on close().
   */
  connect(): Promise<moor.v1.Welcome> {
    if (this.stateName === 'ready' && this.current !== null) return Promise.resolve(this.current);
    if (this.stateName === 'closing') return this.closing.then(() => this.connect());
    if (this.ready === null) {
      let waiter!: Waiter<moor.v1.Welcome>;
      const promise = new Promise<moor.v1.Welcome>((resolve, reject) => {
        waiter = { resolve, reject };
      });
      this.ready = { ...waiter, promise };
    }
    const { promise } = this.ready;
    if (this.stateName === 'idle') {
      this.backoff.reset();
      this.preferred = null;
      void this.attempt();
    }
    return promise;
  }

  /** Stop everything: pending calls fail with CLOSED, processed pushes are ACKed, no timer is left. */
  close(): Promise<void> {
    if (this.stateName === 'idle' || this.stateName === 'closing') return this.closing;
    this.stateName = 'closing';
    this.run++;
    this.clearTimers();
    const closed = new MoorClientError('CLOSED', 'client closed');
    this.settleReady(closed);
    this.requests.failAll(closed);
    this.failSync(closed);
    this.closing = (async () => {
      await this.flushAck();
      const s = this.session;
      if (s !== null) {
        s.close();
        await s.ended;
      }
      this.stateName = 'idle';
    })();
    return this.closing;
  }

  /** REQUEST on a fresh stream id; resolves with the RESPONSE (any status). */
  request(method: string, body: Uint8Array | string = EMPTY, meta: Record<string, string> = {}, opts: { timeoutMs?: number } = {}): Promise<moor.v1.Response> {
    const s = this.session;
    if (s === null || !s.ready) return Promise.reject(new MoorClientError('NOT_CONNECTED', `request ${method}: not connected`));
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    const payload = moor.v1.Request.encode({ method, body: bytes, meta }).finish();
    if (payload.length > s.maxFrame) {
      return Promise.reject(new MoorClientError('TOO_LARGE', `request ${method}: ${payload.length} bytes over max_frame ${s.maxFrame}`));
    }
    const { stream, response } = this.requests.start(method, opts.timeoutMs ?? this.o.requestTimeoutMs);
    s.send(FrameType.REQUEST, payload, stream);
    return response;
  }

  /**
   * SYNC: the gateway sends the durable pushes after `afterSeq` (default: lastSeq, read
   * when the SYNC goes out) then SYNC_DONE. SYNC_DONE carries no id, so syncs run one at a time.
   */
  sync(afterSeq?: number, limit = GAP_SYNC_LIMIT, opts: { timeoutMs?: number } = {}): Promise<moor.v1.SyncDone> {
    const run = () => this.runSync(afterSeq ?? this.tracker.lastSeq, limit, opts.timeoutMs ?? this.o.requestTimeoutMs);
    const p = this.syncTail.then(run, run);
    this.syncTail = p.catch(() => undefined);
    return p;
  }

  /** With autoAck off: the app has processed durable push `seq`. */
  ack(seq: number): void {
    if (!Number.isSafeInteger(seq) || seq <= 0) throw new RangeError(`ack: a durable seq is a positive integer, got ${seq}`);
    this.inFlight.delete(seq);
    this.tracker.process(seq);
    this.scheduleAck();
    this.armGap();
  }

  // --- connecting ---

  private async attempt(): Promise<void> {
    const run = this.run;
    this.stateName = 'connecting';
    let token: string;
    try {
      if (!this.loaded) {
        const seq = this.o.loadLastSeq === null ? this.tracker.lastSeq : await this.o.loadLastSeq();
        if (run !== this.run) return;
        if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`loadLastSeq returned ${seq}, not a seq`);
        this.tracker = new SeqTracker(seq);
        this.savedSeq = seq;
        this.loaded = true;
      }
      token = await this.o.token();
    } catch (e) {
      if (run !== this.run) return;
      // A failing token source or store is retried like a failed connection.
      this.emitError(typedError(e, 'CALLBACK', this.loaded ? 'token() failed' : 'loadLastSeq() failed'));
      this.retry(this.backoff.next());
      return;
    }
    if (run !== this.run) return;
    const ep = this.preferred ?? this.o.home;
    const usedPreferred = this.preferred !== null;
    this.preferred = null;
    const hello = moor.v1.Hello.encode({
      deviceId: this.o.deviceId,
      token,
      client: this.o.client,
      network: this.o.network,
      codecs: this.o.codecs,
      dictIds: this.o.compression.dictIds(),
      // The gateway takes last_seq as an ACK: with a store, only what is saved (the replay
      // of what was processed but not saved yet is dropped by the tracker).
      lastSeq: this.o.saveLastSeq === null ? this.tracker.lastSeq : Math.min(this.savedSeq, this.tracker.lastSeq),
      previous: this.previous,
      foreground: this.o.foreground,
    }).finish();
    let s: Session;
    try {
      s = new Session(
        ep,
        encodeFrame(FrameType.HELLO, 0, 0, hello),
        {
          welcome: (w) => this.onWelcome(w),
          push: (p) => this.onPush(p),
          response: (stream, r) => this.requests.settle(stream, r),
          syncDone: (d) => this.onSyncDone(d),
          goaway: (g) => this.onGoaway(s, g),
          error: (e) => this.emitError(typedError(e, 'NETWORK', 'connection')),
          end: (end) => this.onEnd(s, end, usedPreferred),
          tlsSession: (session) => {
            this.tlsSession = session;
          },
        },
        this.o,
        this.tlsSession,
      );
    } catch (e) {
      // An address the socket layer refuses outright (e.g. a malformed redirect): try home next.
      this.emitError(typedError(e, 'NETWORK', 'connect'));
      this.retry(this.backoff.next());
      return;
    }
    this.session = s;
  }

  private retry(delayMs: number): void {
    const run = this.run;
    this.stateName = 'waiting';
    this.emit('reconnecting', { attempt: this.backoff.attempts, delayMs, endpoint: describeEndpoint(this.preferred ?? this.o.home) });
    if (run !== this.run) return; // a listener closed the client
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.attempt();
    }, delayMs);
  }

  private onWelcome(w: moor.v1.Welcome): void {
    this.stateName = 'ready';
    this.current = w;
    this.backoff.reset();
    this.emit('welcome', w);
    this.settleReady(null, w);
    // A newer dictionary than we hold: fetched now, offered from the next session on.
    this.o.compression.welcome(w.dictUrl, (e) => this.emitError(e));
    // ACKs owed from the last session, and holes it left, are this session's work now.
    if (this.tracker.dirty) this.scheduleAck();
    this.armGap();
  }

  private onGoaway(s: Session, g: moor.v1.GoAway): void {
    this.emit('goaway', g);
    // Leave at the time the gateway chose, if it has not closed by then.
    if (g.reconnectAfterMs > 0 && this.goawayTimer === null && this.session === s) {
      this.goawayTimer = setTimeout(() => {
        this.goawayTimer = null;
        if (this.session === s) s.close();
      }, g.reconnectAfterMs);
    }
  }

  private onEnd(s: Session, end: SessionEnd, usedPreferred: boolean): void {
    if (this.session !== s) return;
    this.session = null;
    this.current = null;
    this.clearTimers();
    const gone = new MoorClientError(this.stateName === 'closing' ? 'CLOSED' : 'DISCONNECTED', 'session ended');
    this.requests.failAll(gone);
    this.failSync(gone);
    this.inFlight.clear();
    this.staleSyncDones = 0;
    if (end.welcome !== null) {
      // lived_ms is a uint32: a session past 49 days reports the maximum.
      this.previous = { intervalMs: end.intervalMs, timedOut: end.timedOut, livedMs: Math.min(Math.round(end.livedMs), 0xffffffff) };
    }
    const raw = end.error ?? end.info.error;
    const info = { code: end.info.code, reason: end.info.reason, error: raw ? typedError(raw, 'NETWORK', 'connection') : undefined, timedOut: end.timedOut, welcomed: end.welcome !== null };
    if (this.stateName === 'closing') {
      this.emit('close', { ...info, willReconnect: false });
      return;
    }
    const plan = planReconnect(
      {
        welcomed: end.welcome !== null,
        usedPreferred,
        error: end.error,
        goaway: end.goaway,
        resumeEndpoint: end.welcome?.resumeEndpoint ?? '',
        upgradeRetryAfterMs: end.info.status !== undefined ? end.info.retryAfterMs : undefined,
        now: performance.now(),
      },
      this.o.reconnect,
      this.backoff,
    );
    const run = this.run;
    this.emit('close', { ...info, willReconnect: !plan.stop });
    if (run !== this.run) return;
    if (plan.stop) {
      this.stateName = 'idle';
      this.settleReady(info.error ?? new MoorClientError('DISCONNECTED', `not reconnecting: ${plan.why}`));
      return;
    }
    this.preferred = plan.target === null ? null : this.endpointOrNull(plan.target);
    this.retry(plan.delayMs);
  }

  private endpointOrNull(target: string): Endpoint | null {
    try {
      return endpointFrom(target, this.o.home);
    } catch (e) {
      this.emitError(e as Error);
      return null;
    }
  }

  // --- pushes and ACKs ---

  private onPush(p: moor.v1.Push): void {
    if (p.seq === 0) {
      this.emit('push', p); // transient: never stored, never ACKed
      return;
    }
    this.tracker.observe(p.seq);
    this.lastDurableAt = performance.now();
    if (this.tracker.has(p.seq)) {
      this.tracker.process(p.seq); // a redelivery: ACK it again, do not deliver it again
      this.scheduleAck();
      return;
    }
    if (!this.o.autoAck) {
      if (!this.inFlight.has(p.seq)) {
        this.inFlight.add(p.seq);
        this.emit('push', p);
      }
      return;
    }
    this.emit('push', p);
    this.tracker.process(p.seq);
    this.scheduleAck();
    this.armGap();
  }

  private scheduleAck(): void {
    if (this.stateName === 'closing') return; // close() flushes once itself
    if (this.tracker.unacked >= this.o.ackBatch) {
      void this.flushAck();
      return;
    }
    this.ackTimer ??= setTimeout(() => {
      this.ackTimer = null;
      void this.flushAck();
    }, this.o.ackDelayMs);
  }

  private flushAck(): Promise<void> {
    if (this.ackTimer !== null) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    if (this.flushing) {
      this.flushAgain = true;
      return this.flushDone;
    }
    this.flushDone = this.doFlush();
    return this.flushDone;
  }

  /** Persist the sync key, then ACK: the gateway forgets a push only once it is recorded here. */
  private async doFlush(): Promise<void> {
    this.flushing = true;
    try {
      for (;;) {
        this.flushAgain = false;
        const mark = this.tracker.lastSeq;
        const save = this.o.saveLastSeq;
        if (save !== null && mark !== this.savedSeq) {
          await save(mark);
          this.savedSeq = mark;
          continue; // more may have been processed meanwhile
        }
        const s = this.session;
        const ack = s?.ready ? this.tracker.takeAck() : null; // else it waits for the next session
        if (ack !== null) s?.send(FrameType.ACK, moor.v1.Ack.encode(ack).finish());
        if (!this.flushAgain) return;
      }
    } catch (e) {
      this.emitError(typedError(e, 'CALLBACK', 'saveLastSeq() failed'));
    } finally {
      this.flushing = false;
    }
  }

  /** A hole below processed seqs that no push fills for gapSyncMs is closed with a SYNC. */
  private armGap(): void {
    if (this.gapTimer !== null || this.stateName !== 'ready' || !this.tracker.hasGap) return;
    this.gapTimer = setTimeout(() => this.onGapTimer(), this.o.gapSyncMs);
  }

  private onGapTimer(): void {
    this.gapTimer = null;
    if (this.stateName !== 'ready' || !this.tracker.hasGap) return;
    // Wait for quiet: a replay still streaming in may fill the hole without a SYNC.
    const quiet = performance.now() - this.lastDurableAt;
    if (quiet < this.o.gapSyncMs) {
      this.gapTimer = setTimeout(() => this.onGapTimer(), this.o.gapSyncMs - quiet);
      return;
    }
    const again = () => this.armGap();
    this.sync().then(again, again);
  }

  private runSync(afterSeq: number, limit: number, timeoutMs: number): Promise<moor.v1.SyncDone> {
    const s = this.session;
    if (s === null || !s.ready) return Promise.reject(new MoorClientError('NOT_CONNECTED', 'sync: not connected'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.syncWaiter = null;
        this.staleSyncDones++;
        this.tracker.cancelSync();
        reject(new MoorClientError('TIMEOUT', `sync got no SYNC_DONE in ${timeoutMs} ms`));
      }, timeoutMs);
      this.syncWaiter = { resolve, reject, timer };
      this.tracker.openSync(afterSeq);
      s.send(FrameType.SYNC, moor.v1.SyncRequest.encode({ afterSeq, limit }).finish());
    });
  }

  private onSyncDone(d: moor.v1.SyncDone): void {
    if (this.staleSyncDones > 0) {
      this.staleSyncDones--;
      return;
    }
    const w = this.syncWaiter;
    if (w === null) return; // unasked for: nothing to settle
    this.syncWaiter = null;
    clearTimeout(w.timer);
    this.tracker.closeSync(d.headSeq, d.more);
    if (this.tracker.dirty) this.scheduleAck();
    w.resolve(d);
  }

  private failSync(e: Error): void {
    const w = this.syncWaiter;
    if (w === null) return;
    this.syncWaiter = null;
    clearTimeout(w.timer);
    this.tracker.cancelSync();
    w.reject(e);
  }

  // --- small helpers ---

  private settleReady(e: Error | null, w?: moor.v1.Welcome): void {
    const r = this.ready;
    if (r === null) return;
    this.ready = null;
    if (e === null) r.resolve(w as moor.v1.Welcome);
    else r.reject(e);
  }

  private clearTimers(): void {
    for (const t of [this.retryTimer, this.goawayTimer, this.ackTimer, this.gapTimer]) if (t !== null) clearTimeout(t);
    this.retryTimer = this.goawayTimer = this.ackTimer = this.gapTimer = null;
  }

  /** An unheard 'error' would throw from a socket callback and crash the process over a handled condition. */
  private emitError(e: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', e);
  }
}
