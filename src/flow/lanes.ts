/**
 * Priority lanes of one worker: every live delivery (a routed push, a topic or
 * broadcast fan-out) is a job in lane high, normal or bulk, and jobs run in
 * scheduler turns off the I/O callbacks (setImmediate).
 *
 * A turn does at most `turn_sends` writes. Lanes with work share it by weight
 * (deficit round robin: a lane that overspends, e.g. on one WebSocket publish larger
 * than its share, pays it back in later turns), high first, normal next, bulk last;
 * what a lane leaves unused goes to the others. Jobs are sliced: a fan-out to a
 * million sessions is thousands of slices, and between two turns the event loop reads
 * sockets, so a high-priority push that arrives mid-broadcast runs at the start of the
 * next turn. Its wait is bounded by one turn (`turn_sends` writes, or one publish when
 * that is larger) plus the high-lane work queued before it. A high-priority job that
 * finds its lane empty between turns runs at once (what the next turn would do first).
 */

export const Lane = { HIGH: 0, NORMAL: 1, BULK: 2 } as const;
export type LaneValue = (typeof Lane)[keyof typeof Lane];
export const LANE_NAMES = ['high', 'normal', 'bulk'] as const;
export type LaneName = (typeof LANE_NAMES)[number];

/** Push priority (protocol.md: NORMAL 0, HIGH 1, BULK 2) → lane. */
export function laneOfPriority(priority: number): LaneValue {
  return priority === 1 ? Lane.HIGH : priority === 2 ? Lane.BULK : Lane.NORMAL;
}

/**
 * Fan-outs never run in the high lane: a high-priority broadcast goes to normal, the
 * rest to bulk. So the high lane holds device pushes only, and a broadcast of any
 * priority cannot sit in front of a high single-device push.
 */
export function laneOfFanout(priority: number): LaneValue {
  return priority === 1 ? Lane.NORMAL : Lane.BULK;
}

export interface LaneJob {
  /** Does up to about `budget` writes; returns how many it did (at least 1 unless it finished). */
  run(budget: number): number;
  /** Nothing left to do. */
  readonly done: boolean;
}

export interface LaneConfig {
  weight_high: number;
  weight_normal: number;
  weight_bulk: number;
  turn_sends: number;
}

export interface LaneObserver {
  /** A job ran for the first time `waitMs` after it was queued. */
  started(lane: LaneValue, waitMs: number): void;
  /** Writes done in one lane in one turn. */
  sent(lane: LaneValue, n: number): void;
}

interface Entry {
  job: LaneJob;
  at: number;
  started: boolean;
}

/** A FIFO of entries with a moving head (no shift() per job). */
class Fifo {
  items: Entry[] = [];
  head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  peek(): Entry {
    return this.items[this.head];
  }

  drop(): void {
    this.items[this.head++] = undefined as unknown as Entry;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

export class LaneScheduler {
  private readonly queues = [new Fifo(), new Fifo(), new Fifo()];
  /** Deficit round robin credit per lane (may be negative after an overspend). */
  private readonly credit = [0, 0, 0];
  private scheduled = false;
  /** A turn (or an immediate high-lane run) is executing: add() must not re-enter it. */
  private inTurn = false;
  /** Turns run so far (tests, metrics). */
  turns = 0;

  constructor(
    private readonly config: () => LaneConfig,
    private readonly now: () => number,
    private readonly defer: (fn: () => void) => void = setImmediate,
    private readonly observer: LaneObserver | null = null,
  ) {}

  /** Jobs waiting or running, per lane. */
  sizes(): [number, number, number] {
    return [this.queues[0].size, this.queues[1].size, this.queues[2].size];
  }

  add(lane: LaneValue, job: LaneJob): void {
    if (job.done) return;
    this.queues[lane].items.push({ job, at: this.now(), started: false });
    // An empty high lane outside a turn: this is what the next turn would run first, so run
    // it now (up to one turn's writes) instead of waiting a loop iteration for it.
    if (lane === Lane.HIGH && !this.inTurn && this.queues[Lane.HIGH].size === 1) {
      this.inTurn = true;
      try {
        this.runLane(Lane.HIGH, this.config().turn_sends);
      } finally {
        this.inTurn = false;
      }
      if (this.queues[Lane.HIGH].size === 0 && this.queues[Lane.NORMAL].size + this.queues[Lane.BULK].size === 0) return;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      this.defer(this.turn);
    }
  }

  /** One turn; runs itself again while work is left. */
  readonly turn = (): void => {
    this.scheduled = false;
    this.turns++;
    this.inTurn = true;
    try {
      this.runTurn();
    } finally {
      this.inTurn = false;
    }
    if (this.queues[0].size + this.queues[1].size + this.queues[2].size > 0 && !this.scheduled) {
      this.scheduled = true;
      this.defer(this.turn);
    }
  };

  private runTurn(): void {
    const c = this.config();
    const weights = [c.weight_high, c.weight_normal, c.weight_bulk];
    let active = 0;
    for (let l = 0; l < 3; l++) if (this.queues[l].size > 0) active += weights[l];
    if (active === 0) return;
    let budget = c.turn_sends;
    for (let l = 0 as LaneValue; l < 3; l++) {
      if (this.queues[l].size === 0) {
        this.credit[l] = 0;
        continue;
      }
      this.credit[l] = Math.min(c.turn_sends, this.credit[l] + Math.ceil((c.turn_sends * weights[l]) / active));
      if (this.credit[l] > 0 && budget > 0) {
        const spent = this.runLane(l, Math.min(this.credit[l], budget));
        this.credit[l] -= spent;
        budget -= spent;
      }
      if (this.queues[l].size === 0) this.credit[l] = Math.min(0, this.credit[l]);
    }
    // Work-conserving: what the shares left goes to whoever has work, high first.
    for (let l = 0 as LaneValue; l < 3 && budget > 0; l++) {
      if (this.queues[l].size > 0) budget -= this.runLane(l, budget);
    }
  }

  private runLane(lane: LaneValue, budget: number): number {
    const q = this.queues[lane];
    let spent = 0;
    while (spent < budget && q.size > 0) {
      const e = q.peek();
      if (!e.started) {
        e.started = true;
        this.observer?.started(lane, this.now() - e.at);
      }
      const n = e.job.done ? 0 : e.job.run(budget - spent);
      spent += n > 0 ? n : 1;
      if (e.job.done || n <= 0) q.drop();
    }
    if (spent > 0) this.observer?.sent(lane, spent);
    return spent;
  }
}
