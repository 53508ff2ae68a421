/**
 * The primary's workers, one slot per index: forking, restarting a dead one with backoff
 * (logging why it died), what they report (listening, connection counts, drained) and
 * whether they are healthy. During a rolling restart a slot also holds its retiring worker.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { isMoorMessage, STATS_INTERVAL_MS, type ToPrimary, type ToWorker, type WorkerSpec } from './messages';
import { SYSTEMD_ENV } from './sd-notify';

const RESTART_BASE_MS = 200;
const RESTART_MAX_MS = 30_000;
/** A worker that lived this long resets its restart backoff. */
const STABLE_MS = 60_000;
/** A listening worker silent this long is unhealthy (the systemd watchdog is withheld)... */
export const STALE_MS = 5 * STATS_INTERVAL_MS;
/** ...and this long, its event loop is taken for blocked: it is killed and restarted. */
export const HUNG_MS = 20_000;

export class WorkerProc {
  readonly startedAt = Date.now();
  listening = false;
  drained = false;
  exited = false;
  /** Being replaced (rolling restart): its exit is expected. */
  retiring = false;
  killed = false;
  lastReport = 0;
  /** Last config generation it applied. */
  generation = 0;
  ws = 0;
  tcp = 0;

  constructor(
    readonly index: number,
    readonly worker: Worker,
  ) {}

  get pid(): number | undefined {
    return this.worker.process.pid;
  }

  send(m: ToWorker): void {
    if (this.exited || !this.worker.isConnected()) return;
    try {
      // With a callback, a channel that closed meanwhile (EPIPE: the worker is exiting,
      // e.g. a SIGTERM sent to the whole process group) is reported here, not as an
      // 'error' event that would end the primary. Its exit is on the way either way.
      this.worker.send(m, undefined, undefined, () => {});
    } catch {
      // the channel closed between the check and the send
    }
  }

  kill(signal: NodeJS.Signals): void {
    if (this.exited) return;
    this.killed = true;
    this.worker.process.kill(signal);
  }
}

interface Slot {
  current: WorkerProc | null;
  retiring: WorkerProc | null;
  failures: number;
  restart: NodeJS.Timeout | null;
}

