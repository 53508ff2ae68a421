/**
 * Flow control of one worker (README "Flow control"): the accept rate, per-session
 * inbound limits, per-(unit, API key) push pacing, priority lanes for live delivery,
 * and the slow-consumer policy. The gateway calls in at a handful of points (accept,
 * every device frame, every send that did not go straight out, every live delivery,
 * every push from the API); the policies themselves are the clock-injected modules
 * beside this one.
 */
import type { PushCommand } from '../api/backend';
import { ApiError } from '../api/errors';
import { replay } from '../gateway/delivery';
import type { Gateway } from '../gateway/gateway';
import { type Session, SessionState } from '../gateway/session';
import type { PushHeader } from '../mesh/ops';
import { ErrorCode, MAX_HEADER_BYTES } from '../protocol/constants';
import { AcceptLimiter, admitInbound, inboundRetryMs, inboundSecond, MIN_RETRY_MS } from './bucket';
import { ALL, BroadcastJob, DeviceJob, FanoutJob, type JobGateway } from './jobs';
import { LaneScheduler, laneOfFanout, laneOfPriority } from './lanes';
import { type FlowMetrics, flowMetrics } from './metrics';
import { PushPacer, QueueFullError, type Ticket } from './pacer';
import { SlowTracker, SWEEP_MS } from './slow';
import { UnitTable } from './units';

/** What a paced durable push keeps in memory besides its device ids (the body is in the inbox). */
const QUEUED_HEADER_BYTES = 128;

export class Flow {
  readonly accept: AcceptLimiter;
  readonly lanes: LaneScheduler;
  readonly slow: SlowTracker;
  readonly units: UnitTable;
  readonly pacer: PushPacer;
  private readonly metrics: FlowMetrics = flowMetrics();
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly jobGw: JobGateway;

  constructor(private readonly gw: Gateway) {
    const config = gw.deps.config;
    this.accept = new AcceptLimiter(() => config.limits, Date.now());
    this.lanes = new LaneScheduler(() => config.lanes, Date.now, setImmediate, {
      started: (lane, ms) => this.metrics.laneStarted(lane, ms),
      sent: (lane, n) => this.metrics.laneSent(lane, n),
    });
    this.slow = new SlowTracker({
      sessions: () => gw.hub.byDevice.values(),
      buffered: (s) => s.transport.bufferedAmount(s),
      closeSlow: (s, b, ms) => this.closeSlow(s, b, ms),
      limits: () => config.limits,
    });
    this.units = new UnitTable(config);
    this.pacer = new PushPacer(
      { now: Date.now, setTimer: (fn, ms) => setTimeout(fn, ms), clearTimer: (t) => clearTimeout(t as NodeJS.Timeout) },
      {
        queued: (unit, d) => this.metrics.queued.inc({ unit }, d),
        released: (unit, ms) => this.metrics.queueWait.observe({ unit }, ms / 1000),
      },
    );
    this.jobGw = {
      publish: (topic, frame) => gw.publish(topic, frame),
      send: (s, type, frame) => gw.send(s, type, frame),
      tcpSubscribers: (topic) => gw.hub.tcpSubscribers(topic),
      sessions: () => gw.hub.byDevice.values(),
      broadcastKey: (s) => gw.compression.topic(ALL, s),
    };
  }

