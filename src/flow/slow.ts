/**
 * Slow consumers. A session whose unsent bytes stay above a quarter of
 * limits.max_buffered for limits.slow_ms is closed with ERROR OVERLOADED ("slow
 * consumer: … bytes unread for … ms") and a jittered retry hint; its durable pushes
 * wait in the inbox and come with the replay of its next session.
 *
 * Only sessions seen slow are tracked (a Map entry each, nothing per healthy
 * session). They are found two ways: a send that did not go straight out (the
 * gateway's send path calls mark), and a rolling scan of the worker's sessions, a
 * slice per sweep, for WebSocket sessions that uWS publish filled (publish does not
 * say whom it skipped). A sweep runs every second.
 */
import type { Session } from '../gateway/session';
import { SessionState } from '../gateway/session';

/** Sessions whose buffered amount the rolling scan reads per sweep (~50 ns each). */
export const SCAN_PER_SWEEP = 20_000;
export const SWEEP_MS = 1_000;

export interface SlowGateway {
  sessions(): IterableIterator<Session>;
  buffered(s: Session): number;
  /** Close `s` as a slow consumer. */
  closeSlow(s: Session, buffered: number, slowMs: number): void;
  limits(): { max_buffered: number; slow_ms: number };
}

export class SlowTracker {
  private readonly since = new Map<Session, number>();
  private scan: IterableIterator<Session> | null = null;
  closed = 0;
  /** Unsent bytes of the tracked sessions at the last sweep. */
  buffered = 0;

  constructor(private readonly gw: SlowGateway) {}

  get size(): number {
    return this.since.size;
  }

  /** `s` could not take a write at once (or is being spared one). Cheap when already marked. */
  mark(s: Session, now: number): void {
    if (!this.since.has(s)) this.since.set(s, now);
  }

  isSlow(s: Session): boolean {
    return this.since.has(s);
  }

  sweep(now: number): void {
    const { max_buffered, slow_ms } = this.gw.limits();
    const low = max_buffered / 4;
    const high = max_buffered / 2;
    this.scan ??= this.gw.sessions();
    for (let i = 0; i < SCAN_PER_SWEEP; i++) {
      const next = this.scan.next();
      if (next.done) {
        this.scan = null;
        break;
      }
      const s = next.value;
      if (s.state === SessionState.OPEN && this.gw.buffered(s) >= high) this.mark(s, now);
    }
    let held = 0;
    for (const [s, t] of this.since) {
      if (s.state >= SessionState.CLOSING) {
        this.since.delete(s);
        continue;
      }
      const b = this.gw.buffered(s);
      held += b;
      if (b < low) this.since.delete(s);
      else if (now - t >= slow_ms) {
        this.since.delete(s);
        this.closed++;
        this.gw.closeSlow(s, b, now - t);
      }
    }
    this.buffered = held;
  }
}