export class WorkerPool {
  readonly slots: Slot[];
  /** Set when shutting down: dead workers stay dead. */
  stopping = false;
  /** Called once, when every slot first has a listening worker. */
  onReady: () => void = () => {};
  /** Called whenever a worker starts listening. */
  onListening: (p: WorkerProc) => void = () => {};
  private ready = false;
  private readonly watchers = new Set<() => void>();
  private hungTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly spec: (index: number) => WorkerSpec,
    count: number,
    private readonly log: Logger,
  ) {
    this.slots = Array.from({ length: count }, () => ({ current: null, retiring: null, failures: 0, restart: null }));
  }

  start(): void {
    for (let i = 0; i < this.slots.length; i++) this.fork(i);
    this.hungTimer = setInterval(() => this.killHung(Date.now()), STATS_INTERVAL_MS);
    this.hungTimer.unref();
  }

  /** A new worker for `index`; it becomes the slot's current one. */
  fork(index: number): WorkerProc {
    const env: Record<string, string | undefined> = { MOOR_WORKER: JSON.stringify(this.spec(index)) };
    // undefined drops a variable from the child's environment: only the primary talks to systemd.
    for (const k of SYSTEMD_ENV) env[k] = undefined;
    // glibc gives each thread (libuv pool, lmdb, piscina) its own malloc arena; after a
    // connect storm they keep ~4 MB per worker (1.3-2.6 MB with two arenas). One arena
    // keeps none of it; glibc's per-thread caches keep the shared lock off the hot path,
    // and the main thread (uWS) does nearly all the allocating anyway (docs/memory.md).
    if (process.env.MALLOC_ARENA_MAX === undefined) env.MALLOC_ARENA_MAX = '1';
    const p = new WorkerProc(index, cluster.fork(env));
    const slot = this.slots[index];
    if (slot.restart) clearTimeout(slot.restart);
    slot.restart = null;
    slot.current = p;
    p.worker.on('message', (m: unknown) => {
      if (isMoorMessage(m)) this.onMessage(p, m as ToPrimary);
    });
    p.worker.on('exit', (code, signal) => this.onExit(p, code, signal));
    // IPC errors (a send racing the worker's exit) are not the primary's end: 'exit' follows.
    p.worker.on('error', (err: Error) => this.log.debug({ err, worker: index }, 'worker channel error'));
    return p;
  }

  /** Every live worker process, retiring ones included. */
  procs(): WorkerProc[] {
    const out: WorkerProc[] = [];
    for (const s of this.slots) {
      if (s.current) out.push(s.current);
      if (s.retiring) out.push(s.retiring);
    }
    return out;
  }

  /** To every slot's current worker (peer-down and the like). */
  broadcast(m: ToWorker): void {
    for (const s of this.slots) s.current?.send(m);
  }

  /** Connections held, retiring workers included. */
  connections(): { ws: number; tcp: number } {
    let ws = 0;
    let tcp = 0;
    for (const p of this.procs()) {
      ws += p.ws;
      tcp += p.tcp;
    }
    return { ws, tcp };
  }

  /** Why the workers are not healthy, or [] when every slot has a listening worker that reports. */
  problems(now: number): string[] {
    const out: string[] = [];
    this.slots.forEach((s, i) => {
      const serving = [s.current, s.retiring].filter((p): p is WorkerProc => p?.listening === true);
      if (serving.length === 0) out.push(`worker ${i} ${s.current ? 'is starting' : 'is not running'}`);
      else if (serving.every((p) => now - p.lastReport > STALE_MS)) {
        const silent = Math.min(...serving.map((p) => now - p.lastReport));
        out.push(`worker ${i} has not reported for ${Math.round(silent / 1000)} s`);
      }
    });
    return out;
  }

  /**
   * Resolves true once `check` says so, false when it says so or after `timeoutMs`.
   * `check` runs now and after every message or exit of any worker; null means "not yet".
   */
  until(check: () => boolean | null, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.watchers.delete(run);
        resolve(ok);
      };
      const run = (): void => {
        const r = check();
        if (r !== null) done(r);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.watchers.add(run);
      run();
    });
  }

  /** True once `p` listens; false if it exits first or takes longer than `timeoutMs`. */
  whenListening(p: WorkerProc, timeoutMs: number): Promise<boolean> {
    return this.until(() => (p.listening ? true : p.exited ? false : null), timeoutMs);
  }

  whenExited(p: WorkerProc, timeoutMs: number): Promise<boolean> {
    return this.until(() => (p.exited ? true : null), timeoutMs);
  }

  /** Stops the hung-worker check (shutdown). */
  close(): void {
    if (this.hungTimer) clearInterval(this.hungTimer);
    for (const s of this.slots) if (s.restart) clearTimeout(s.restart);
  }

  private onMessage(p: WorkerProc, m: ToPrimary): void {
    switch (m.type) {
      case 'moor:listening':
        // Stopped (SIGTERM) while it was starting, it began listening meanwhile, and
        // listening workers ignore SIGTERM (worker.ts): it holds no devices yet.
        if (this.stopping && p.killed) return void p.kill('SIGKILL');
        p.listening = true;
        p.lastReport = Date.now();
        this.onListening(p);
        if (this.ready) this.log.info({ worker: p.index, worker_pid: p.pid }, 'worker back');
        else if (this.slots.every((s) => s.current?.listening)) {
          this.ready = true;
          this.onReady();
        }
        break;
      case 'moor:stats':
        p.lastReport = Date.now();
        p.ws = m.ws;
        p.tcp = m.tcp;
        break;
      case 'moor:drained':
        p.drained = true;
        break;
      case 'moor:reloaded':
        p.generation = m.generation;
        break;
    }
    for (const w of [...this.watchers]) w();
  }

  private onExit(p: WorkerProc, code: number | null, signal: string | null): void {
    p.exited = true;
    p.ws = p.tcp = 0;
    const slot = this.slots[p.index];
    if (slot.retiring === p) slot.retiring = null;
    else if (slot.current === p) {
      slot.current = null;
      if (!this.stopping && !p.retiring) this.restartLater(p, code, signal);
    }
    for (const w of [...this.watchers]) w();
  }

  private restartLater(p: WorkerProc, code: number | null, signal: string | null): void {
    const slot = this.slots[p.index];
    const lived = Date.now() - p.startedAt;
    slot.failures = lived > STABLE_MS ? 1 : slot.failures + 1;
    const delay = Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** (slot.failures - 1));
    const why = signal ?? `exit code ${code}`;
    this.log.error({ worker: p.index, worker_pid: p.pid, code, signal, lived_ms: lived, restart_in_ms: delay }, `worker ${p.index} died (${why}); restarting`);
    this.broadcast({ type: 'moor:peer-down', worker: p.index });
    slot.restart = setTimeout(() => {
      slot.restart = null;
      if (!this.stopping && slot.current === null) this.fork(p.index);
    }, delay);
  }

  /** A listening worker whose reports stopped has a blocked event loop: only a restart helps. */
  private killHung(now: number): void {
    if (this.stopping) return;
    for (const p of this.procs()) {
      if (!p.listening || p.killed || now - p.lastReport <= HUNG_MS) continue;
      this.log.error({ worker: p.index, worker_pid: p.pid, silent_ms: now - p.lastReport }, `worker ${p.index} stopped reporting (event loop blocked?); killing it`);
      p.kill('SIGKILL');
    }
  }
}

export type { Worker };
