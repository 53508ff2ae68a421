/**
 * A worker process: one event loop holding its devices from accept to close, with
 * the WebSocket listener (shared port + its own resume port), the raw TCP listener,
 * the HTTP API, its directory shard and its mesh links.
 */
import { createApiServer } from '../api/server';
import { hostPort } from '../config/hosts';
import type { Config } from '../config/types';
import { TokenVerifier } from '../gateway/auth';
import { WorkerBackend } from '../gateway/backend';
import { Fleet } from '../gateway/fleet';
import { Gateway } from '../gateway/gateway';
import { installWorkerMetrics, requestClusterMetrics } from '../metrics/cluster';
import { getMetrics } from '../metrics/registry';
import { openStore } from '../store';
import { openDeviceListeners } from '../tls/listeners';
import { UpstreamForwarder } from '../upstream/forwarder';
import { trimHeapAfterMajorGc } from '../util/heap-trim';
import { getLogger, initLogger } from '../util/log';
import { ADMIT_AFTER_CLOSE_MS, drainSessions } from './drain';
import { applyLive } from './live';
import { isMoorMessage, STATS_INTERVAL_MS, type ToPrimary, type ToWorker, type WorkerSpec } from './messages';

const SWEEP_INTERVAL_MS = 30_000;

function tell(m: ToPrimary): void {
  process.send?.(m);
}

