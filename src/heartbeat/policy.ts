/**
 * Smart heartbeat: how long a device may stay silent, learned per network class.
 * Pure: no I/O, no timers; the clock and the random source are injected.
 *
 * A class is (network kind, carrier) of HELLO.network. An empty carrier, or one the
 * table has no room for, uses its kind's class; a new carrier starts from its kind's
 * interval. An unknown kind gets heartbeat.default_ms and never learns (it would mix
 * every network's NAT into one class).
 *
 * Advice (WELCOME.heartbeat_ms; later PONG + HeartbeatAdvice when it changes): a
 * foreground HELLO gets foreground_ms; a background session the class's proven interval
 * P (P - margin once settled), or, for probe_share of new sessions and at most
 * max_probes per probe window, the probe interval Q above P.
 *
 * Evidence, at the interval X the session was using:
 *  - success: a prober's PING came after a quiet gap of ~X, k (probe_intervals) times,
 *    or HELLO.previous reports X >= Q, not timed out, having lived k intervals; for
 *    the proven interval, every quiet gap a session gets through at it.
 *  - failure: a session that never got a quiet interval through at X was replaced by
 *    its device's reconnect within min(X/2, 90 s) after its PING was due (the PING was
 *    lost, the network was fine); or HELLO.previous says the same: timed_out at X after
 *    living X plus at most min(X/2, 90 s), back on the same network at once. An idle
 *    close (the device stayed away) is NAT-suspected too, but counts only against a
 *    probe: it is as likely a device out of coverage. A session cut off by a network
 *    switch or mid-interval is no evidence. A failure at or above a ceiling still cooling
 *    down is old news (sessions not yet told) and ignored.
 *  One event seen from both sides (server close, device report) counts once.
 *
 * Rules, after WeChat Mars but counted fleet-wide per class:
 *  1. Step up: S (successes_to_step) successes at Q, more than the failures there:
 *     P := Q and the step doubles (Mars adds 60 s per device; a class of thousands can
 *     afford bigger steps, so 4.5 -> 28 min takes ~6 steps, not 24).
 *  2. Probe failed: F (failures_to_back_off) failures above P, no fewer than the
 *     successes: the lowest failed X is the ceiling for cooldown_ms, the step drops back
 *     to step_ms and Q bisects (P, ceiling) while the gap allows a step_ms probe. When it
 *     does not, the class is settled at P - margin (Mars: the highest success - 20 s).
 *  3. Back off: F failures at or below P, no fewer than the successes there (which
 *     come every quiet interval, so it takes a NAT that got shorter). P := min_ms at
 *     once (one wave of drops, not one per step down); the failed interval becomes the
 *     ceiling and the class climbs again beneath it.
 *  4. Re-probe: when a ceiling's cool-down ends, Q = P + step_ms again; a probe at or
 *     above the last failed interval starts at most F probers per window.
 *  Counts halve past 64 (probe) and 32 (proven) so old evidence fades; a decision
 *  resets the counts it was made on.
 */
import type { Config } from '../config/types';
import { ClassTable, evidenceKey, UNKNOWN_SLOT } from './classes';
import { isFixedLine, KIND_COUNT } from './kinds';

export interface PolicyOptions {
  defaultMs: number;
  minMs: number;
  /** Cellular (and unknown-kind) ceiling. */
  maxMs: number;
  wifiMaxMs: number;
  foregroundMs: number;
  /** 0..1 */
  probeShare: number;
  maxProbes: number;
  /** k: quiet intervals survived for a success. At most 7 (three bits of the tag). */
  probeIntervals: number;
  stepMs: number;
  successesToStep: number;
  failuresToBackOff: number;
  marginMs: number;
  cooldownMs: number;
  maxClasses: number;
}

export function policyOptions(h: Config['heartbeat']): PolicyOptions {
  return {
    defaultMs: h.default_ms,
    minMs: h.min_ms,
    maxMs: h.max_ms,
    wifiMaxMs: h.wifi_max_ms,
    foregroundMs: h.foreground_ms,
    probeShare: h.probe_share / 100,
    maxProbes: h.max_probes,
    probeIntervals: h.probe_intervals,
    stepMs: h.step_ms,
    successesToStep: h.successes_to_step,
    failuresToBackOff: h.failures_to_back_off,
    marginMs: h.margin_ms,
    cooldownMs: h.cooldown_ms,
    maxClasses: h.max_classes,
  };
}

