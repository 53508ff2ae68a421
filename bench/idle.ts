/**
 * `npm run bench -- idle [--conns=N] [--quick] [...]`: the memory an idle, authenticated,
 * heartbeating session costs the gateway, against a bare uWS.js echo server holding
 * the same number of plain WebSocket connections (issue 3; design.md budget: ~1 KB per
 * session on top of uWS; target ratio <= 1.5).
 *
 * For each server, in turn: start it; connect `warmup` connections (so lazy, one-time
 * costs such as JIT code, key import and store buffers land before the baseline); take
 * the baseline RSS; connect the rest from several client processes (each bound to its
 * own source address 127.0.0.x, <= --per-client sockets each); hold them `settle`
 * seconds (gateway sessions PING meanwhile); take the held RSS; stop everything.
 * RSS is VmRSS of the process holding the sockets (the gateway's only worker), read
 * from /proc: nothing outside a process can force its GC, so each reading is the
 * minimum of `samples` readings one second apart (the one carrying the least garbage).
 * bytes_per_conn = (held - baseline) / (conns - warmup).
 *
 * Progress on stderr; one JSON line on stdout. Exit code 1 when connections failed.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import type { ClientSpec, ClientStats, FromClient } from './lib/idle-client';
import { type HeapFigures, Inspector } from './lib/inspector';
import { killAll, minRss, own, type Rss, readRss, sleep, stop } from './lib/procs';
import { type Server, startBare, startGateway } from './lib/servers';

interface Options {
  conns: number;
  warmup: number;
  perClient: number;
  inflight: number;
  pingS: number;
  settleS: number;
  samples: number;
  only: 'both' | 'gateway' | 'bare';
  /** Hard bound on the whole run. */
  timeoutS: number;
  /** Also force a GC through the inspector (inspector.ts) before the baseline and held readings. */
  gc: boolean;
  /** With gc: write heap snapshots (baseline and held) into this directory. */
  snapshotDir: string;
}

const USAGE = `usage: npm run bench -- idle [--conns=15000] [--quick] [--warmup=200] [--per-client=5000]
  [--inflight=100] [--ping-s=30] [--settle-s=20] [--samples=5] [--only=both|gateway|bare] [--timeout-s=600]
  [--gc] [--snapshot-dir=DIR]`;

function parseArgs(argv: string[]): Options {
  const o: Options = { conns: 15_000, warmup: 200, perClient: 5_000, inflight: 100, pingS: 30, settleS: 20, samples: 5, only: 'both', timeoutS: 600, gc: false, snapshotDir: '' };
  const ints: Record<string, keyof Options> = {
    conns: 'conns',
    warmup: 'warmup',
    'per-client': 'perClient',
    inflight: 'inflight',
    'ping-s': 'pingS',
    'settle-s': 'settleS',
    samples: 'samples',
    'timeout-s': 'timeoutS',
  };
  const given = new Set<string>();
  for (const a of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`unexpected argument ${a}\n${USAGE}`);
    const [, k, v] = m;
    given.add(k);
    if (k === 'help') {
      process.stderr.write(`${USAGE}\n`);
      process.exit(0);
    } else if (k === 'quick') {
      o.conns = 2_000;
      o.settleS = 8;
      o.samples = 3;
    } else if (k === 'only' && (v === 'both' || v === 'gateway' || v === 'bare')) o.only = v;
    else if (k === 'gc' && v === undefined) o.gc = true;
    else if (k === 'snapshot-dir' && v) {
      o.snapshotDir = path.resolve(v);
      o.gc = true;
    }
    else if (k in ints && v !== undefined && /^\d+$/.test(v)) (o[ints[k]] as number) = Number(v);
    else throw new Error(`bad argument ${a}\n${USAGE}`);
  }
  // --quick sets defaults; explicit flags (in any order) win.
  for (const a of argv) {
    const m = /^--([a-z-]+)=(\d+)$/.exec(a);
    if (m && m[1] in ints) (o[ints[m[1]]] as number) = Number(m[2]);
  }
  if (!given.has('warmup')) o.warmup = Math.min(o.warmup, Math.floor(o.conns / 10));
  if (o.conns < 1 || o.warmup >= o.conns) throw new Error(`--conns must be > --warmup (${o.warmup})`);
  if (o.perClient > 9_000) throw new Error('--per-client above 9000 leaves too few of the 20,000 fds per process');
  if (o.conns > 19_000) throw new Error('--conns above 19000: the server process is limited to 20,000 fds');
  return o;
}

