/**
 * A hashed timing wheel with intrusive links: one interval timer for the whole
 * worker instead of one timer per connection (design.md memory budget). Nodes are
 * the sessions themselves; scheduling costs four fields and no allocation.
 *
 * Deadlines further than one revolution away are simply re-inserted when their slot
 * comes round. Callers that extend a deadline often (every frame) should not
 * reschedule each time: keep a `lastSeen` and re-check when the node fires.
 *
 * A node's deadline is kept in quarter ticks since the wheel was made, rounded up: a
 * small integer (a Smi, in the node itself for 17 years at 1 s ticks), where a
 * Date.now() value would be a boxed 16-byte double on every session (docs/memory.md).
 */
export interface WheelNode {
  wheelNext: WheelNode | null;
  wheelPrev: WheelNode | null;
  /** Slot index, or -1 when not scheduled. */
  wheelSlot: number;
  /** The deadline, in quarter ticks since the wheel's epoch (rounded up). */
  wheelDeadline: number;
}

const UNITS_PER_TICK = 4;

export class TimingWheel<T extends WheelNode> {
  private readonly heads: (WheelNode | null)[];
  private readonly mask: number;
  /** Absolute tick the cursor has processed up to (exclusive). */
  private tickNo: number;
  private timer: NodeJS.Timeout | null = null;
  private count = 0;
  private readonly epochMs: number;
  private readonly unitMs: number;

  /**
   * @param tickMs granularity: deadlines fire at most 1.25 ticks late (never early).
   * @param slots power of two; one revolution is tickMs * slots.
   */
  constructor(
    private readonly tickMs: number,
    slots: number,
    private readonly onExpire: (node: T, nowMs: number) => void,
    nowMs: number = Date.now(),
  ) {
    if ((slots & (slots - 1)) !== 0) throw new Error('TimingWheel: slots must be a power of two');
    this.heads = new Array(slots).fill(null);
    this.mask = slots - 1;
    this.tickNo = Math.floor(nowMs / tickMs);
    this.epochMs = this.tickNo * tickMs;
    this.unitMs = tickMs / UNITS_PER_TICK;
  }

  get size(): number {
    return this.count;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.advance(Date.now()), this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  schedule(node: T, deadlineMs: number): void {
    if (node.wheelSlot !== -1) this.unlink(node);
    const units = Math.ceil((deadlineMs - this.epochMs) / this.unitMs);
    node.wheelDeadline = units;
    // The slot of the rounded deadline, and never one the cursor has passed: the earliest is the next tick.
    const tick = Math.max(Math.floor(units / UNITS_PER_TICK) + this.epochMs / this.tickMs, this.tickNo);
    const slot = tick & this.mask;
    const head = this.heads[slot];
    node.wheelPrev = null;
    node.wheelNext = head;
    if (head) head.wheelPrev = node;
    this.heads[slot] = node;
    node.wheelSlot = slot;
    this.count++;
  }

  cancel(node: T): void {
    if (node.wheelSlot !== -1) this.unlink(node);
  }

  /** Fire every node whose deadline (rounded up to a quarter tick) is <= nowMs. Exposed for tests with a fake clock. */
  advance(nowMs: number): void {
    const target = Math.floor(nowMs / this.tickMs);
    const now = Math.floor((nowMs - this.epochMs) / this.unitMs);
    // After a long stall, one pass over every slot is enough.
    const steps = Math.min(target - this.tickNo + 1, this.heads.length);
    for (let i = 0; i < steps; i++) {
      const slot = (this.tickNo + i) & this.mask;
      let node = this.heads[slot];
      while (node) {
        const next = node.wheelNext;
        if (node.wheelDeadline <= now) {
          this.unlink(node);
          this.onExpire(node as T, nowMs);
        }
        node = next;
      }
    }
    this.tickNo = target;
  }

  private unlink(node: WheelNode): void {
    if (node.wheelPrev) node.wheelPrev.wheelNext = node.wheelNext;
    else this.heads[node.wheelSlot] = node.wheelNext;
    if (node.wheelNext) node.wheelNext.wheelPrev = node.wheelPrev;
    node.wheelNext = null;
    node.wheelPrev = null;
    node.wheelSlot = -1;
    this.count--;
  }
}
