/**
 * What the primary tells systemd (Type=notify): READY=1 once every worker listens,
 * WATCHDOG=1 while the workers are healthy, STATUS= with live connection counts,
 * RELOADING=1/READY=1 around SIGHUP, STOPPING=1 (and a longer stop timeout) on drain.
 * Every call is a no-op without NOTIFY_SOCKET; health is logged either way.
 */
import type { Logger } from 'pino';
import { monotonicUsec, type NotifyFields, sdNotify, watchdogMs } from './sd-notify';

/** How often health and STATUS are looked at (and the watchdog pinged, at most every WATCHDOG_USEC / 4). */
const TICK_MS = 1_000;

export interface SystemdSource {
  /** Why the workers are unhealthy; [] when healthy. */
  problems(now: number): string[];
  /** One line for `systemctl status`. */
  status(): string;
}

export class SystemdLink {
  private readonly watchdogEveryMs: number;
  private timer: NodeJS.Timeout | null = null;
  private ready = false;
  private stopped = false;
  private lastPing = 0;
  private lastStatus = '';
  private unhealthy: string[] = [];
  private failed = false;

  constructor(
    private readonly source: SystemdSource,
    private readonly log: Logger,
  ) {
    const wd = watchdogMs();
    // libsystemd advises half the period; a quarter lets a short blip skip one ping harmlessly.
    this.watchdogEveryMs = wd > 0 ? Math.max(50, wd / 4) : 0;
    if (wd > 0) log.info({ watchdog_ms: wd }, 'systemd watchdog on');
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), Math.min(TICK_MS, this.watchdogEveryMs || TICK_MS));
    this.timer.unref();
    this.tick();
  }

  markReady(): void {
    this.ready = true;
    this.lastStatus = this.source.status();
    this.send({ READY: 1, STATUS: this.lastStatus });
  }

  reloading(): void {
    this.send({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec(), STATUS: 'reloading the configuration' });
  }

  reloaded(): void {
    this.lastStatus = this.source.status();
    this.send({ READY: 1, STATUS: this.lastStatus });
  }

  /** Draining: systemd stops the watchdog and waits `stopMs` (beyond TimeoutStopSec if longer). */
  stopping(stopMs: number): void {
    this.stopped = true;
    this.send({ STOPPING: 1, STATUS: this.source.status(), EXTEND_TIMEOUT_USEC: Math.ceil(stopMs) * 1000 });
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private tick(): void {
    const now = Date.now();
    const problems = this.ready ? this.source.problems(now) : [];
    if (problems.length > 0 && this.unhealthy.length === 0) {
      this.log.warn({ problems }, `workers unhealthy: ${problems.join('; ')}${this.watchdogEveryMs ? ' (systemd watchdog withheld)' : ''}`);
    } else if (problems.length === 0 && this.unhealthy.length > 0) {
      this.log.info('workers healthy again');
    }
    this.unhealthy = problems;
    const fields: Record<string, string | number> = {};
    // Fed unconditionally before READY (TimeoutStartSec guards start-up), never after STOPPING.
    if (this.watchdogEveryMs > 0 && !this.stopped && problems.length === 0 && now - this.lastPing >= this.watchdogEveryMs) {
      fields.WATCHDOG = 1;
      this.lastPing = now;
    }
    const status = this.source.status();
    if (this.ready && status !== this.lastStatus) {
      fields.STATUS = status;
      this.lastStatus = status;
    }
    if (Object.keys(fields).length > 0) this.send(fields);
  }

  private send(fields: NotifyFields): void {
    const r = sdNotify(fields);
    // Said once: systemd will time the service out, and the log should say why.
    if (r.error && !this.failed) this.log.error({ fields: Object.keys(fields) }, `sd_notify failed: ${r.error}`);
    this.failed ||= r.error !== undefined;
  }
}