/** HELLO.previous (protocol.md HeartbeatReport). */
export interface HeartbeatReport {
  intervalMs: number;
  timedOut: boolean;
  livedMs: number;
}

export type ClassChange = 'step_up' | 'ceiling' | 'back_off';

export interface PolicyObserver {
  probe(success: boolean): void;
  change(what: ClassChange, kind: number, carrier: string, fromMs: number, toMs: number): void;
}

export interface ClassView {
  kind: number;
  carrier: string;
  adviceMs: number;
  provenMs: number;
  probeMs: number;
  ceilingMs: number;
}

// A session's tag: one small integer, slot << 5 | quiet intervals survived << 2 | mode.
const MODE_NORMAL = 1;
const MODE_PROBE = 2;
const MODE_FOREGROUND = 3;
const SURVIVED_MAX = 7;
/** A PING this late after its interval was lost, not merely delayed by timers. */
export const OVERDUE_MS = 3_000;
/** Longest grace_ms the schema allows: a class is never dropped while a session may point at it. */
const MAX_GRACE_MS = 600_000;
/** Counts halve past these sums, so old evidence fades. */
const PROBE_WINDOW = 64;
const PROVEN_WINDOW = 32;
/** A NAT death is noticed one PONG timeout after the lost PING, and the device is back at once. */
const REPORT_WINDOW_MS = 90_000;

function noticeWindow(intervalMs: number): number {
  return Math.min(intervalMs / 2, REPORT_WINDOW_MS);
}

function pack(slot: number, survived: number, mode: number): number {
  return (slot << 5) | (survived << 2) | mode;
}

export class HeartbeatPolicy {
  readonly table: ClassTable;
  private o: PolicyOptions;
  /** Called after every decision (a new P, ceiling or back-off): the sync saves soon after. */
  onDecision: (() => void) | null = null;

  constructor(
    opts: PolicyOptions,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
    private readonly observer: PolicyObserver | null = null,
    /** Names this process's decisions and evidence in the shared table. */
    readonly writer = 'local',
  ) {
    this.o = sane(opts);
    this.table = new ClassTable(opts.maxClasses);
    const t0 = this.now();
    for (let k = 1; k < KIND_COUNT; k++) this.initClass(k, t0);
    this.recompute(UNKNOWN_SLOT, t0);
  }

  get options(): Readonly<PolicyOptions> {
    return this.o;
  }

  /** New bounds and thresholds, live. The table keeps its size (max_classes needs a restart). */
  configure(opts: PolicyOptions): void {
    this.o = { ...sane(opts), maxClasses: this.o.maxClasses };
    const now = this.now();
    for (let slot = 0; slot < this.table.size; slot++) if (this.table.inUse[slot] === 1) this.recompute(slot, now);
  }

  // ---- sessions ----

  /** A session's tag at HELLO (never 0); `intervalOf(tag)` is its advice. */
  open(kind: number, carrier: string, foreground: boolean): number {
    const now = this.now();
    const slot = this.classOf(kind, carrier, now);
    const t = this.table;
    t.lastUsed[slot] = now;
    if (foreground) return pack(slot, 0, MODE_FOREGROUND);
    if (slot === UNKNOWN_SLOT) return pack(slot, 0, MODE_NORMAL);
    this.refresh(slot, now);
    const q = t.probe[slot];
    if (q > 0 && this.o.probeShare > 0 && this.random() < this.o.probeShare && this.probeRoom(slot, q, now)) {
      t.windowCount[slot]++;
      return pack(slot, 0, MODE_PROBE);
    }
    return pack(slot, 0, MODE_NORMAL);
  }

  intervalOf(tag: number): number {
    const mode = tag & 3;
    if (mode === MODE_FOREGROUND) return this.o.foregroundMs;
    const slot = tag >>> 5;
    if (mode === MODE_PROBE) {
      const q = this.table.probe[slot];
      // `| 0`: a Float64Array element stored in a session field would be a boxed HeapNumber (16 B each).
      if (q > 0) return q | 0;
    }
    return this.table.advice[slot] | 0;
  }

  kindOf(tag: number): number {
    return this.table.kind[tag >>> 5];
  }

