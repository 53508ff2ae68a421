/**
 * The device side of the heartbeat: a PING every interval (from WELCOME, or a later
 * PONG's HeartbeatAdvice), and a deadline for the PONG; a server that misses it is
 * taken for dead. Two timers per client, none per frame.
 */
export class Heartbeat {
  private pingTimer: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private interval = 0;
  private running = false;

  constructor(
    private readonly sendPing: () => void,
    private readonly onDead: () => void,
    private readonly pongTimeoutMs: number,
  ) {}

  /** The interval in use, ms (0 before start). */
  get intervalMs(): number {
    return this.interval;
  }

  start(intervalMs: number): void {
    this.stop();
    this.interval = intervalMs;
    this.running = true;
    this.schedule();
  }

  /** A PONG arrived; adviceMs > 0 is a new interval, counted from now. */
  pong(adviceMs = 0): void {
    if (this.deadline !== null) clearTimeout(this.deadline);
    this.deadline = null;
    if (adviceMs > 0 && adviceMs !== this.interval && this.running) {
      this.interval = adviceMs;
      if (this.pingTimer !== null) clearTimeout(this.pingTimer);
      this.schedule();
    }
  }

  stop(): void {
    this.running = false;
    if (this.pingTimer !== null) clearTimeout(this.pingTimer);
    if (this.deadline !== null) clearTimeout(this.deadline);
    this.pingTimer = null;
    this.deadline = null;
  }

  private schedule(): void {
    this.pingTimer = setTimeout(() => {
      this.sendPing();
      if (!this.running) return;
      // An unanswered earlier PING keeps its deadline: the server is as late as the oldest one.
      this.deadline ??= setTimeout(() => {
        this.stop();
        this.onDead();
      }, this.pongTimeoutMs);
      this.schedule();
    }, this.interval);
  }
}
