/**
 * A full garbage collection for a worker thread's isolate once it goes quiet after work.
 *
 * Why: V8 runs no memory reducer for a worker thread's isolate. The store writer thread's
 * appends and acks leave ~1 KB of garbage each in its old space, collected only when the
 * heap reaches its next limit: a sawtooth of up to ~5 MB per gateway worker (~250 B per
 * connection at 12,000 a worker) under a trickle of durable pushes. One full GC of that
 * ~5 MB heap takes a few ms of the thread's own time, never the event loop's.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** V8's gc() for the calling isolate; null where the flag cannot be set. */
export function exposeGc(): (() => void) | null {
  try {
    // --expose-gc only adds gc() to contexts created afterwards: a new one hands it over.
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}

export interface IdleCollectorOptions {
  /** Units of work (writes) since the last collection before another is worth it. */
  afterWork: number;
  /** How long no work must have come before collecting, ms. */
  quietMs: number;
}

export const IDLE_GC_DEFAULTS: IdleCollectorOptions = { afterWork: 200, quietMs: 300 };

/** Counts work and collects at a quiet moment once enough has been done; tick() decides. */
export class IdleCollector {
  private work = 0;
  private lastAt = 0;
  collections = 0;

  constructor(
    private readonly gc: () => void,
    private readonly opts: IdleCollectorOptions = IDLE_GC_DEFAULTS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  worked(n: number): void {
    this.work += n;
    this.lastAt = this.now();
  }

  /** Collects if enough work was done and none for quietMs; true when it collected. */
  tick(): boolean {
    if (this.work < this.opts.afterWork || this.now() - this.lastAt < this.opts.quietMs) return false;
    this.work = 0;
    this.collections++;
    this.gc();
    return true;
  }
}