  /**
   * A PING after `quietMs` of silence from a session using `intervalMs`. Returns the
   * session's new tag; when `intervalOf(newTag)` differs from `intervalMs` the session
   * is to be advised the new interval. Hot path: array reads, no allocation; pass
   * `nowMs` when the caller has read the clock already (a clock read costs more).
   */
  ping(tag: number, quietMs: number, intervalMs: number, deviceId: string, nowMs = this.now()): number {
    const t = this.table;
    const slot = tag >>> 5;
    let mode = tag & 3;
    t.lastUsed[slot] = nowMs;
    if (mode === MODE_FOREGROUND || slot === UNKNOWN_SLOT) return tag;
    // A gap shorter than the interval (other frames came) proves nothing about the NAT.
    const quiet = quietMs * 4 >= intervalMs * 3;
    // Every quiet interval at or below P counts for it (stale sessions too, as their
    // failures count against it): so many that only a NAT that got shorter lets the
    // failures catch up. No decision can follow a success here.
    if (quiet && intervalMs <= t.proven[slot]) {
      t.provenOk[slot]++;
      decay(t.provenOk, t.provenFail, slot, PROVEN_WINDOW);
    }
    // A prober whose level was decided (or dropped) meanwhile goes back to the advice.
    if (mode === MODE_PROBE && t.probe[slot] !== intervalMs) mode = MODE_NORMAL;
    const want = mode === MODE_PROBE ? t.probe[slot] : t.advice[slot];
    if (want !== intervalMs) return pack(slot, 0, mode);
    let survived = (tag >>> 2) & SURVIVED_MAX;
    if (!quiet) return pack(slot, survived, mode);
    if (survived < SURVIVED_MAX) survived++;
    // A prober counts once, then is done probing.
    if (mode === MODE_PROBE && survived === this.o.probeIntervals) {
      mode = MODE_NORMAL;
      this.evidence(slot, intervalMs, true, deviceId);
    }
    return pack(slot, survived, mode);
  }

  /**
   * The session is gone after `quietMs` of silence. True when it looks like a NAT
   * timeout: a background session whose PING is overdue and that never got a quiet
   * interval through at `intervalMs`. Such a close is failure evidence for its class.
   */
  closed(tag: number, quietMs: number, intervalMs: number, deviceId: string): boolean {
    if (tag === 0 || (tag & 3) === MODE_FOREGROUND || ((tag >>> 2) & SURVIVED_MAX) > 0) return false;
    const late = quietMs - intervalMs;
    if (late < OVERDUE_MS) return false;
    const slot = tag >>> 5;
    // Replaced by the device within a PONG timeout or so of the lost PING: its network
    // was fine, the NAT was not. Gone longer (idle close): as likely out of coverage,
    // which only a prober's few counts can afford to take as a failure.
    if (slot !== UNKNOWN_SLOT && intervalMs >= this.o.minMs && (late <= noticeWindow(intervalMs) || intervalMs > this.table.proven[slot])) {
      this.evidence(slot, intervalMs, false, deviceId);
    }
    return true;
  }

  /**
   * HELLO.previous, for the class the previous session ran on. `sameNetwork`: the
   * device is back on that network (after a switch, the switch killed the session).
   * `downMs`: from the previous session's end to this HELLO, -1 when unknown.
   */
  report(kind: number, carrier: string, r: HeartbeatReport, deviceId: string, sameNetwork: boolean, downMs: number): void {
    const x = r.intervalMs;
    if (!(x >= this.o.minMs)) return;
    if (r.timedOut && (!sameNetwork || downMs > REPORT_WINDOW_MS)) return;
    const now = this.now();
    const slot = this.classOf(kind, carrier, now);
    if (slot === UNKNOWN_SLOT) return;
    this.refresh(slot, now);
    if (r.timedOut) {
      if (r.livedMs >= x && r.livedMs < x + noticeWindow(x)) this.evidence(slot, x, false, deviceId);
      return;
    }
    const q = this.table.probe[slot];
    if (q > 0 && x >= q && r.livedMs >= this.o.probeIntervals * x) this.evidence(slot, x, true, deviceId);
  }

  /** The classes in use, for charts, logs and tests. */
  classes(): ClassView[] {
    const t = this.table;
    const out: ClassView[] = [];
    for (let s = 1; s < t.size; s++) {
      if (t.inUse[s] === 0) continue;
      out.push({ kind: t.kind[s], carrier: t.carrier[s], adviceMs: t.advice[s], provenMs: t.proven[s], probeMs: t.probe[s], ceilingMs: t.ceiling[s] });
    }
    return out;
  }