  start(): void {
    this.sweepTimer = setInterval(() => {
      this.slow.sweep(Date.now());
      this.metrics.slowSessions.set(this.slow.size);
      this.metrics.slowBuffered.set(this.slow.buffered);
    }, SWEEP_MS);
    this.sweepTimer.unref();
  }

  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    this.pacer.stop();
  }

  // ---- devices ----

  /** A new connection (WebSocket upgrade or TCP accept): 0 to take it, else the retry delay (ms) to refuse it with. */
  admitConnection(): number {
    const retryMs = this.accept.admit(Date.now());
    if (retryMs > 0) this.metrics.refused.inc({ reason: 'accept' });
    return retryMs;
  }

  /** Every device frame. False after failing the session with RATE_LIMITED. */
  inbound(s: Session, bytes: number, now: number): boolean {
    const l = this.gw.deps.config.limits;
    // The byte burst is never below one maximum frame, or a legal frame could never pass.
    const bytesBurst = Math.max(l.in_bytes_burst, l.max_frame + MAX_HEADER_BYTES);
    if (admitInbound(s, bytes, inboundSecond(now), l, bytesBurst)) return true;
    this.metrics.refused.inc({ reason: 'inbound' });
    const out = { frames: s.inFrames < 1, bytes: s.inBytes < bytes };
    this.gw.fail(s, ErrorCode.RATE_LIMITED, `over the inbound limit: ${l.in_frames_per_s} frames/s and ${l.in_bytes_per_s} bytes/s, bursts of ${l.in_frames_burst} frames and ${bytesBurst} bytes`, inboundRetryMs(l, out, bytesBurst));
    return false;
  }

  /** A send to `s` did not go straight out (backpressure or dropped). */
  sendBlocked(s: Session): void {
    this.slow.mark(s, Date.now());
  }

  /**
   * For live delivery of durable push `seq` to `s`: true when it is left to the inbox,
   * because it is a paced push's notice (`inbox`) or because the session is too far
   * behind to buffer more. The push then comes through a replay (right away for a
   * notice, once the connection drains for a slow session).
   */
  holdDurable(s: Session, seq: number, inbox: boolean): boolean {
    if (!inbox && s.transport.bufferedAmount(s) <= this.gw.deps.config.limits.max_buffered / 2) return false;
    if (seq <= s.sentSeq) return true;
    if (seq > s.liveMissed) s.liveMissed = seq;
    if (!inbox) {
      this.metrics.deferred.inc();
      this.slow.mark(s, Date.now());
    }
    if (s.replaying > 0) return true;
    if (inbox) {
      replay(this.gw, s, s.sentSeq);
      return true;
    }
    // Counted as a replay so further live durable pushes only raise liveMissed meanwhile.
    s.replaying++;
    s.waiter = () => {
      s.replaying--;
      if (s.state === SessionState.OPEN) replay(this.gw, s, s.sentSeq);
    };
    return true;
  }

  private closeSlow(s: Session, buffered: number, slowMs: number): void {
    this.metrics.refused.inc({ reason: 'slow' });
    this.gw.deps.log.info({ device: s.deviceId, buffered, slow_ms: slowMs }, 'slow consumer closed');
    const retryMs = MIN_RETRY_MS + Math.floor(Math.random() * 4 * MIN_RETRY_MS);
    this.gw.fail(s, ErrorCode.OVERLOADED, `slow consumer: ${buffered} bytes unread for ${slowMs} ms`, retryMs);
  }

  /** Live delivery of a routed push, in the lane of its priority; `deliver` gets the devices a slice at a time. */
  deliver(h: PushHeader, devs: Array<[string, number]>, deliver: (devs: Array<[string, number]>) => void): void {
    this.lanes.add(laneOfPriority(h.priority), new DeviceJob(devs, deliver));
  }

  /** A fan-out of `frame` to this worker's subscribers of `topic` (a topic key); resolves with the sessions reached. */
  fanout(priority: number, topic: string, frame: Uint8Array): Promise<number> {
    return new Promise((resolve) => this.lanes.add(laneOfFanout(priority), new FanoutJob(this.jobGw, topic, frame, resolve)));
  }

  /** A broadcast to every session of this worker: `frames` by broadcast key (plain and codec variants); resolves with the sessions reached. */
  broadcast(priority: number, frames: ReadonlyMap<string, Uint8Array>): Promise<number> {
    return new Promise((resolve) => this.lanes.add(laneOfFanout(priority), new BroadcastJob(this.jobGw, frames, resolve)));
  }

  // ---- the API ----

  /**
   * Before a push is stored: null to route it at once, or a Ticket to queue it with
   * (queuePush once stored, cancelPush if storing failed). Throws 429 when the queue
   * of the push's unit and key is full.
   */
  admitPush(cmd: PushCommand): Ticket | null {
    const unit = this.units.classify(cmd.apiKey, cmd.target);
    const t = cmd.target;
    const cost = t.kind === 'device' ? t.deviceIds.length : 1;
    const ids = t.kind === 'device' ? t.deviceIds.reduce((n, d) => n + 2 * d.length + 16, 0) : 0;
    const bytes = QUEUED_HEADER_BYTES + ids + (cmd.durable ? 0 : cmd.body.length);
    try {
      const ticket = this.pacer.admit(unit, cmd.apiKey, laneOfPriority(cmd.priority), cost, bytes);
      this.metrics.pushes.inc({ unit: unit.name, result: ticket ? 'queued' : 'passed' });
      return ticket;
    } catch (err) {
      if (!(err instanceof QueueFullError)) throw err;
      this.metrics.pushes.inc({ unit: unit.name, result: 'rejected' });
      throw new ApiError('RATE_LIMITED', err.message, { retryAfterS: Math.ceil(err.retryAfterMs / 1000) });
    }
  }

  /**
   * Before a push's body is read: a 429 when every queue the key's pushes could land in
   * is full, so a flooding key costs the worker no body, JSON or validation for what it
   * would refuse anyway; else null (admitPush decides once the push is known).
   */
  gatePush(apiKey: string): ApiError | null {
    let refusal: QueueFullError | null = null;
    let unit = '';
    for (const u of this.units.reachable(apiKey)) {
      const r = this.pacer.refusal(u, apiKey);
      if (r === null) return null;
      if (refusal === null || r.retryAfterMs < refusal.retryAfterMs) [refusal, unit] = [r, u.name];
    }
    if (refusal === null) return null;
    this.metrics.pushes.inc({ unit, result: 'rejected' });
    return new ApiError('RATE_LIMITED', refusal.message, { retryAfterS: Math.ceil(refusal.retryAfterMs / 1000) });
  }

  /** A durable push from the API was stored after `ms` (moor_push_store_seconds). */
  stored(priority: number, ms: number): void {
    this.metrics.stored(laneOfPriority(priority), ms);
  }

  queuePush(t: Ticket, route: () => Promise<unknown>): void {
    this.pacer.enqueue(t, () => {
      route().catch((err) => this.gw.deps.log.warn({ err }, 'a paced push could not be routed'));
    });
  }

  cancelPush(t: Ticket | null): void {
    this.pacer.cancel(t);
  }

  /** A rejection handler that frees `t`'s slot and rethrows (the push was not stored). */
  cancelling(t: Ticket | null): (err: unknown) => never {
    return (err) => {
      this.pacer.cancel(t);
      throw err;
    };
  }
}
