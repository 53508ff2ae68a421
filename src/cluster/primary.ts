/**
 * The node:cluster primary: picks concrete ports, forks one worker per core (pool.ts),
 * talks to systemd (systemd.ts), and turns signals into operations:
 *   SIGTERM / SIGINT  drain every worker, flush, exit 0 (a second SIGINT stops at once)
 *   SIGHUP            reload the config (reload.ts)
 *   SIGUSR2           rolling restart of the workers (roll.ts)
 */
import cluster from 'node:cluster';
import { mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resumePorts as computeResumePorts } from '../config/ports';
import type { GeneratedSecrets } from '../config/secrets';
import type { Config } from '../config/types';
import { installPrimaryMetricsResponder } from '../metrics/cluster';
import { TicketKeyService } from '../tls/primary';
import { getLogger, initLogger } from '../util/log';
import { freePort } from '../util/ports';
import { WorkerPool } from './pool';
import { lastReload, reloadConfig } from './reload';
import { rollingRestart } from './roll';
import { SystemdLink } from './systemd';

/** Beyond window + grace before workers that have not exited are killed. */
const HARD_STOP_SLACK_MS = 10_000;

export interface PrimaryOptions {
  /** Loads the config again exactly as at start (same file, flags, environment), for SIGHUP. */
  reload?: () => Config;
}

/** Ports configured as 0 get concrete ones here, distinct from each other: none is bound until the workers start. */
async function freePorts(host: string, n: number, taken: Set<number>): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) {
    const port = await freePort(host);
    if (taken.has(port)) continue;
    taken.add(port);
    out.push(port);
  }
  return out;
}