  /** The class of (kind, carrier): the advice a background non-probing session would get. */
  adviceFor(kind: number, carrier: string): number {
    const slot = this.table.find(kind, carrier);
    return this.table.advice[slot < 0 ? this.table.find(kind, '') : slot];
  }

  // ---- evidence and rules ----

  private evidence(slot: number, x: number, success: boolean, deviceId: string): void {
    const t = this.table;
    if (success) {
      const q = t.probe[slot];
      if (q > 0 && x >= q) {
        const e = evidenceKey(deviceId, true);
        if (t.ringTake(slot, e)) return;
        t.ringPut(slot, e);
        t.probeOk[slot]++;
        this.observer?.probe(true);
        decay(t.probeOk, t.probeFail, slot, PROBE_WINDOW);
      }
      if (x >= t.advice[slot]) {
        t.provenOk[slot]++;
        decay(t.provenOk, t.provenFail, slot, PROVEN_WINDOW);
      }
    } else {
      const e = evidenceKey(deviceId, false);
      if (t.ringTake(slot, e)) return;
      t.ringPut(slot, e);
      if (x > t.proven[slot]) {
        if (t.ceiling[slot] > 0 && x >= t.ceiling[slot]) return;
        t.probeFail[slot]++;
        if (t.failAt[slot] === 0 || x < t.failAt[slot]) t.failAt[slot] = x;
        this.observer?.probe(false);
        decay(t.probeOk, t.probeFail, slot, PROBE_WINDOW);
      } else {
        t.provenFail[slot]++;
        decay(t.provenOk, t.provenFail, slot, PROVEN_WINDOW);
      }
    }
    this.decide(slot, this.now());
  }

  /** Applies the rules to the class's evidence (this process's plus the other writers'). */
  decide(slot: number, now: number): void {
    const t = this.table;
    const r = 4 * slot;
    const F = this.o.failuresToBackOff;
    const pOk = t.probeOk[slot] + t.remote[r];
    const pFail = t.probeFail[slot] + t.remote[r + 1];
    const vOk = t.provenOk[slot] + t.remote[r + 2];
    const vFail = t.provenFail[slot] + t.remote[r + 3];
    if (vFail >= F && vFail >= vOk) this.backOff(slot, now);
    else if (pFail >= F && pFail >= pOk) this.ceilingAt(slot, now);
    else if (t.probe[slot] > 0 && pOk >= this.o.successesToStep && pOk > pFail) this.stepUp(slot, now);
  }

  private stepUp(slot: number, now: number): void {
    const t = this.table;
    const from = t.advice[slot];
    // The successes that proved Q are the new P's: a stray failure cannot undo them.
    const proof = t.probeOk[slot] + t.remote[4 * slot];
    t.proven[slot] = t.probe[slot];
    t.step[slot] *= 2;
    t.margined[slot] = 0;
    if (t.lastFail[slot] > 0 && t.proven[slot] >= t.lastFail[slot]) t.lastFail[slot] = 0;
    t.resetEvidence(slot);
    t.provenOk[slot] = proof;
    this.decided(slot, now, 'step_up', from);
  }

  private ceilingAt(slot: number, now: number): void {
    const t = this.table;
    const x = t.failAt[slot] || t.probe[slot] || t.proven[slot] + this.o.stepMs;
    const c = t.ceiling[slot] > 0 ? Math.min(t.ceiling[slot], x) : x;
    t.ceiling[slot] = c;
    t.coolUntil[slot] = now + this.o.cooldownMs;
    t.lastFail[slot] = c;
    t.step[slot] = this.o.stepMs;
    // P stands: only the probe's evidence is spent.
    t.probeOk[slot] = t.probeFail[slot] = t.failAt[slot] = 0;
    t.remote[4 * slot] = t.remote[4 * slot + 1] = 0;
    this.decided(slot, now, 'ceiling', t.advice[slot]);
  }

  private backOff(slot: number, now: number): void {
    const t = this.table;
    const from = t.advice[slot];
    // Already on the floor below a known failure: nothing to decide (min_ms is the operator's).
    if (t.proven[slot] <= this.o.minMs && t.ceiling[slot] > 0 && t.ceiling[slot] <= from) {
      t.resetEvidence(slot);
      return;
    }
    const c = t.ceiling[slot] > 0 ? Math.min(t.ceiling[slot], from) : from;
    t.ceiling[slot] = c;
    t.coolUntil[slot] = now + this.o.cooldownMs;
    t.lastFail[slot] = c;
    t.proven[slot] = this.o.minMs;
    t.step[slot] = this.o.stepMs;
    t.margined[slot] = 0;
    t.resetEvidence(slot);
    this.decided(slot, now, 'back_off', from);
  }

