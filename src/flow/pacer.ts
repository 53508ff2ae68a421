/**
 * Push pacing per (unit, API key) in one worker: a token bucket, and behind it a
 * bounded queue in three priority classes. A push the bucket covers goes at once;
 * one it does not (or one that arrives while others wait, so order holds) is queued
 * and released as tokens come back, high before normal before bulk, FIFO within a
 * class. Only when the queue is full (by count or by bytes) is a push refused, with
 * the time a slot should take to free up (jittered) for Retry-After.
 *
 * A push costs one token per target device (1 for a topic or broadcast) and may
 * leave the bucket in debt, so a 1,000-device push never waits forever behind a
 * burst of 100. Durable pushes are stored before they queue and hold only their
 * routing header here (the body waits in the inbox), so they cost the queue ~100 bytes.
 *
 * Clock and timers are injected: tests drive it with a fake clock.
 */
import { TokenBucket } from './bucket';
import type { Unit } from './units';

/** Releases are batched: a queue is looked at no more often than this. */
export const RELEASE_TICK_MS = 5;

export interface PacerClock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(t: unknown): void;
}

export interface PacerObserver {
  /** A queued push left the queue after `waitMs`. */
  released(unit: string, waitMs: number): void;
  /** Pushes waiting in `unit` changed by `delta`. */
  queued(unit: string, delta: number): void;
}

/** Never below a token plus two release ticks' refill, or a small burst would cap the paced rate. */
function pacedBurst(u: Unit): number {
  return Math.max(u.burst, 1 + (2 * u.rate * RELEASE_TICK_MS) / 1000);
}

interface Item {
  cost: number;
  bytes: number;
  at: number;
  run: (() => void) | null;
}

/** A slot reserved in a queue before the push is stored; `enqueue` fills it, `cancel` frees it. */
export interface Ticket {
  readonly flow: KeyFlow;
  readonly lane: number;
  readonly item: Item;
  state: 0 | 1 | 2;
}
const RESERVED = 0;
const QUEUED = 1;
const GONE = 2;

class KeyFlow {
  readonly bucket: TokenBucket;
  readonly lanes: Item[][] = [[], [], []];
  /** Reserved and queued pushes, and their bytes. */
  count = 0;
  bytes = 0;
  timer: unknown = null;

  constructor(
    readonly unit: string,
    u: Unit,
    now: number,
  ) {
    this.bucket = new TokenBucket(u.rate, pacedBurst(u), now);
  }
}

export class QueueFullError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

export class PushPacer {
  private readonly flows = new Map<string, KeyFlow>();

  constructor(
    private readonly clock: PacerClock,
    private readonly observer: PacerObserver | null = null,
    private readonly random: () => number = Math.random,
  ) {}

  /**
   * null: send now (tokens taken). A Ticket: queue it (call enqueue once the push is
   * stored, or cancel). Throws QueueFullError when the queue has no room.
   */
  admit(unit: Unit, key: string, lane: number, cost: number, bytes: number): Ticket | null {
    const now = this.clock.now();
    const id = `${unit.name}\u0000${key}`;
    let f = this.flows.get(id);
    if (!f) this.flows.set(id, (f = new KeyFlow(unit.name, unit, now)));
    f.bucket.rate = unit.rate;
    f.bucket.burst = pacedBurst(unit);
    if (f.count === 0 && f.bucket.takeDebt(cost, now)) return null;
    if (f.count + 1 > unit.queue || f.bytes + bytes > unit.queue_bytes) throw this.full(f, unit, cost, now);
    f.count++;
    f.bytes += bytes;
    this.observer?.queued(f.unit, 1);
    return { flow: f, lane: lane < 0 || lane > 2 ? 1 : lane, item: { cost, bytes, at: now, run: null }, state: RESERVED };
  }

  /**
   * Whether every push from `key` in `unit` would be refused now, whatever its targets:
   * its queue is full by count (bytes depend on the push and are judged by admit). The
   * error admit would throw, or null when a push might get in. Changes nothing, so the
   * API can answer 429 before it reads a request body.
   */
  refusal(unit: Unit, key: string): QueueFullError | null {
    const f = this.flows.get(`${unit.name}\u0000${key}`);
    if (!f || f.count + 1 <= unit.queue) return null;
    const now = this.clock.now();
    // An empty queue (queue = 0) still lets a push through the bucket.
    if (f.count === 0 && f.bucket.msUntil(1, now) === 0) return null;
    return this.full(f, unit, 1, now);
  }

  private full(f: KeyFlow, unit: Unit, cost: number, now: number): QueueFullError {
    const wait = f.bucket.msUntil(cost, now) + Math.ceil((cost * 1000) / unit.rate);
    const retry = Math.max(1000, wait);
    return new QueueFullError(
      `unit ${unit.name}: ${f.count} pushes (${f.bytes} bytes) already wait for this API key's budget of ${unit.rate}/s (queue ${unit.queue}, ${unit.queue_bytes} bytes)`,
      retry + Math.floor(this.random() * retry),
    );
  }

  /** The push of `t` is ready to go when its turn comes: `run` routes it. */
  enqueue(t: Ticket, run: () => void): void {
    if (t.state !== RESERVED) return;
    t.state = QUEUED;
    t.item.run = run;
    t.flow.lanes[t.lane].push(t.item);
    this.pump(t.flow);
  }

  /** The push of `t` will not come (its store write failed): free the slot. */
  cancel(t: Ticket | null): void {
    if (t === null || t.state !== RESERVED) return;
    t.state = GONE;
    this.release(t.flow, t.item);
  }

  /** Pushes waiting (reserved or queued) for `unit` and `key`. */
  waiting(unitName: string, key: string): number {
    return this.flows.get(`${unitName}\u0000${key}`)?.count ?? 0;
  }

  private release(f: KeyFlow, item: Item): void {
    f.count--;
    f.bytes -= item.bytes;
    this.observer?.queued(f.unit, -1);
  }

  private pump(f: KeyFlow): void {
    const now = this.clock.now();
    // Bounded: each pass takes one item or stops.
    for (;;) {
      const q = f.lanes[0].length ? f.lanes[0] : f.lanes[1].length ? f.lanes[1] : f.lanes[2].length ? f.lanes[2] : null;
      if (q === null) return;
      if (!f.bucket.takeDebt(q[0].cost, now)) break;
      const item = q.shift() as Item;
      this.release(f, item);
      this.observer?.released(f.unit, now - item.at);
      (item.run as () => void)();
    }
    if (f.timer === null) {
      const head = f.lanes[0][0] ?? f.lanes[1][0] ?? f.lanes[2][0];
      const ms = Math.max(RELEASE_TICK_MS, f.bucket.msUntil(head ? head.cost : 1, now));
      f.timer = this.clock.setTimer(() => {
        f.timer = null;
        this.pump(f);
      }, ms);
    }
  }

  /** Stops every release timer (worker shutdown); queued pushes stay unsent. */
  stop(): void {
    for (const f of this.flows.values()) {
      if (f.timer !== null) this.clock.clearTimer(f.timer);
      f.timer = null;
    }
  }
}