function log(msg: string): void {
  process.stderr.write(`idle: ${msg}\n`);
}

const MB = 1024 * 1024;
const mb = (n: number): string => `${(n / MB).toFixed(1)} MB`;
const JWT_SECRET = 'bench-idle-secret-0123456789abcdef';
const API_KEY = 'bench-idle-api-key';

interface Client {
  spec: ClientSpec;
  pid: number;
  readyRss: number;
  stats: ClientStats | null;
  done: boolean;
  exited: boolean;
  stop(): Promise<void>;
}

function startClient(spec: ClientSpec): Promise<Client> {
  const child = fork(path.join(__dirname, 'lib', 'idle-client.js'), [JSON.stringify(spec)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  own(child);
  return new Promise((resolve, reject) => {
    const c: Client = {
      spec,
      pid: child.pid as number,
      readyRss: 0,
      stats: null,
      done: false,
      exited: false,
      stop: async () => {
        if (child.connected) child.send({ t: 'stop' });
        await stop(child, 5_000);
      },
    };
    child.on('message', (m: FromClient) => {
      if (m.t === 'ready') {
        c.readyRss = m.rss;
        resolve(c);
      } else {
        c.stats = m.s;
        if (m.t === 'done') c.done = true;
      }
    });
    child.once('exit', (code) => {
      c.exited = true;
      if (!c.done) reject(new Error(`client ${spec.localAddress} exited (${code}) before it finished connecting`));
    });
  });
}

function sum(clients: Client[], f: (s: ClientStats) => number): number {
  let n = 0;
  for (const c of clients) if (c.stats) n += f(c.stats);
  return n;
}

/** Connects every client's sockets (clients run in parallel); resolves when all are done. */
async function connectAll(label: string, clients: Client[], deadline: number): Promise<{ seconds: number }> {
  const t0 = performance.now();
  let lastUp = 0;
  let lastT = t0;
  for (;;) {
    await sleep(1000);
    const up = sum(clients, (s) => s.up);
    const now = performance.now();
    const rate = ((up - lastUp) * 1000) / (now - lastT);
    lastUp = up;
    lastT = now;
    const total = clients.reduce((n, c) => n + c.spec.count, 0);
    log(`${label}: up ${up}/${total}, failed ${sum(clients, (s) => s.failed)}, pending ${sum(clients, (s) => s.pending)}, ${rate.toFixed(0)}/s`);
    if (clients.every((c) => c.done)) return { seconds: (performance.now() - t0) / 1000 };
    const dead = clients.find((c) => c.exited);
    if (dead) throw new Error(`${label}: the client on ${dead.spec.localAddress} exited while connecting`);
    if (Date.now() > deadline) throw new Error(`${label}: connecting did not finish in time`);
  }
}

interface Phase {
  up: number;
  failed: number;
  lost: number;
  reasons: Record<string, number>;
  cold: Rss;
  warm: Rss;
  held: Rss;
  heldSamples: number[];
  connectS: number;
  pings: number;
  pongs: number;
  clientBytesPerConn: number;
  problems: string[];
  /** With --gc: RSS and heap figures right after a forced GC, at baseline and held. */
  forced: { warm: HeapFigures; held: HeapFigures } | null;
}

/** Forced GC, then the process's own figures, with VmRSS read from /proc (the same measure as elsewhere). */
async function forcedFigures(insp: Inspector, pid: number, snapshot: string): Promise<HeapFigures> {
  await insp.gc();
  await sleep(500);
  const f = await insp.figures();
  f.rss = readRss(pid).rss;
  if (snapshot) {
    await insp.snapshot(snapshot);
    log(`heap snapshot written to ${snapshot}`);
  }
  return f;
}

async function runPhase(o: Options, kind: 'gateway' | 'bare', deadline: number): Promise<Phase> {
  const label = kind === 'gateway' ? 'gateway' : 'bare uWS';
  const inspect = o.gc;
  const server: Server = kind === 'gateway' ? await startGateway({ jwtSecret: JWT_SECRET, apiKey: API_KEY, inspect }) : await startBare({ inspect });
  const snap = (what: string): string => (o.snapshotDir ? path.join(o.snapshotDir, `idle-${kind}-${what}.heapsnapshot`) : '');
  let insp: Inspector | null = null;
  log(`${label}: listening on 127.0.0.1:${server.port}, connections held by pid ${server.pid}`);
  const clients: Client[] = [];
  try {
    await sleep(2000);
    const cold = (await minRss(server.pid, 3, 500)).min;
    log(`${label}: cold RSS ${mb(cold.rss)}`);
    const base: Omit<ClientSpec, 'localAddress' | 'first' | 'count'> = {
      mode: kind === 'gateway' ? 'moor' : 'bare',
      host: '127.0.0.1',
      port: server.port,
      path: server.path,
      prefix: `idle-${kind}-`,
      secret: JWT_SECRET,
      inflight: o.inflight,
      pingEveryMs: o.pingS * 1000,
      handshakeTimeoutMs: 30_000,
      maxLifeMs: Math.max(10_000, deadline - Date.now()),
    };
    // 127.0.0.2 for the warm-up, then one address per client process.
    clients.push(await startClient({ ...base, localAddress: '127.0.0.2', first: 0, count: o.warmup }));
    const warmS = await connectAll(`${label} warm-up`, clients, deadline);
    await sleep(2000);
    let forcedWarm: HeapFigures | null = null;
    if (o.gc) {
      insp = await Inspector.attach(server.pid, server.inspectorUrl);
      forcedWarm = await forcedFigures(insp, server.pid, snap('baseline'));
    }
    const warm = (await minRss(server.pid, o.samples, 1000)).min;
    log(`${label}: ${o.warmup} warm-up connections in ${warmS.seconds.toFixed(1)} s; baseline RSS ${mb(warm.rss)}`);

    const rest = o.conns - o.warmup;
    const procs = Math.ceil(rest / o.perClient);
    const main: Client[] = [];
    for (let k = 0; k < procs; k++) {
      const first = o.warmup + Math.floor((k * rest) / procs);
      const end = o.warmup + Math.floor(((k + 1) * rest) / procs);
      main.push(await startClient({ ...base, localAddress: `127.0.0.${3 + k}`, first, count: end - first }));
    }
    clients.push(...main);
    const { seconds } = await connectAll(label, main, deadline);
    log(`${label}: ${sum(clients, (s) => s.up)} up in ${seconds.toFixed(1)} s; settling ${o.settleS} s`);
    for (let t = 0; t < o.settleS; t += 5) {
      await sleep(Math.min(5, o.settleS - t) * 1000);
      log(`${label}: holding ${sum(clients, (s) => s.up) - sum(clients, (s) => s.lost)}, lost ${sum(clients, (s) => s.lost)}, pongs ${sum(clients, (s) => s.pongs)}, RSS ${mb(readRss(server.pid).rss)}`);
    }
    const held = await minRss(server.pid, o.samples, 1000);
    log(`${label}: held RSS ${mb(held.min.rss)} (min of ${held.samples.map(mb).join(', ')})`);
    const forced = insp && forcedWarm ? { warm: forcedWarm, held: await forcedFigures(insp, server.pid, snap('held')) } : null;
    if (forced) log(`${label}: after a forced GC: RSS ${mb(forced.held.rss)}, heap used ${mb(forced.held.heapUsed)} (baseline ${mb(forced.warm.rss)}, ${mb(forced.warm.heapUsed)})`);
    await sleep(1200); // one more progress report from every client
    const reasons: Record<string, number> = {};
    for (const c of clients) for (const [r, n] of Object.entries(c.stats?.reasons ?? {})) reasons[r] = (reasons[r] ?? 0) + n;
    const up = sum(clients, (s) => s.up);
    // Client cost: what the main clients grew by (after their own GC), per socket.
    let clientGrowth = 0;
    let clientConns = 0;
    for (const c of main) {
      clientGrowth += (c.stats?.rss ?? c.readyRss) - c.readyRss;
      clientConns += c.stats?.up ?? 0;
    }
    return {
      up,
      failed: sum(clients, (s) => s.failed),
      lost: sum(clients, (s) => s.lost),
      reasons,
      cold,
      warm,
      held: held.min,
      heldSamples: held.samples,
      connectS: seconds,
      pings: sum(clients, (s) => s.pings),
      pongs: sum(clients, (s) => s.pongs),
      clientBytesPerConn: clientConns ? Math.round(clientGrowth / clientConns) : 0,
      problems: server.problems,
      forced,
    };
  } finally {
    insp?.close();
    await Promise.all(clients.map((c) => c.stop()));
    await server.stop();
  }
}

function perConn(p: Phase, o: Options): { total: number; anon: number; file: number; cold: number } {
  const n = Math.max(1, p.up - o.warmup);
  return {
    total: Math.round((p.held.rss - p.warm.rss) / n),
    anon: Math.round((p.held.anon - p.warm.anon) / n),
    file: Math.round((p.held.file + p.held.shmem - p.warm.file - p.warm.shmem) / n),
    cold: Math.round((p.held.rss - p.cold.rss) / Math.max(1, p.up)),
  };
}

function summary(p: Phase, o: Options): Record<string, unknown> {
  const c = perConn(p, o);
  return {
    up: p.up,
    failed: p.failed,
    lost: p.lost,
    ...(Object.keys(p.reasons).length ? { reasons: p.reasons } : {}),
    bytes_per_conn: c.total,
    anon_bytes_per_conn: c.anon,
    file_bytes_per_conn: c.file,
    bytes_per_conn_from_cold: c.cold,
    rss_cold_mb: +(p.cold.rss / MB).toFixed(1),
    rss_baseline_mb: +(p.warm.rss / MB).toFixed(1),
    rss_held_mb: +(p.held.rss / MB).toFixed(1),
    rss_held_samples_mb: p.heldSamples.map((s) => +(s / MB).toFixed(1)),
    connect_s: +p.connectS.toFixed(1),
    conns_per_s: Math.round((p.up - o.warmup) / p.connectS),
    pings: p.pings,
    pongs: p.pongs,
    client_rss_per_conn: p.clientBytesPerConn,
    ...(p.problems.length ? { server_warnings: p.problems.length } : {}),
    ...(p.forced ? { after_forced_gc: forcedPerConn(p.forced, Math.max(1, p.up - o.warmup)) } : {}),
  };
}

function forcedPerConn(f: { warm: HeapFigures; held: HeapFigures }, n: number): Record<string, unknown> {
  const d = (a: number, b: number): number => Math.round((a - b) / n);
  const spaces: Record<string, number> = {};
  for (const [k, v] of Object.entries(f.held.spaces) as Array<[string, number]>) {
    const per = d(v, f.warm.spaces[k] ?? 0);
    if (per !== 0) spaces[k] = per;
  }
  return {
    bytes_per_conn: d(f.held.rss, f.warm.rss),
    heap_used_per_conn: d(f.held.heapUsed, f.warm.heapUsed),
    external_per_conn: d(f.held.external, f.warm.external),
    heap_spaces_per_conn: spaces,
  };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const deadline = Date.now() + o.timeoutS * 1000;
  const hardStop = setTimeout(() => {
    log(`still running after --timeout-s=${o.timeoutS}: stopping`);
    killAll();
    process.exit(1);
  }, o.timeoutS * 1000);
  hardStop.unref();
  log(`${o.conns} connections (${o.warmup} warm-up), <= ${o.perClient} per client process, PING every ${o.pingS} s, settle ${o.settleS} s`);
  const bare = o.only === 'gateway' ? null : await runPhase(o, 'bare', deadline);
  const gw = o.only === 'bare' ? null : await runPhase(o, 'gateway', deadline);
  const gwB = gw ? perConn(gw, o).total : null;
  const bareB = bare ? perConn(bare, o).total : null;
  const out = {
    bench: 'idle',
    conns: o.conns,
    bytes_per_conn: gwB,
    bare_uws_bytes_per_conn: bareB,
    ratio: gwB !== null && bareB ? +(gwB / bareB).toFixed(2) : null,
    target_ratio: 1.5,
    gateway: gw ? summary(gw, o) : null,
    bare_uws: bare ? summary(bare, o) : null,
    client: 'raw net sockets, hand-made WebSocket frames',
    warmup: o.warmup,
    settle_s: o.settleS,
    ping_s: o.pingS,
    rss: `VmRSS of the process holding the sockets, min of ${o.samples} samples 1 s apart; per conn = (held - after warm-up) / (conns - warmup)`,
    node: process.version,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  const failed = (gw?.failed ?? 0) + (gw?.lost ?? 0) + (bare?.failed ?? 0) + (bare?.lost ?? 0);
  if (failed > 0) log(`${failed} connections failed or were lost: see reasons in the JSON`);
  killAll();
  process.exit(failed > 0 ? 1 : 0);
}

main().catch((err) => {
  process.stderr.write(`idle: ${err instanceof Error ? (err.stack ?? err.message) : err}\n`);
  killAll();
  process.exit(1);
});
