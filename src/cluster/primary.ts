/**
 * The node:cluster primary: picks concrete ports, forks one worker per core,
 * restarts a crashed worker with backoff (logging why it died), tells the others
 * so they forget its sessions, aggregates metrics, and drains on SIGTERM.
 */
import cluster, { type Worker } from 'node:cluster';
import { mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { GeneratedSecrets } from '../config/secrets';
import { resumePorts as computeResumePorts } from '../config/ports';
import type { Config } from '../config/types';
import { installPrimaryMetricsResponder } from '../metrics/cluster';
import { getLogger, initLogger } from '../util/log';
import { type ToPrimary, type ToWorker, type WorkerSpec, isMoorMessage } from './messages';

const RESTART_BASE_MS = 200;
const RESTART_MAX_MS = 30_000;
/** A worker that lived this long resets its restart backoff. */
const STABLE_MS = 60_000;

/** A free TCP port on `host` (for ports configured as 0), found by binding port 0. */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function freePorts(host: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await freePort(host));
  return out;
}

interface Slot {
  worker: Worker | null;
  startedAt: number;
  failures: number;
  listening: boolean;
  conns: [number, number];
}

export async function runPrimary(config: Config, generated: GeneratedSecrets): Promise<void> {
  initLogger({ level: config.log.level, node: config.node.id });
  const log = getLogger('primary');
  if (generated.jwtSecret || generated.apiKey) {
    // Shown once; they are kept under store.path so restarts and `moor token` reuse them.
    if (generated.apiKey) process.stderr.write(`moor: generated API key: ${generated.apiKey}\n`);
    if (generated.jwtSecret) process.stderr.write(`moor: generated device JWT secret: ${generated.jwtSecret}\n`);
  }

  const resolved: Config = structuredClone(config);
  if (resolved.ws.port === 0) resolved.ws.port = await freePort(resolved.ws.host);
  if (resolved.api.port === 0) resolved.api.port = await freePort(resolved.api.host);
  const resumePorts = resolved.ws.resume_port_base === 0 && config.ws.port === 0 ? await freePorts(resolved.ws.host, resolved.workers) : computeResumePorts(resolved);
  const meshDir = path.join(os.tmpdir(), `moor-${process.pid}`);
  mkdirSync(meshDir, { recursive: true, mode: 0o700 });

  const metrics = installPrimaryMetricsResponder();
  cluster.setupPrimary({ exec: path.join(__dirname, 'worker-main.js'), args: [] });
  const slots: Slot[] = Array.from({ length: resolved.workers }, () => ({ worker: null, startedAt: 0, failures: 0, listening: false, conns: [0, 0] }));
  let shuttingDown = false;
  let announced = false;

  const fork = (index: number): void => {
    const spec: WorkerSpec = { index, config: resolved, resumePorts, meshDir };
    const w = cluster.fork({ MOOR_WORKER: JSON.stringify(spec) });
    const slot = slots[index];
    slot.worker = w;
    slot.startedAt = Date.now();
    slot.listening = false;
    w.on('message', (m: unknown) => {
      if (!isMoorMessage(m)) return;
      const msg = m as ToPrimary;
      if (msg.type === 'moor:listening') {
        slot.listening = true;
        if (!announced && slots.every((s) => s.listening)) {
          announced = true;
          log.info(
            { ws: resolved.ws.port, ws_path: resolved.ws.path, tcp: resolved.tcp.port, api: resolved.api.port, api_host: resolved.api.host, resume: resumePorts, workers: resolved.workers, store: resolved.store.kind },
            'moor ready',
          );
        } else if (announced) log.info({ worker: index }, 'worker back');
      } else if (msg.type === 'moor:stats') slot.conns = [msg.ws, msg.tcp];
    });
    w.on('exit', (code, signal) => {
      if (slot.worker !== w) return;
      slot.worker = null;
      slot.conns = [0, 0];
      if (shuttingDown) return;
      const lived = Date.now() - slot.startedAt;
      slot.failures = lived > STABLE_MS ? 1 : slot.failures + 1;
      const delay = Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** (slot.failures - 1));
      log.error({ worker: index, code, signal, lived_ms: lived, restart_in_ms: delay }, `worker ${index} died (${signal ?? `exit code ${code}`}); restarting`);
      broadcast({ type: 'moor:peer-down', worker: index });
      setTimeout(() => {
        if (!shuttingDown) fork(index);
      }, delay);
    });
  };

  const broadcast = (m: ToWorker): void => {
    for (const s of slots) if (s.worker?.isConnected()) s.worker.send(m);
  };

  const shutdown = (signal: string): void => {
    if (shuttingDown) return;
    shuttingDown = true;
    const windowMs = resolved.drain.window_ms;
    const graceMs = resolved.drain.grace_ms;
    log.info({ signal, window_ms: windowMs, grace_ms: graceMs }, 'draining');
    broadcast({ type: 'moor:drain', windowMs, graceMs });
    const hardStop = setTimeout(() => {
      log.warn('workers did not drain in time; killing them');
      for (const s of slots) s.worker?.kill('SIGKILL');
    }, graceMs + 10_000);
    hardStop.unref();
    const check = setInterval(() => {
      if (slots.some((s) => s.worker !== null)) return;
      clearInterval(check);
      metrics.uninstall();
      rmSync(meshDir, { recursive: true, force: true });
      log.info('drained; exiting');
      process.exit(0);
    }, 50);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  for (let i = 0; i < resolved.workers; i++) fork(i);
}