export async function runPrimary(config: Config, generated: GeneratedSecrets, opts: PrimaryOptions = {}): Promise<void> {
  initLogger({ level: config.log.level, node: config.node.id });
  const log = getLogger('primary');
  if (generated.jwtSecret || generated.apiKey) {
    // Shown once; they are kept under store.path so restarts and `moor token` reuse them.
    if (generated.apiKey) process.stderr.write(`moor: generated API key: ${generated.apiKey}\n`);
    if (generated.jwtSecret) process.stderr.write(`moor: generated device JWT secret: ${generated.jwtSecret}\n`);
  }

  /** As loaded (ports as configured): what SIGHUP compares the new config with. */
  const running: Config = structuredClone(config);
  /** What workers are forked with: concrete ports. */
  const resolved: Config = structuredClone(config);
  const taken = new Set([resolved.ws.port, resolved.api.port, resolved.tcp.port]);
  if (resolved.ws.port === 0) [resolved.ws.port] = await freePorts(resolved.ws.host, 1, taken);
  if (resolved.api.port === 0) [resolved.api.port] = await freePorts(resolved.api.host, 1, taken);
  const resumePorts = resolved.ws.resume_port_base === 0 && config.ws.port === 0 ? await freePorts(resolved.ws.host, resolved.workers, taken) : computeResumePorts(resolved);
  const meshDir = path.join(os.tmpdir(), `moor-${process.pid}`);
  mkdirSync(meshDir, { recursive: true, mode: 0o700 });

  const metrics = installPrimaryMetricsResponder();
  cluster.setupPrimary({ exec: path.join(__dirname, 'worker-main.js'), args: [], execArgv: workerExecArgv(process.execArgv, process.env.NODE_OPTIONS) });
  // TLS session-ticket keys for every worker's raw TCP listener (src/tls/primary.ts); null without TLS.
  TicketKeyService.start(resolved, getLogger('tls'));
  // Fleet mode tells this node's boots apart by it (presence entries of older boots are cleaned up).
  const boot = Date.now().toString(36);
  const pool = new WorkerPool((index) => ({ index, config: resolved, resumePorts, meshDir, boot }), resolved.workers, log);

  let phase = '';
  let draining = false;
  let forced = false;
  let rolling = false;
  let reloading: Promise<unknown> | null = null;
  let reloadAgain = false;

  const status = (): string => {
    const { ws, tcp } = pool.connections();
    const up = pool.slots.filter((s) => s.current?.listening).length;
    return `${phase ? `${phase}; ` : ''}${ws + tcp} connections (ws ${ws}, tcp ${tcp}); ${up}/${pool.slots.length} workers listening`;
  };
  const systemd = new SystemdLink({ problems: (now) => pool.problems(now), status }, log);

  pool.onListening = (p) => {
    const reloaded = lastReload();
    if (reloaded) p.send(reloaded);
  };
  pool.onReady = () => {
    log.info(
      { ws: resolved.ws.port, ws_path: resolved.ws.path, tcp: resolved.tcp.port, api: resolved.api.port, api_host: resolved.api.host, resume: resumePorts, workers: resolved.workers, store: resolved.store.kind },
      'moor ready',
    );
    systemd.markReady();
  };

  const shutdown = (signal: string): void => {
    if (draining) {
      if (signal !== 'SIGINT') return void log.info({ signal }, 'already draining');
      log.warn('second SIGINT: stopping without waiting for the drain');
      forced = true;
      for (const p of pool.procs()) p.kill('SIGKILL');
      return;
    }
    draining = true;
    pool.stopping = true;
    const { window_ms: windowMs, grace_ms: graceMs } = resolved.drain;
    const stopMs = windowMs + graceMs + HARD_STOP_SLACK_MS;
    phase = 'draining';
    log.info({ signal, window_ms: windowMs, grace_ms: graceMs }, 'draining');
    systemd.stopping(stopMs);
    for (const p of pool.procs()) {
      if (!p.listening) {
        // Still starting: it holds no device, and may not have its message handler yet.
        p.kill('SIGTERM');
        continue;
      }
      p.send({ type: 'moor:drain', windowMs, graceMs, mode: 'shutdown', hold: false });
      // A retiring worker of a rolling restart may be holding for its successor.
      if (p.retiring) p.send({ type: 'moor:retire' });
    }
    const hardStop = setTimeout(() => {
      log.warn('workers did not drain in time; killing them');
      forced = true;
      for (const p of pool.procs()) p.kill('SIGKILL');
    }, stopMs);
    hardStop.unref();
    pool.until(() => (pool.procs().length === 0 ? true : null), 2 ** 31 - 1).then(() => {
      clearTimeout(hardStop);
      pool.close();
      systemd.close();
      metrics.uninstall();
      rmSync(meshDir, { recursive: true, force: true });
      log.info({ forced }, forced ? 'stopped (workers were killed)' : 'drained; exiting');
      // pino writes stdout synchronously (pino.destination(1)), so nothing is lost here.
      process.exit(forced ? 1 : 0);
    });
  };

  const reload = (): void => {
    if (draining) return void log.info('SIGHUP while draining: ignored');
    if (!opts.reload) return void log.warn('SIGHUP: this primary was started without a way to re-read its config');
    if (reloading) {
      reloadAgain = true;
      return;
    }
    const load = opts.reload;
    systemd.reloading();
    log.info('SIGHUP: reloading the config');
    reloading = reloadConfig({ pool, log, running, resolved, load })
      .catch((err: unknown) => log.error({ err }, 'reload failed; still running on the old config'))
      .finally(() => {
        reloading = null;
        // SIGTERM may have come meanwhile: READY=1 after STOPPING=1 would confuse systemd.
        if (!draining) systemd.reloaded();
        if (reloadAgain) {
          reloadAgain = false;
          reload();
        }
      });
  };

  const roll = (): void => {
    if (draining) return void log.info('SIGUSR2 while draining: ignored');
    if (rolling) return void log.info('SIGUSR2: a rolling restart is already running');
    rolling = true;
    rollingRestart({ pool, log, config: resolved, stopping: () => draining, progress: (text) => (phase = draining ? 'draining' : text) })
      .catch((err: unknown) => log.error({ err }, 'rolling restart failed'))
      .finally(() => {
        rolling = false;
      });
  };

  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', reload);
  process.on('SIGUSR2', roll);

  systemd.start();
  pool.start();
}

/**
 * V8 flags for workers. A connect storm grows V8's young generation to its default cap
 * (3 x 16 MB semi-spaces), and V8 gives it back only when its memory reducer runs, 15 to
 * 60+ s later: ~2 KB per session at 15,000 sessions (docs/memory.md). Workers allocate
 * little that lives long, so smaller semi-spaces cost a few more scavenges and keep the
 * fixed part of RSS down. An operator's own setting (node flags or NODE_OPTIONS) wins.
 */
export function workerExecArgv(execArgv: readonly string[], nodeOptions = ''): string[] {
  const own = (f: string) => execArgv.some((a) => a.startsWith(f)) || nodeOptions.includes(f);
  const out = [...execArgv];
  if (!own('--max-semi-space-size')) out.push('--max-semi-space-size=2');
  return out;
}
