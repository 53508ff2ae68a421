/**
 * `npm run bench -- idle [--conns=N] [--quick] [...]`: the memory an idle, authenticated,
 * heartbeating session costs the gateway, against a bare uWS.js echo server holding
 * the same number of plain WebSocket connections (issue 3; design.md budget: ~1 KB per
 * session on top of uWS; target ratio <= 1.5). docs/memory.md has the findings.
 *
 * Then the same again over TLS (issue 6; `--no-tls` skips it): the gateway with
 * tls.cert/tls.key (a self-signed ECDSA P-256 pair from scripts/gen-cert.sh in a temp
 * dir) and the bare server as an SSLApp with the same pair and options; the clients
 * do TLS 1.3 (`--tls=1.2` caps them at 1.2) with node:tls and the same frames.
 *
 * For each server, in turn: start it; connect `warmup` connections (so one-time costs
 * such as JIT code, key import and store setup land before the baseline); take the
 * baseline; connect the rest in two waves from several client processes (each bound to
 * its own source address 127.0.0.x, <= --per-client sockets each), with a reading
 * after the first; hold them `settle` seconds (gateway sessions PING meanwhile); take
 * the held reading; stop everything.
 *
 * A reading is VmRSS of the process holding the sockets (the gateway's only worker)
 * from /proc, the minimum of `samples` readings one second apart. By default each
 * reading follows a full GC forced from outside through the inspector protocol
 * (SIGUSR1 + HeapProfiler.collectGarbage, see lib/inspector.ts): without it the reading
 * depends on when V8 last shrank its young generation, which grows to ~30 MB in a
 * connect storm and is given back 15-60+ s later (a fixed cost, not a per-session one,
 * but 2 KB per connection at 15,000). The held reading without a forced GC is reported
 * too (`as_is_bytes_per_conn`); `--no-gc` skips the inspector altogether.
 *
 *   bytes_per_conn          = (held - baseline) / (conns - warmup)
 *   marginal_bytes_per_conn = (held - after wave 1) / (connections of wave 2): what one
 *                             more session costs once the storm's one-time growth is paid
 *   rss_parts_per_conn      = the bytes_per_conn delta split by kind of mapping (smaps)
 *
 * Progress on stderr; one JSON line on stdout. Exit code 1 when connections failed.
 */
import path from 'node:path';
import { type CertDir, makeCerts } from '../test/helpers/tls';
import { type Client, clientBytesPerConn, connectAll, reasons, startClient, sum } from './lib/client-pool';
import type { ClientSpec } from './lib/idle-client';
import { type HeapFigures, Inspector } from './lib/inspector';
import { killAll, minRss, ownDir, type Rss, type RssBreakdown, readBreakdown, readRss, sleep } from './lib/procs';
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
  /** Force a GC through the inspector before the baseline and held readings. */
  gc: boolean;
  /** Write heap snapshots (baseline and held) into this directory. */
  snapshotDir: string;
  /** The TLS pass: the clients' highest TLS version; '' = no TLS pass. */
  tls: '' | '1.2' | '1.3';
}

const USAGE = `usage: npm run bench -- idle [--conns=15000] [--quick] [--warmup=200] [--per-client=5000]
  [--inflight=100] [--ping-s=30] [--settle-s=20] [--samples=5] [--only=both|gateway|bare]
  [--timeout-s=600|1200] [--no-gc] [--snapshot-dir=DIR] [--no-tls | --tls=1.3|1.2]`;

const INT_FLAGS: Record<string, 'conns' | 'warmup' | 'perClient' | 'inflight' | 'pingS' | 'settleS' | 'samples' | 'timeoutS'> = {
  conns: 'conns',
  warmup: 'warmup',
  'per-client': 'perClient',
  inflight: 'inflight',
  'ping-s': 'pingS',
  'settle-s': 'settleS',
  samples: 'samples',
  'timeout-s': 'timeoutS',
};