  private decided(slot: number, now: number, what: ClassChange, from: number): void {
    const t = this.table;
    t.version[slot] = Math.max(now, t.version[slot] + 1);
    t.versionBy[slot] = this.writer;
    this.recompute(slot, now);
    this.observer?.change(what, t.kind[slot], t.carrier[slot], from, t.advice[slot]);
    this.onDecision?.();
  }

  // ---- class state ----

  /** The slot for (kind, carrier), made (from its kind's state) when new. */
  classOf(kind: number, carrier: string, now: number): number {
    const o = this.o;
    const idleMs = 2 * Math.max(o.maxMs, o.wifiMaxMs, o.defaultMs, o.foregroundMs) + MAX_GRACE_MS + OVERDUE_MS;
    let slot = this.table.claim(kind, carrier, now, idleMs);
    if (slot < 0) slot = -slot - 1;
    else if (this.table.proven[slot] === 0 && slot !== UNKNOWN_SLOT) this.initClass(slot, now);
    return slot;
  }

  private initClass(slot: number, now: number): void {
    const t = this.table;
    const k = t.kind[slot];
    t.proven[slot] = slot === k ? this.o.defaultMs : t.proven[k];
    t.step[slot] = this.o.stepMs;
    this.recompute(slot, now);
  }

  private refresh(slot: number, now: number): void {
    if (this.table.ceiling[slot] > 0 && now >= this.table.coolUntil[slot]) this.recompute(slot, now);
  }

  maxFor(kind: number): number {
    return isFixedLine(kind) ? this.o.wifiMaxMs : this.o.maxMs;
  }

  /** Advice and probe from the state (and the options, which may have changed live). */
  recompute(slot: number, now: number): void {
    const t = this.table;
    const o = this.o;
    if (slot === UNKNOWN_SLOT) {
      t.advice[slot] = o.defaultMs;
      t.probe[slot] = 0;
      return;
    }
    const max = this.maxFor(t.kind[slot]);
    const p = Math.min(max, Math.max(o.minMs, t.proven[slot]));
    t.proven[slot] = p;
    if (t.step[slot] < o.stepMs) t.step[slot] = o.stepMs;
    let c = t.ceiling[slot];
    if (c > 0 && now >= t.coolUntil[slot]) c = t.ceiling[slot] = 0;
    let q = 0;
    if (c > 0) {
      const s = Math.min(t.step[slot], Math.floor((c - p) / 2));
      if (s >= o.stepMs) q = p + s;
      else t.margined[slot] = 1;
    } else if (p < max) {
      q = Math.min(p + t.step[slot], max);
    }
    if (q !== t.probe[slot]) {
      t.probe[slot] = q;
      t.windowStart[slot] = now;
      t.windowCount[slot] = 0;
    }
    t.advice[slot] = t.margined[slot] === 1 ? Math.max(o.minMs, p - o.marginMs) : p;
  }

  /** Room for one more prober in this window of (k + 1) probe intervals. */
  private probeRoom(slot: number, q: number, now: number): boolean {
    const t = this.table;
    if (now - t.windowStart[slot] >= (this.o.probeIntervals + 1) * q) {
      t.windowStart[slot] = now;
      t.windowCount[slot] = 0;
    }
    const cautious = t.lastFail[slot] > 0 && q >= t.lastFail[slot];
    return t.windowCount[slot] < (cautious ? this.o.failuresToBackOff : this.o.maxProbes);
  }
}

/** k lives in three bits of a session's tag. */
function sane(o: PolicyOptions): PolicyOptions {
  return { ...o, probeIntervals: Math.min(SURVIVED_MAX, Math.max(1, Math.floor(o.probeIntervals))) };
}

function decay(ok: Float64Array, fail: Float64Array, slot: number, window: number): void {
  if (ok[slot] + fail[slot] <= window) return;
  ok[slot] = Math.floor(ok[slot] / 2);
  fail[slot] = Math.floor(fail[slot] / 2);
}
