/**
 * Receive coalescing for the soak's load clients (client.ts).
 *
 * They share the machine's cores with the servers they measure. When a server sends
 * slower than a client reads, the client sleeps in epoll_wait and wakes for nearly every
 * message: each wake-up (a context switch, the syscall, one libuv iteration) costs more
 * than reading the message, and that CPU is taken from the server, which then sends
 * slower still. A fan-out measured that way times the load clients' wake-ups as much as
 * the server (README, "Where the fan-out's time goes"). So while data trickles in
 * (over TRICKLE_READS_PER_MS reads per ms, fewer than TRICKLE_BATCH per loop iteration)
 * a client naps `napUs` before reading again: the kernel queues what arrives meanwhile
 * and the next wake-up reads it all. Receipt times are stamped after the nap (at most
 * `napUs` late), so latencies include it. Quiet periods (ramps, heartbeats, the dial
 * test) stay under the rate and never nap.
 */

/** Reads per ms (over the last window) above which a small batch counts as a trickle. */
export const TRICKLE_READS_PER_MS = 5;
/** A loop iteration with this many reads or more already batches well. */
export const TRICKLE_BATCH = 64;
/** The read rate is measured over windows of at least this many ms. */
export const RATE_WINDOW_MS = 20;

const NAP_CELL = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread for `ms` (a nap: the event loop reads nothing meanwhile). */
function sleepThread(ms: number): void {
  Atomics.wait(NAP_CELL, 0, 0, ms);
}

export interface CoalescerClock {
  now(): number;
  /** Runs `fn` once the I/O callbacks of this loop iteration are done (setImmediate). */
  afterIo(fn: () => void): void;
  nap(ms: number): void;
}

const REAL_CLOCK: CoalescerClock = { now: () => performance.now(), afterIo: (fn) => setImmediate(fn), nap: sleepThread };

export class ReceiveCoalescer {
  /** Naps taken so far. */
  naps = 0;
  private turnReads = 0;
  private armed = false;
  private winFrom = 0;
  private winReads = 0;
  /** Reads per ms over the last complete window. */
  private winRate = 0;

  /** `napUs` 0: never nap (only count reads). */
  constructor(
    private readonly napUs: number,
    private readonly clock: CoalescerClock = REAL_CLOCK,
  ) {}

  /** One socket read (call it from every data callback). */
  read(): void {
    this.turnReads++;
    if (this.armed) return;
    this.armed = true;
    this.clock.afterIo(this.endTurn);
  }

  private readonly endTurn = (): void => {
    this.armed = false;
    const n = this.turnReads;
    this.turnReads = 0;
    const now = this.clock.now();
    if (now - this.winFrom >= RATE_WINDOW_MS) {
      this.winRate = this.winReads / (now - this.winFrom);
      this.winFrom = now;
      this.winReads = 0;
    }
    this.winReads += n;
    if (this.napUs > 0 && n < TRICKLE_BATCH && this.winRate > TRICKLE_READS_PER_MS) {
      this.naps++;
      this.clock.nap(this.napUs / 1000);
    }
  };
}