function parseArgs(argv: string[]): Options {
  const o: Options = { conns: 15_000, warmup: 200, perClient: 5_000, inflight: 100, pingS: 30, settleS: 20, samples: 5, only: 'both', timeoutS: 0, gc: true, snapshotDir: '', tls: '1.3' };
  // --quick first, so explicit flags win whatever their order.
  if (argv.includes('--quick')) Object.assign(o, { conns: 2_000, settleS: 8, samples: 3 });
  let warmupGiven = false;
  for (const a of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    const [k, v] = m ? [m[1], m[2]] : ['', undefined];
    if (k === 'help') {
      process.stderr.write(`${USAGE}\n`);
      process.exit(0);
    } else if (k === 'quick' && v === undefined) continue;
    else if (k === 'no-gc' && v === undefined) o.gc = false;
    else if (k === 'no-tls' && v === undefined) o.tls = '';
    else if (k === 'tls' && (v === '1.2' || v === '1.3')) o.tls = v;
    else if (k === 'only' && (v === 'both' || v === 'gateway' || v === 'bare')) o.only = v;
    else if (k === 'snapshot-dir' && v) o.snapshotDir = path.resolve(v);
    else if (k in INT_FLAGS && v !== undefined && /^\d+$/.test(v)) {
      o[INT_FLAGS[k]] = Number(v);
      warmupGiven ||= k === 'warmup';
    } else throw new Error(`bad argument ${a}\n${USAGE}`);
  }
  if (!warmupGiven) o.warmup = Math.min(o.warmup, Math.floor(o.conns / 10));
  // A TLS pass takes about as long again as the plaintext one (handshakes, 2 cores).
  if (o.timeoutS === 0) o.timeoutS = o.tls ? 1200 : 600;
  if (o.snapshotDir && !o.gc) throw new Error('--snapshot-dir needs the inspector: drop --no-gc');
  if (o.warmup < 1 || o.warmup >= o.conns) throw new Error(`--warmup must be in 1..conns-1 (got ${o.warmup})`);
  if (o.perClient < 1 || o.perClient > 9_000) throw new Error('--per-client must be 1..9000 (20,000 fds per process)');
  if (o.conns > 19_000) throw new Error('--conns above 19000: the server process is limited to 20,000 fds');
  if (o.samples < 1) throw new Error('--samples must be >= 1');
  return o;
}

function log(msg: string): void {
  process.stderr.write(`idle: ${msg}\n`);
}

const MB = 1024 * 1024;
const mb = (n: number): string => `${(n / MB).toFixed(1)} MB`;
const JWT_SECRET = 'bench-idle-secret-0123456789abcdef';
const API_KEY = 'bench-idle-api-key';

interface Reading {
  min: Rss;
  samples: number[];
  /** With the inspector: heap figures right after the forced GC. */
  heap: HeapFigures | null;
  /** Resident bytes by kind of mapping, read right after the samples. */
  parts: RssBreakdown;
}

interface Phase {
  up: number;
  failed: number;
  lost: number;
  reasons: Record<string, number>;
  cold: Rss;
  base: Reading;
  /** After the first wave (midUp connections up). */
  mid: Reading;
  midUp: number;
  /** Held, before any forced GC. */
  asIs: Reading;
  held: Reading;
  connectS: number;
  pings: number;
  pongs: number;
  clientBytesPerConn: number;
  problems: string[];
  /** TLS: the protocol the clients negotiated (e.g. "TLSv1.3"). */
  protocol: string;
}

/**
 * Forced GC (when attached), a second for V8 to hand pages back, then min of samples.
 * A heap snapshot comes last: taking one grows the heap (later readings show it).
 */
async function reading(o: Options, pid: number, insp: Inspector | null, snapshot: string): Promise<Reading> {
  let heap: HeapFigures | null = null;
  if (insp) {
    await insp.gc();
    heap = await insp.figures();
    await sleep(1000);
  }
  const r = await minRss(pid, o.samples, 1000);
  const parts = readBreakdown(pid);
  if (insp && snapshot) {
    await insp.snapshot(snapshot);
    log(`heap snapshot written to ${snapshot} (RSS readings after it are inflated by it)`);
    await insp.gc();
  }
  return { ...r, heap, parts };
}

