/**
 * SIGUSR2: a rolling restart. The workers are replaced one at a time by fresh processes
 * (which load the code now on disk), each old one drained, and the node never stops
 * accepting devices.
 *
 * With two workers or more, the old worker drains first and the others carry its load:
 * it stops listening and sends GOAWAY spread over drain.window_ms, so its devices come
 * back through the shared ports to the other workers. It keeps serving its directory
 * shard meanwhile; once its devices are gone its successor starts, and the old one exits
 * only when the new one listens, so shard i is missing only while the peers redial the
 * mesh (~50 ms; they then re-register their devices with it, gateway.ts onPeerUp).
 * Starting the new one first instead would put two processes behind one index: resume
 * port i would split its accepts between them, and two directory shards for one index
 * would each see only the registrations of the peers that happened to dial it.
 *
 * With one worker nobody could carry the load, so there the new worker starts first (the
 * WebSocket ports are SO_REUSEPORT, the TCP port is the cluster's shared handle) and the
 * old one drains after. Pushes routed meanwhile by the new worker do not see the old
 * one's devices: durable ones wait in the inbox until those devices reconnect.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/types';
import type { WorkerPool, WorkerProc } from './pool';

/** Start-up includes waiting up to 10 s for the mesh. */
const START_TIMEOUT_MS = 60_000;
/** Beyond window + grace, for the store flush and the exit itself. */
const DRAIN_SLACK_MS = 10_000;
const FOREVER_MS = 2 ** 31 - 1;

export interface RollContext {
  pool: WorkerPool;
  log: Logger;
  /** drain.window_ms and drain.grace_ms are read here at each step (they reload live). */
  config: Config;
  stopping(): boolean;
  /** What `systemctl status` should say meanwhile ('' when done). */
  progress(text: string): void;
}

export async function rollingRestart(ctx: RollContext): Promise<boolean> {
  const { pool, log } = ctx;
  const n = pool.slots.length;
  const began = Date.now();
  log.info({ workers: n, window_ms: ctx.config.drain.window_ms }, 'rolling restart: begins');
  try {
    for (let i = 0; i < n; i++) {
      if (ctx.stopping()) return false;
      ctx.progress(`rolling restart: worker ${i + 1}/${n}`);
      const ok = n === 1 ? await replaceNewFirst(ctx, i, began) : await replaceDrainFirst(ctx, i, began);
      if (!ok) {
        if (!ctx.stopping()) log.error({ worker: i }, `rolling restart aborted at worker ${i}; the workers not yet replaced keep running`);
        return false;
      }
    }
  } finally {
    ctx.progress('');
  }
  log.info({ duration_ms: Date.now() - began }, 'rolling restart: done');
  return true;
}

/**
 * The slot's listening worker, unless it started after the roll began (a crash restart
 * already runs the new code); null when there is nothing to replace.
 */
async function oldWorker(ctx: RollContext, i: number, began: number): Promise<WorkerProc | null> {
  const slot = ctx.pool.slots[i];
  await ctx.pool.until(() => (slot.current?.listening ? true : null), START_TIMEOUT_MS);
  const p = slot.current;
  return p?.listening && p.startedAt < began ? p : null;
}

function drainTimeout(config: Config): number {
  return config.drain.window_ms + config.drain.grace_ms + DRAIN_SLACK_MS;
}

async function replaceDrainFirst(ctx: RollContext, i: number, began: number): Promise<boolean> {
  const { pool, log, config } = ctx;
  const slot = pool.slots[i];
  const old = await oldWorker(ctx, i, began);
  if (old === null) return slot.current?.listening === true;
  slot.current = null;
  slot.retiring = old;
  old.retiring = true;
  log.info({ worker: i, worker_pid: old.pid }, `rolling restart: draining worker ${i}`);
  old.send({ type: 'moor:drain', windowMs: config.drain.window_ms, graceMs: config.drain.grace_ms, mode: 'roll', hold: true });
  if (!(await pool.until(() => (old.drained || old.exited ? true : null), drainTimeout(config)))) {
    log.warn({ worker: i, worker_pid: old.pid }, `rolling restart: worker ${i} did not drain in time; killing it`);
    old.kill('SIGKILL');
    await pool.whenExited(old, 5_000);
  }
  // Gone early (crash or kill): its directory entries are stale before its successor registers any.
  if (old.exited) pool.broadcast({ type: 'moor:peer-down', worker: i });
  if (ctx.stopping()) return false;
  const fresh = pool.fork(i);
  const up = await pool.whenListening(fresh, START_TIMEOUT_MS);
  if (up) {
    old.send({ type: 'moor:retire' });
    if (!(await pool.whenExited(old, DRAIN_SLACK_MS))) old.kill('SIGKILL');
    log.info({ worker: i, worker_pid: fresh.pid }, `rolling restart: worker ${i} replaced`);
    return true;
  }
  // The new code does not start: the pool keeps restarting it with backoff, and the old
  // process keeps directory shard i until one of them listens.
  if (ctx.stopping()) return false;
  log.error({ worker: i }, `rolling restart: the new worker ${i} did not start within ${START_TIMEOUT_MS / 1000} s`);
  pool.until(() => (slot.current?.listening || old.exited || pool.stopping ? true : null), FOREVER_MS).then(() => old.send({ type: 'moor:retire' }));
  return false;
}

async function replaceNewFirst(ctx: RollContext, i: number, began: number): Promise<boolean> {
  const { pool, log, config } = ctx;
  const slot = pool.slots[i];
  const old = await oldWorker(ctx, i, began);
  if (old === null) return slot.current?.listening === true;
  slot.retiring = old;
  old.retiring = true;
  const fresh = pool.fork(i);
  if (!(await pool.whenListening(fresh, START_TIMEOUT_MS))) {
    // Back to the old worker; detached first, so the pool does not restart the failed one.
    slot.current = old;
    slot.retiring = null;
    old.retiring = false;
    fresh.kill('SIGKILL');
    log.error({ worker: i }, `rolling restart: the new worker ${i} did not start within ${START_TIMEOUT_MS / 1000} s; the old one keeps serving`);
    return false;
  }
  log.info({ worker: i, worker_pid: old.pid }, `rolling restart: new worker ${i} listens; draining the old one`);
  old.send({ type: 'moor:drain', windowMs: config.drain.window_ms, graceMs: config.drain.grace_ms, mode: 'roll', hold: false });
  if (!(await pool.whenExited(old, drainTimeout(config)))) {
    log.warn({ worker: i, worker_pid: old.pid }, `rolling restart: the old worker ${i} did not drain in time; killing it`);
    old.kill('SIGKILL');
  }
  log.info({ worker: i, worker_pid: fresh.pid }, `rolling restart: worker ${i} replaced`);
  return true;
}
