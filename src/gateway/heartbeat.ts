/**
 * The gateway's side of the smart heartbeat (src/heartbeat/policy.ts): advice at HELLO,
 * evidence from HELLO.previous, from PINGs and from closes, PONG + HeartbeatAdvice when
 * a session's advice changed, and the class table kept in the store. No timer per
 * session: a session learns of a new interval on its next PING.
 */
import { onConfigReload } from '../cluster/live';
import type { Config } from '../config/types';
import { KIND_LABELS } from '../heartbeat/kinds';
import { HeartbeatPolicy, policyOptions } from '../heartbeat/policy';
import { TableSync } from '../heartbeat/sync';
import type { moor } from '../protocol/generated/moor';
import type { DeviceRecord } from '../store/store';
import { PONG_EMPTY, pongAdviceFrame } from './frames';
import type { Gateway } from './gateway';
import type { Session } from './session';

/** Distinct advice frames kept; intervals are few (one or two per class). */
const MAX_ADVICE_FRAMES = 256;

export class GatewayHeartbeat {
  readonly policy: HeartbeatPolicy;
  private readonly sync: TableSync;
  /** PONG + advice by interval: a class change sends the same bytes to many sessions. */
  private readonly adviceFrames = new Map<number, Buffer>();
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly gw: Gateway) {
    const { config, metrics, workerIndex } = gw.deps;
    const log = gw.deps.log.child({ component: 'heartbeat' });
    this.policy = new HeartbeatPolicy(
      policyOptions(config.heartbeat),
      Date.now,
      Math.random,
      {
        probe: (ok) => metrics.heartbeatProbe(ok),
        change: (what, kind, carrier, fromMs, toMs) => {
          metrics.heartbeatChange(what);
          log.info({ kind: KIND_LABELS[kind], carrier, from_ms: fromMs, to_ms: toMs }, `heartbeat class ${what}`);
        },
      },
      `${config.node.id}.${workerIndex}`,
    );
    this.sync = new TableSync(this.policy, gw.deps.store, log, config.heartbeat.sync_ms);
  }

  /** Loads the class table (learning survives restarts) and follows SIGHUP reloads. */
  start(): Promise<void> {
    this.unsubscribe = onConfigReload((changed, config) => {
      if (changed.some((k) => k.startsWith('heartbeat.'))) this.configure(config.heartbeat);
    });
    return this.sync.start();
  }

  /** Stops syncing; what was learnt since the last sync (at most heartbeat.sync_ms) is lost. */
  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.sync.stop(false);
  }

  /** Live reload of the heartbeat.* keys (max_classes and sync_ms need a restart). */
  configure(h: Config['heartbeat']): void {
    this.policy.configure(policyOptions(h));
  }

  /**
   * HELLO: the previous session's report first, for the network it ran on (`prev`, the
   * device record read before this session replaced it), then this session's advice.
   */
  hello(s: Session, hello: moor.v1.IHello, prev: DeviceRecord | null, nowMs: number): void {
    const p = this.policy;
    const kind = hello.network?.kind ?? 0;
    const carrier = hello.network?.carrier ?? '';
    const r = hello.previous;
    if (r?.intervalMs) {
      const livedMs = r.livedMs ?? 0;
      const pk = prev ? prev.network.kind : kind;
      const pc = prev ? prev.network.carrier : carrier;
      const downMs = prev ? Math.max(0, nowMs - prev.connectedAtMs - livedMs) : -1;
      p.report(pk, pc, { intervalMs: r.intervalMs, timedOut: r.timedOut === true, livedMs }, s.deviceId, pk === kind && pc === carrier, downMs);
    }
    s.hb = p.open(kind, carrier, hello.foreground === true);
    // `| 0`: intervalOf reads a Float64Array; a double stored even once makes the field a 16-byte box on every session.
    s.heartbeatMs = p.intervalOf(s.hb) | 0;
    this.gw.deps.metrics.heartbeatAdvised(p.kindOf(s.hb), s.heartbeatMs);
  }

  /** The PONG for a PING that came after `quietMs` of silence: with advice when the interval changed. */
  pong(s: Session, quietMs: number): Buffer {
    if (s.hb === 0) return PONG_EMPTY;
    const p = this.policy;
    // lastSeen is this PING's arrival: the frame handler just read the clock.
    s.hb = p.ping(s.hb, quietMs, s.heartbeatMs, s.deviceId, s.lastSeen);
    const ms = p.intervalOf(s.hb) | 0;
    if (ms === s.heartbeatMs) return PONG_EMPTY;
    const shorter = ms < s.heartbeatMs;
    s.heartbeatMs = ms;
    // The wheel re-checks from lastSeen when a deadline fires, which is enough for a
    // longer interval; a shorter one must bring the scheduled deadline forward.
    if (shorter) this.gw.wheel.schedule(s, s.lastSeen + this.gw.idleTimeoutMs(s));
    this.gw.deps.metrics.heartbeatAdvised(p.kindOf(s.hb), ms);
    let frame = this.adviceFrames.get(ms);
    if (!frame) {
      if (this.adviceFrames.size >= MAX_ADVICE_FRAMES) this.adviceFrames.clear();
      this.adviceFrames.set(ms, (frame = pongAdviceFrame(ms)));
    }
    return frame;
  }

  /** The session is gone: a close that looks like a NAT timeout is evidence (and counted). */
  closed(s: Session, nowMs: number): void {
    const tag = s.hb;
    if (tag === 0) return;
    s.hb = 0;
    if (this.policy.closed(tag, nowMs - s.lastSeen, s.heartbeatMs, s.deviceId)) this.gw.deps.metrics.natTimeoutSuspected(this.policy.kindOf(tag));
  }
}