/** With `certs`: TLS, the gateway through tls.cert/tls.key, bare uWS as an SSLApp. */
async function runPhase(o: Options, kind: 'gateway' | 'bare', deadline: number, certs: CertDir | null = null): Promise<Phase> {
  const label = `${kind === 'gateway' ? 'gateway' : 'bare uWS'}${certs ? ' TLS' : ''}`;
  const tag = `${kind}${certs ? '-tls' : ''}`;
  const inspect = o.gc;
  const server: Server =
    kind === 'gateway'
      ? await startGateway({ jwtSecret: JWT_SECRET, apiKey: API_KEY, inspect, args: certs?.args })
      : await startBare({ inspect, tls: certs ?? undefined });
  const snap = (what: string): string => (o.snapshotDir ? path.join(o.snapshotDir, `idle-${tag}-${what}.heapsnapshot`) : '');
  let insp: Inspector | null = null;
  log(`${label}: listening on 127.0.0.1:${server.port}, connections held by pid ${server.pid}`);
  const clients: Client[] = [];
  try {
    await sleep(2000);
    const cold = (await minRss(server.pid, 3, 500)).min;
    log(`${label}: cold RSS ${mb(cold.rss)}`);
    const spec: Omit<ClientSpec, 'localAddress' | 'first' | 'count'> = {
      mode: kind === 'gateway' ? 'moor' : 'bare',
      host: '127.0.0.1',
      port: server.port,
      path: server.path,
      prefix: `idle-${tag}-`,
      secret: JWT_SECRET,
      inflight: o.inflight,
      pingEveryMs: o.pingS * 1000,
      handshakeTimeoutMs: 30_000,
      maxLifeMs: Math.max(10_000, deadline - Date.now()),
      ...(certs && o.tls ? { tls: o.tls } : {}),
    };
    // 127.0.0.2 for the warm-up, then one address per client process.
    clients.push(await startClient({ ...spec, localAddress: '127.0.0.2', first: 0, count: o.warmup }));
    await connectAll(`${label} warm-up`, clients, deadline, log);
    await sleep(2000);
    if (o.gc) insp = await Inspector.attach(server.pid, server.inspectorUrl);
    const base = await reading(o, server.pid, insp, snap('baseline'));
    log(`${label}: ${o.warmup} warm-up connections; baseline RSS ${mb(base.min.rss)}${insp ? ' (after a forced GC)' : ''}`);

    // The rest in two waves, with a reading between: the second wave's cost is the
    // marginal one, free of what the first storm grew once (arenas, code, young generation).
    let nextAddr = 3;
    const wave = async (first: number, end: number, name: string): Promise<{ clients: Client[]; seconds: number }> => {
      const procs = Math.ceil((end - first) / o.perClient);
      const started: Client[] = [];
      for (let k = 0; k < procs; k++) {
        const a = first + Math.floor((k * (end - first)) / procs);
        const b = first + Math.floor(((k + 1) * (end - first)) / procs);
        started.push(await startClient({ ...spec, localAddress: `127.0.0.${nextAddr++}`, first: a, count: b - a }));
      }
      clients.push(...started);
      return { clients: started, seconds: await connectAll(`${label} ${name}`, started, deadline, log) };
    };
    const half = o.warmup + Math.floor((o.conns - o.warmup) / 2);
    const w1 = await wave(o.warmup, half, 'wave 1');
    await sleep(Math.min(5, o.settleS) * 1000);
    const midUp = sum(clients, (s) => s.up);
    const mid = await reading(o, server.pid, insp, '');
    log(`${label}: ${midUp} up; RSS ${mb(mid.min.rss)}${insp ? ' (after a forced GC)' : ''}`);
    const w2 = await wave(half, o.conns, 'wave 2');
    const main = [...w1.clients, ...w2.clients];
    const connectS = w1.seconds + w2.seconds;
    log(`${label}: ${sum(clients, (s) => s.up)} up in ${connectS.toFixed(1)} s; settling ${o.settleS} s`);
    for (let t = 0; t < o.settleS; t += 5) {
      await sleep(Math.min(5, o.settleS - t) * 1000);
      const up = sum(clients, (s) => s.up);
      const lost = sum(clients, (s) => s.lost);
      log(`${label}: holding ${up - lost}, lost ${lost}, pongs ${sum(clients, (s) => s.pongs)}, RSS ${mb(readRss(server.pid).rss)}`);
    }
    const asIs = await reading(o, server.pid, null, '');
    log(`${label}: held RSS ${mb(asIs.min.rss)} as it is (min of ${asIs.samples.map(mb).join(', ')})`);
    if (insp) {
      const f = await insp.figures();
      const c = Object.entries(f.committed).filter(([, v]) => v > 0);
      log(`${label}: V8 heap before the forced GC: used ${mb(f.heapUsed)}; held per space: ${c.map(([k, v]) => `${k} ${mb(v)}`).join(', ')}`);
    }
    const held = insp ? await reading(o, server.pid, insp, snap('held')) : asIs;
    if (insp) log(`${label}: held RSS ${mb(held.min.rss)} after a forced GC (min of ${held.samples.map(mb).join(', ')})`);
    await sleep(1200); // one more progress report from every client
    return {
      up: sum(clients, (s) => s.up),
      failed: sum(clients, (s) => s.failed),
      lost: sum(clients, (s) => s.lost),
      reasons: reasons(clients),
      cold,
      base,
      mid,
      midUp,
      asIs,
      held,
      connectS,
      pings: sum(clients, (s) => s.pings),
      pongs: sum(clients, (s) => s.pongs),
      clientBytesPerConn: clientBytesPerConn(main),
      protocol: [...new Set(clients.map((c) => c.stats?.protocol).filter((p) => p !== undefined))].join(','),
      problems: server.problems,
    };
  } finally {
    insp?.close();
    await Promise.all(clients.map((c) => c.stop()));
    await server.stop();
  }
}

