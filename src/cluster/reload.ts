/**
 * SIGHUP: re-read the config exactly as at start (same file, flags and environment),
 * apply what may change live, refuse by name what needs a restart and keep its running
 * value, and keep everything as it was when the new config is invalid.
 */
import type { Logger } from 'pino';
import { ConfigError, formatIssues } from '../config/errors';
import { CONFIG_KEYS, type ConfigKey, getKey, reloadPlan, setKey, specOf } from '../config/schema';
import type { Config } from '../config/types';
import { setLogLevel } from '../util/log';
import type { LiveValues, ToWorker } from './messages';
import type { WorkerPool } from './pool';

/** How long workers get to confirm a reload before it is reported without them. */
const ACK_TIMEOUT_MS = 5_000;

export interface ReloadContext {
  pool: WorkerPool;
  log: Logger;
  /** The config as loaded and last reloaded (ports as configured, 0 included). */
  running: Config;
  /** What workers are forked with (concrete ports): live keys are updated here too. */
  resolved: Config;
  /** Loads the config as `moor serve` did at start; throws ConfigError. */
  load: () => Config;
}

export interface ReloadOutcome {
  ok: boolean;
  applied: ConfigKey[];
  refused: ConfigKey[];
}

let generation = 0;
let last: ToWorker | null = null;

/**
 * The last reload's message, for a worker that starts listening afterwards: one forked
 * before the reload (a crash restart under way) never saw it.
 */
export function lastReload(): ToWorker | null {
  return last;
}

/** Every live key's current value: a worker applies them all, idempotently. */
export function liveValues(config: Config): LiveValues {
  const out: LiveValues = {};
  for (const key of CONFIG_KEYS) if (specOf(key).live) out[key] = getKey(config, key);
  return out;
}

/** A value fit for the log: secrets are never echoed. */
function shown(key: ConfigKey, value: unknown): unknown {
  return specOf(key).secret ? '(secret)' : value;
}

export async function reloadConfig(ctx: ReloadContext): Promise<ReloadOutcome> {
  const { log, running, resolved, pool } = ctx;
  let next: Config;
  try {
    next = ctx.load();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const issues = err.errors.map((e) => ({ key: e.key, message: e.message, hint: e.hint, source: e.source }));
    log.error({ issues }, `reload refused: the new config has ${issues.length} error${issues.length === 1 ? '' : 's'}; still running on the old one\n${formatIssues(err.errors)}`);
    return { ok: false, applied: [], refused: [] };
  }
  const plan = reloadPlan(running, next);
  for (const key of plan.restart) {
    log.warn(
      { key, running: shown(key, getKey(running, key)), configured: shown(key, getKey(next, key)) },
      `reload: ${key} cannot change while running (restart moor to apply it); keeping the running value`,
    );
  }
  for (const key of plan.live) {
    setKey(running, key, getKey(next, key));
    setKey(resolved, key, getKey(next, key));
  }
  // A renewed certificate keeps its path: TLS files are re-read on every reload.
  const changed = [...plan.live];
  if (resolved.tls.cert !== '') for (const k of ['tls.cert', 'tls.key'] as const) if (!changed.includes(k)) changed.push(k);

  const gen = ++generation;
  const targets = pool.procs().filter((p) => p.listening && !p.retiring);
  last = { type: 'moor:reload', generation: gen, live: liveValues(resolved), changed };
  for (const p of pool.procs()) p.send(last);
  const acked = await pool.until(() => (targets.every((p) => p.exited || p.generation >= gen) ? true : null), ACK_TIMEOUT_MS);
  const missing = targets.filter((p) => !p.exited && p.generation < gen).map((p) => p.index);
  // Whether the files' contents changed only the workers know: each logs "tls certificate reloaded" when they did.
  const tls = resolved.tls.cert !== '';
  const reread = tls ? { reread: ['tls.cert', 'tls.key'] } : {};
  const tlsNote = tls ? '; TLS certificate and key files re-read by the workers' : '';
  const fields = { applied: plan.live, refused: plan.restart, ...reread, ...(acked ? {} : { not_confirmed_by: missing }) };
  if (plan.live.length === 0 && plan.restart.length === 0) log.info(fields, `config reloaded: nothing changed in the config${tlsNote}`);
  else log.info(fields, `config reloaded: applied ${plan.live.join(', ') || 'nothing'}${plan.restart.length ? `; refused (restart needed) ${plan.restart.join(', ')}` : ''}${tlsNote}`);
  if (!acked) log.warn({ workers: missing }, 'reload: some workers did not confirm the new values in time');
  // Last, so a quieter level still lets the outcome above through.
  setLogLevel(resolved.log.level);
  return { ok: true, applied: plan.live, refused: plan.restart };
}