export async function runWorker(spec: WorkerSpec): Promise<void> {
  const { config, index } = spec;
  initLogger({ level: config.log.level, worker: index, node: config.node.id });
  const log = getLogger('worker');
  const metrics = getMetrics();
  installWorkerMetrics(metrics.registry);

  const store = await openStore(config);
  // Fleet mode: presence and the bus in the store's Redis (docs/fleet.md).
  const fleet = config.store.kind === 'redis' ? await Fleet.open(config, index, spec.boot ?? Date.now().toString(36), store, getLogger('fleet')) : null;
  const verifier = await TokenVerifier.create({ jwtSecret: config.auth.jwt_secret, jwtPublicKey: config.auth.jwt_public_key });
  const forwarder = new UpstreamForwarder({
    url: config.upstream.url,
    timeoutMs: config.upstream.timeout_ms,
    concurrency: config.upstream.concurrency,
    maxBody: config.limits.max_frame - 64,
  });
  const advertise = config.node.advertise;
  const gw = new Gateway({
    config,
    store,
    verifier,
    forwarder,
    metrics,
    log: getLogger('gateway'),
    workerIndex: index,
    workerCount: config.workers,
    meshDir: spec.meshDir,
    resumeEndpoints: [hostPort(advertise, spec.resumePorts[index]), config.tcp.port ? hostPort(advertise, config.tcp.port) : ''],
    fleet,
  });
  await gw.start();

  // Devices only once the mesh is whole and this worker's directory shard is loaded:
  // a (re)started worker that took sessions earlier would register them nowhere and
  // route pushes through an empty shard (peers start in parallel).
  if (!(await gw.mesh.whenAllUp(10_000))) log.warn('not every mesh peer is up yet; accepting devices anyway');
  await gw.loadShard();

  // WebSocket (shared port + this worker's resume port) and raw TCP, plain or TLS (src/tls/).
  const devices = await openDeviceListeners(gw, config, [config.ws.port, spec.resumePorts[index]], getLogger('tls'));

  const backend = new WorkerBackend(gw, {
    metrics: async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: await requestClusterMetrics({ fallback: metrics.registry }) }),
    ready: async () => {
      const reasons: string[] = [];
      if (gw.draining) reasons.push('draining');
      for (let w = 0; w < config.workers; w++) if (!gw.mesh.isUp(w)) reasons.push(`worker ${w} is not up`);
      if (!(await store.ping().catch(() => false))) reasons.push('store unreachable');
      return { ok: reasons.length === 0, reasons };
    },
    dict: (id) => gw.compression.dictBytes(id),
  });
  const api = createApiServer(config, backend, getLogger('api'));
  // Sessions that come and go must not leave their freed memory resident (heap-trim.ts).
  trimHeapAfterMajorGc({ onTrim: (s) => metrics.heapTrim.observe(s) });

  // Worker 0 keeps the shared inbox tidy; the others would only contend for it.
  if (index === 0) {
    const sweep = setInterval(() => {
      store.sweepExpired(Date.now(), 10_000).catch((err) => log.warn({ err }, 'expiry sweep failed'));
      store.depth().then((n) => metrics.setInboxDepth(n), () => {});
    }, SWEEP_INTERVAL_MS);
    sweep.unref();
  }
  // The primary coordinates stopping and reloading: a terminal's Ctrl-C (SIGINT to the
  // whole process group) or `systemctl kill -s HUP|USR2 moor` (every process) must not
  // end a worker. SIGTERM still does until the worker listens (the primary stops a worker
  // that is starting that way); after that, see below.
  for (const sig of ['SIGINT', 'SIGHUP', 'SIGUSR2'] as const) process.on(sig, () => {});

  let draining = false;
  let retire: (() => void) | null = null;
  const retired = new Promise<void>((resolve) => {
    retire = resolve;
  });
  const closeDeviceListeners = (): void => devices.close();
  process.on('message', (m: unknown) => {
    if (!isMoorMessage(m)) return;
    const msg = m as ToWorker;
    switch (msg.type) {
      case 'moor:peer-down':
        gw.peerDown(msg.worker);
        return;
      case 'moor:reload': {
        for (const err of applyLive(config, msg.live, msg.changed)) log.error({ err }, 'a reload listener failed');
        log.info({ changed: msg.changed }, 'config reloaded');
        tell({ type: 'moor:reloaded', index, generation: msg.generation });
        return;
      }
      case 'moor:retire':
        retire?.();
        return;
      case 'moor:drain': {
        if (draining) return;
        draining = true;
        closeDeviceListeners();
        // Shutdown: not ready and no new session, at once. Rolling restart: connections the
        // listeners had already accepted still finish their handshake (drain's second pass
        // sends them GOAWAY) instead of being turned away with a long Retry-After.
        if (msg.mode === 'roll') setTimeout(() => gw.startDraining(), ADMIT_AFTER_CLOSE_MS).unref();
        else gw.startDraining();
        // In a rolling restart the other workers answer the API; on shutdown this one
        // keeps accepting pushes (stored for the devices that left) until it exits.
        if (msg.mode === 'roll') api.close();
        const sessions = gw.hub.size;
        log.info({ mode: msg.mode, sessions, window_ms: msg.windowMs, grace_ms: msg.graceMs }, 'draining');
        drainSessions(gw, msg.windowMs, msg.graceMs)
          .then(async (dropped) => {
            log.info({ sessions, dropped }, 'drained');
            tell({ type: 'moor:drained', index, dropped });
            // Held: this worker keeps its directory shard until its successor listens.
            if (msg.hold) await retired;
            api.close();
            await fleet?.close();
            await store.close().catch((err: unknown) => log.warn({ err }, 'store close failed'));
            process.exit(0);
          })
          .catch((err: unknown) => {
            log.error({ err }, 'drain failed');
            process.exit(1);
          });
        return;
      }
    }
  });
  // Logged first, so this line precedes the primary's "moor ready" in the shared stdout.
  log.info({ ws: config.ws.port, resume: spec.resumePorts[index], tcp: config.tcp.port, api: api.port }, 'worker listening');
  tell({ type: 'moor:listening', index });
  // Listening, the worker leaves SIGTERM to the primary, which drains it (GOAWAY, grace)
  // when it gets one itself: a SIGTERM to the whole process group (a unit without
  // KillMode=mixed, `pkill`, `timeout`) would otherwise drop every device at once, with
  // no GOAWAY, into a reconnect storm. SIGKILL still stops a worker; the primary restarts it.
  process.on('SIGTERM', () => log.info('SIGTERM ignored: the primary drains the workers (send it to the primary)'));
  const stats = setInterval(() => tell({ type: 'moor:stats', index, ws: gw.hub.counts[0], tcp: gw.hub.counts[1] }), STATS_INTERVAL_MS);
  stats.unref();
}

export function parseWorkerSpec(env: NodeJS.ProcessEnv): WorkerSpec {
  const raw = env.MOOR_WORKER;
  if (!raw) throw new Error('moor worker started without MOOR_WORKER (it is forked by `moor serve`)');
  return JSON.parse(raw) as WorkerSpec;
}

export type { Config };