function bytesPerConn(p: Phase, o: Options): number {
  return Math.round((p.held.min.rss - p.base.min.rss) / Math.max(1, p.up - o.warmup));
}

/** Per connection of the second wave only: (held - after wave 1) / its connections. */
function marginal(p: Phase): number {
  return Math.round((p.held.min.rss - p.mid.min.rss) / Math.max(1, p.up - p.midUp));
}

function summary(p: Phase, o: Options): Record<string, unknown> {
  const n = Math.max(1, p.up - o.warmup);
  const per = (a: number, b: number): number => Math.round((a - b) / n);
  const mbs = (x: number): number => +(x / MB).toFixed(1);
  const h = p.held.heap;
  const b = p.base.heap;
  const spaces: Record<string, number> = {};
  if (h && b) for (const [k, v] of Object.entries(h.spaces)) if (per(v, b.spaces[k] ?? 0) !== 0) spaces[k] = per(v, b.spaces[k] ?? 0);
  return {
    up: p.up,
    failed: p.failed,
    lost: p.lost,
    ...(Object.keys(p.reasons).length ? { reasons: p.reasons } : {}),
    bytes_per_conn: bytesPerConn(p, o),
    anon_bytes_per_conn: per(p.held.min.anon, p.base.min.anon),
    file_bytes_per_conn: per(p.held.min.file + p.held.min.shmem, p.base.min.file + p.base.min.shmem),
    marginal_bytes_per_conn: marginal(p),
    as_is_bytes_per_conn: per(p.asIs.min.rss, p.base.min.rss),
    rss_parts_per_conn: {
      malloc_main: per(p.held.parts.mallocMain, p.base.parts.mallocMain),
      malloc_threads: per(p.held.parts.mallocThreads, p.base.parts.mallocThreads),
      anon_other: per(p.held.parts.anonOther, p.base.parts.anonOther),
      store_file: per(p.held.parts.storeFile, p.base.parts.storeFile),
      code_file: per(p.held.parts.codeFile, p.base.parts.codeFile),
    },
    ...(h && b ? { heap_used_per_conn: per(h.heapUsed, b.heapUsed), heap_spaces_per_conn: spaces } : {}),
    bytes_per_conn_from_cold: Math.round((p.held.min.rss - p.cold.rss) / Math.max(1, p.up)),
    rss_mb: { cold: mbs(p.cold.rss), baseline: mbs(p.base.min.rss), wave_1: mbs(p.mid.min.rss), held_as_is: mbs(p.asIs.min.rss), held: mbs(p.held.min.rss) },
    held_samples_mb: p.held.samples.map(mbs),
    connect_s: +p.connectS.toFixed(1),
    conns_per_s: Math.round((p.up - o.warmup) / p.connectS),
    pings: p.pings,
    pongs: p.pongs,
    client_rss_per_conn: p.clientBytesPerConn,
    ...(p.protocol ? { tls_protocol: p.protocol } : {}),
    ...(p.problems.length ? { server_warnings: p.problems } : {}),
  };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const deadline = Date.now() + o.timeoutS * 1000;
  setTimeout(() => {
    log(`still running after --timeout-s=${o.timeoutS}: stopping`);
    killAll();
    process.exit(1);
  }, o.timeoutS * 1000).unref();
  log(`${o.conns} connections (${o.warmup} warm-up), <= ${o.perClient} per client process, PING every ${o.pingS} s, settle ${o.settleS} s, forced GC ${o.gc ? 'on' : 'off'}`);
  const bare = o.only === 'gateway' ? null : await runPhase(o, 'bare', deadline);
  const gw = o.only === 'bare' ? null : await runPhase(o, 'gateway', deadline);
  let bareTls: Phase | null = null;
  let gwTls: Phase | null = null;
  if (o.tls) {
    const certs = makeCerts();
    ownDir(certs.dir);
    log(`TLS pass: ECDSA P-256 self-signed pair in ${certs.dir}, clients up to TLS ${o.tls}`);
    try {
      bareTls = o.only === 'gateway' ? null : await runPhase(o, 'bare', deadline, certs);
      gwTls = o.only === 'bare' ? null : await runPhase(o, 'gateway', deadline, certs);
    } finally {
      certs.remove();
    }
  }
  const b = (p: Phase | null): number | null => (p ? bytesPerConn(p, o) : null);
  const ratio = (x: number | null, y: number | null): number | null => (x !== null && y ? +(x / y).toFixed(2) : null);
  const minus = (x: number | null, y: number | null): number | null => (x !== null && y !== null ? x - y : null);
  const marginalRatio = (x: Phase | null, y: Phase | null): number | null => (x && y ? +(marginal(x) / Math.max(1, marginal(y))).toFixed(2) : null);
  const out = {
    bench: 'idle',
    conns: o.conns,
    bytes_per_conn: b(gw),
    bare_uws_bytes_per_conn: b(bare),
    ratio: ratio(b(gw), b(bare)),
    marginal_ratio: marginalRatio(gw, bare),
    target_ratio: 1.5,
    // The TLS pass (null with --no-tls): the same per-connection figures over TLS, and
    // what TLS adds to a connection on each server (TLS minus plaintext, same run).
    tls_bytes_per_conn: b(gwTls),
    bare_uws_tls_bytes_per_conn: b(bareTls),
    tls_ratio: ratio(b(gwTls), b(bareTls)),
    tls_marginal_ratio: marginalRatio(gwTls, bareTls),
    tls_extra_bytes_per_conn: minus(b(gwTls), b(gw)),
    bare_uws_tls_extra_bytes_per_conn: minus(b(bareTls), b(bare)),
    gateway: gw ? summary(gw, o) : null,
    bare_uws: bare ? summary(bare, o) : null,
    gateway_tls: gwTls ? summary(gwTls, o) : null,
    bare_uws_tls: bareTls ? summary(bareTls, o) : null,
    tls: o.tls ? `ECDSA P-256 self-signed; clients up to TLS ${o.tls} (node:tls, no certificate check); the gateway's SSLApp and bare uWS's with ssl_prefer_low_memory_usage` : null,
    client: 'raw net sockets (node:tls for the TLS pass), hand-made WebSocket frames',
    warmup: o.warmup,
    settle_s: o.settleS,
    ping_s: o.pingS,
    rss: `VmRSS of the process holding the sockets, min of ${o.samples} samples 1 s apart${o.gc ? ' after a full GC forced through the inspector' : ''}; per conn = (held - baseline after warm-up) / (conns - warmup)`,
    node: process.version,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  const failed = [gw, bare, gwTls, bareTls].reduce((n, p) => n + (p?.failed ?? 0) + (p?.lost ?? 0), 0);
  if (failed > 0) log(`${failed} connections failed or were lost: see reasons in the JSON`);
  killAll();
  process.exit(failed > 0 ? 1 : 0);
}

main().catch((err) => {
  process.stderr.write(`idle: ${err instanceof Error ? (err.stack ?? err.message) : err}\n`);
  killAll();
  process.exit(1);
});
