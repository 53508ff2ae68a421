/**
 * `npm run bench -- soak [--quick] [...]` (issue 8): what an operator runs before a
 * rollout. In one run, on loopback:
 *
 * 1. baselines: bare uWS.js servers (bench/soak/bare-pub.ts, one per gateway worker, one
 *    port) take --bare-conns WebSocket connections; their RSS per connection and their
 *    publish rate to everyone are measured, then they stop. A bare node:net cluster
 *    (bench/soak/bare-net.ts) then takes --bare-tcp-conns raw TCP connections: the floor
 *    for a raw TCP session;
 * 2. the gateway (`moor serve --workers=N`) takes --conns connections (WebSocket and raw
 *    TCP, optionally TLS) at --rate, from lean client processes (bench/soak/client.ts),
 *    each on its own source address, with a live progress bar: a mixed warm-up, then
 *    the WebSocket sessions, then the raw TCP ones, memory read between, so each
 *    transport's bytes per connection are measured next to its own baseline;
 * 3. hold: sessions heartbeat at the advised interval while the sampler records RSS per
 *    worker, kernel socket memory and CPU, and the dial test pushes to random devices
 *    every second (sender and receiver in one process, one clock);
 * 4. fan-out: `{"all": true}` pushes, timed until 100% received, next to the bare rate;
 * 5. storm: kill -9 one worker while durable pushes flow; time until its devices are
 *    back, refused/overloaded counts, and every push answered 202 verified delivered.
 *
 * Reports: bench/out/soak-<time>.json and .html (inline SVG charts); progress on
 * stderr; one JSON line with the headline figures on stdout. Exit 0 when every target
 * is met, 1 when one is missed, 2 when the run itself failed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killAll, sleep } from './lib/procs';
import { type Baseline, startBareNet, startBaseline } from './soak/baseline';
import { fanout } from './soak/fanout';
import { type SoakGateway, startGateway } from './soak/gateway';
import { ForcedGc, gcEnv, InspectorUrls } from './soak/gc';
import { LoopProbe } from './soak/loop-probe';
import { type MemPoint, memCost, memPoint, type StepCost, stepCost } from './soak/memory';
import type { SoakClientSpec } from './soak/messages';
import { HELP, parseOptions, type SoakOptions } from './soak/options';
import { ClientPool, type PoolClient, planSpecs } from './soak/pool';
import { bar, joinRamps, ramp, Status } from './soak/ramp';
import { type BareNetRun, type BareRun, buildReport, type GatewayRun, headline } from './soak/report';
import { renderHtml } from './soak/report-html';
import { Sampler } from './soak/sampler';
import { int, mb, summarize } from './soak/stats';
import { storm } from './soak/storm';
import { selfSignedCert, speaksTls } from './soak/tls';

type TlsFiles = { cert: string; key: string };

const ROOT = path.resolve(__dirname, '..', '..');
const JWT_SECRET = 'bench-soak-secret-0123456789abcdef';
const API_KEY = 'bench-soak-api-key';
/** Bare clients bind 30 (uWS) and 60 (node:net) addresses above the gateway's: no local ports shared between phases. */
const BARE_HOST_OFFSET = 30;
const BARE_NET_HOST_OFFSET = 60;
/** The gateway's store page release interval in this bench (MOOR_STORE_RELEASE_MS): short, so readings wait little. */
const STORE_RELEASE_MS = 1000;

/** A pause for the servers to settle before a reading; --quick halves it (its figures are noise at 5,000 anyway). */
const settleMs = (o: SoakOptions, ms: number): number => (o.quick ? ms / 2 : ms);

const status = new Status();
const t0 = performance.now();
let phase = 'start';
let pool: ClientPool | null = null;
let serverPids: () => number[] = () => [];
let primaryPid = 0;

const sampler = new Sampler(t0, {
  phase: () => phase,
  conns: () => pool?.sum((s) => s.open) ?? 0,
  perWorker: () => pool?.perWorker() ?? [],
  serverPids: () => serverPids(),
  primaryPid: () => primaryPid,
  clientPids: () => pool?.pids() ?? [],
}, os.availableParallelism());

function clientBase(o: SoakOptions, deadline: number): Omit<SoakClientSpec, 'id' | 'localAddress' | 'first' | 'count' | 'ratePerS' | 'mode' | 'wsPort' | 'wsPath' | 'tcpPort' | 'prefix' | 'apiPort'> {
  return {
    host: '127.0.0.1',
    tcpPct: o.tcpPct,
    tls: false,
    secret: JWT_SECRET,
    inflight: o.inflight,
    handshakeTimeoutMs: 30_000,
    reconnectJitterMs: 2_000,
    reconnectMaxMs: 15_000,
    apiKey: API_KEY,
    maxLifeMs: Math.max(60_000, deadline - Date.now() + 30_000),
    napUs: o.clientNapUs,
  };
}

/** Warm-up ramp, baseline reading, then the ramp to `upTo` (default: all `total`). */
async function rampPhase(o: SoakOptions, label: string, total: number, deadline: number, reading: () => Promise<MemPoint>, upTo?: (c: PoolClient) => number) {
  const p = pool as ClientPool;
  let warm: MemPoint;
  if (o.warm > 0 && o.warm < total) {
    await ramp(p, status, `${label} warm-up`, Math.round((o.warm * total) / o.conns), deadline);
    await sleep(settleMs(o, 2000));
    warm = await reading();
  } else warm = await reading();
  status.log(`${label}: baseline RSS ${warm.rss.map(mb).join(' + ')} with ${int(warm.conns.reduce((a, b) => a + b, 0))} connections`);
  const r = await ramp(p, status, label, upTo ?? total, deadline);
  return { warm, ramp: r };
}

async function runBare(o: SoakOptions, deadline: number, tlsFiles: TlsFiles | null): Promise<BareRun> {
  phase = 'bare: start';
  const base: Baseline = await startBaseline(o.workers, { gc: o.gc, tls: tlsFiles });
  serverPids = () => base.pids;
  primaryPid = 0;
  status.log(`bare uWS.js baseline: ${o.workers} processes on 127.0.0.1:${base.port}, ${int(o.bareConns)} WebSocket connections${tlsFiles ? ' over TLS' : ''}`);
  let gc: ForcedGc | null = null;
  try {
    const specs = planSpecs(
      { ...clientBase(o, deadline), mode: 'bare', tls: tlsFiles !== null, wsPort: base.port, wsPath: '/ws', tcpPort: 0, tcpPct: 0, prefix: 'bare-', apiPort: 0 },
      { total: o.bareConns, perClient: o.perClient, firstHost: o.firstHost + BARE_HOST_OFFSET, ratePerS: o.rate },
    );
    pool = await ClientPool.start(specs);
    phase = 'bare: ramp';
    gc = await base.attachGc();
    const forced = gc;
    status.log(`bare uWS: ${gc.note}`);
    const reading = (): Promise<MemPoint> => memPoint(base.pids, base.conns, 3, 500, () => forced.collect());
    const { warm, ramp: r } = await rampPhase(o, 'bare uWS', o.bareConns, deadline, reading);
    phase = 'bare: hold';
    await sleep(settleMs(o, 3000));
    const held = await reading();
    gc.close();
    const mem = memCost(warm, held, pool);
    status.log(`bare uWS: ${int(mem.bytesPerConn)} B of RSS per connection (anonymous ${int(mem.anonBytesPerConn)}); clients ${int(mem.clientBytesPerConn)} B per connection`);
    phase = 'bare: fan-out';
    const fan = await fanout(pool, status, 'bare uWS', 1, o.fanoutRounds, 15_000, async (round) => {
      const calls = await base.publish(`f${round}`);
      const n = calls.reduce((a, c) => a + c.n, 0);
      const us = Math.max(...calls.map((c) => c.us));
      return { subscribers: n, publish_call_us: calls.map((c) => Math.round(c.us)), publish_call_msgs_per_s: Math.round((n * 1e6) / Math.max(1, us)) };
    });
    return { ramp: r, mem, fanout: fan, processes: o.workers, gc: forced.note, tls: tlsFiles !== null };
  } finally {
    gc?.close();
    phase = 'bare: stop';
    await pool?.stop();
    pool = null;
    await base.stop();
  }
}

async function runBareNet(o: SoakOptions, deadline: number): Promise<BareNetRun> {
  phase = 'bare net: start';
  const base = await startBareNet(o.workers, { gc: o.gc });
  serverPids = () => base.pids;
  primaryPid = 0;
  status.log(`bare node:net baseline: a cluster of ${o.workers} workers on 127.0.0.1:${base.port}, ${int(o.bareTcpConns)} raw TCP connections`);
  let gc: ForcedGc | null = null;
  try {
    const specs = planSpecs(
      { ...clientBase(o, deadline), mode: 'bare', tls: false, wsPort: 0, wsPath: '/', tcpPort: base.port, tcpPct: 100, prefix: 'barenet-', apiPort: 0 },
      { total: o.bareTcpConns, perClient: o.perClient, firstHost: o.firstHost + BARE_NET_HOST_OFFSET, ratePerS: o.rate },
    );
    pool = await ClientPool.start(specs);
    phase = 'bare net: ramp';
    gc = await base.attachGc();
    const forced = gc;
    status.log(`bare node:net: ${gc.note}`);
    const reading = (): Promise<MemPoint> => memPoint(base.pids, base.conns, 3, 500, () => forced.collect());
    const { warm, ramp: r } = await rampPhase(o, 'bare node:net', o.bareTcpConns, deadline, reading);
    phase = 'bare net: hold';
    await sleep(settleMs(o, 3000));
    const held = await reading();
    gc.close();
    const mem = memCost(warm, held, pool);
    status.log(`bare node:net: ${int(mem.bytesPerConn)} B of RSS per connection (anonymous ${int(mem.anonBytesPerConn)}, PSS ${int(mem.pssBytesPerConn)}); clients ${int(mem.clientBytesPerConn)} B per connection`);
    return { ramp: r, mem, processes: o.workers, gc: forced.note };
  } finally {
    gc?.close();
    phase = 'bare net: stop';
    await pool?.stop();
    pool = null;
    await base.stop();
  }
}

/** Open WebSocket devices of client `c` once the transport-ordered ramp has done them all (client.ts `mixedFirst`). */
function wsTarget(c: { spec: SoakClientSpec }): number {
  const sp = c.spec;
  const mixed = sp.mixedFirst ?? sp.count;
  let n = mixed;
  for (let i = mixed; i < sp.count; i++) if (!(sp.tcpPort > 0 && (sp.first + i) % 100 < sp.tcpPct)) n++;
  return n;
}

async function startTheGateway(o: SoakOptions, tlsFiles: TlsFiles | null, urls: InspectorUrls): Promise<{ gw: SoakGateway; tls: string }> {
  const args = { workers: o.workers, jwtSecret: JWT_SECRET, apiKey: API_KEY, args: o.gwArgs, onStderr: (l: string) => urls.line(l) };
  const start = async (tls: TlsFiles | null): Promise<SoakGateway> =>
    startGateway({ ...args, tls, env: { MOOR_STORE_RELEASE_MS: String(STORE_RELEASE_MS), ...(o.gc ? await gcEnv(1) : {}) } });
  if (!tlsFiles) return { gw: await start(null), tls: 'off' };
  const gw = await start(tlsFiles);
  if (await speaksTls('127.0.0.1', gw.wsPort)) return { gw, tls: 'on' };
  status.log('--tls SKIPPED: the gateway was given tls.cert/tls.key but its WebSocket port does not complete a TLS handshake (TLS listeners are not implemented yet); running in plain text');
  await gw.stop();
  return { gw: await start(null), tls: 'skipped: the gateway does not speak TLS yet' };
}

async function post(apiPort: number, body: object): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${apiPort}/v1/push`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed };
}

/** Per transport: what the WebSocket sessions added (warm → mid) and what the raw TCP ones added (mid → ramped); without a split, the one transport gets the whole ramp. */
function transportCosts(warm: MemPoint, mid: MemPoint | null, ramped: MemPoint): GatewayRun['perTransport'] {
  if (mid) return { ws: stepCost(warm, mid, mid.transport[0] - warm.transport[0]), tcp: stepCost(mid, ramped, ramped.transport[1] - mid.transport[1]) };
  const all: StepCost = stepCost(warm, ramped);
  return ramped.transport[1] > 0 ? { ws: null, tcp: all } : { ws: all, tcp: null };
}

async function runGateway(o: SoakOptions, deadline: number, tlsFiles: TlsFiles | null, stem: string): Promise<GatewayRun> {
  phase = 'gateway: start';
  const urls = new InspectorUrls();
  const { gw, tls } = await startTheGateway(o, tlsFiles, urls);
  let gc: ForcedGc | null = null;
  const pidsByIndex = (): number[] => Array.from({ length: o.workers }, (_, w) => gw.workers.get(w) ?? 0);
  serverPids = pidsByIndex;
  primaryPid = gw.primaryPid;
  status.log(`gateway: ${o.workers} workers, ws 127.0.0.1:${gw.wsPort}, tcp :${gw.tcpPort}, api :${gw.apiPort}, TLS ${tls}; ${int(o.conns)} connections (${o.tcpPct}% raw TCP) at ${int(o.rate)}/s`);
  try {
    await sleep(settleMs(o, 2000));
    const specs = planSpecs(
      { ...clientBase(o, deadline), mode: 'moor', tls: tls === 'on', wsPort: gw.wsPort, wsPath: gw.wsPath, tcpPort: gw.tcpPort, prefix: 'soak-', apiPort: gw.apiPort },
      { total: o.conns, perClient: o.perClient, firstHost: o.firstHost, ratePerS: o.rate },
    );
    const split = o.tcpPct > 0 && o.tcpPct < 100;
    if (split) for (const sp of specs) sp.mixedFirst = o.warm > 0 && o.warm < o.conns ? Math.round((sp.count * o.warm) / o.conns) : 0;
    pool = await ClientPool.start(specs);
    status.log(`clients: ${specs.length} processes on ${specs.map((s) => s.localAddress).join(', ')}, <= ${int(Math.max(...specs.map((s) => s.count)))} connections each`);
    const p = pool;
    phase = 'gateway: ramp';
    gc = o.gc ? await ForcedGc.attach(pidsByIndex().map((pid) => ({ pid, urls }))) : ForcedGc.none('no forced GC (--no-gc)');
    const forced = gc;
    status.log(`gateway: ${gc.note}`);
    // Workers drop their mapped store pages every STORE_RELEASE_MS here (src/store/mapping-release.ts;
    // 10 s by default): a reading right after a ramp would count the pages the ramp's HELLOs
    // touched once per worker, a reading a moment later would not. Wait one interval so every
    // reading sees the same state: the steady one.
    const reading = (n: number, every: number) => async (): Promise<MemPoint> => {
      await sleep(STORE_RELEASE_MS + 500);
      return memPoint(pidsByIndex(), () => p.perWorker(), n, every, () => forced.collect(), () => p.perTransport());
    };
    let warm: MemPoint;
    let r: GatewayRun['ramp'];
    let wsRamp: GatewayRun['ramp'] | null = null;
    let mid: MemPoint | null = null;
    if (split) {
      // Warm-up (mixed), then the WebSocket sessions, a reading, then the raw TCP ones.
      ({ warm, ramp: wsRamp } = await rampPhase(o, 'gateway (WebSocket)', o.conns, deadline, reading(3, 500), wsTarget));
      await sleep(settleMs(o, 2000));
      mid = await reading(3, 500)();
      const ws = stepCost(warm, mid, mid.transport[0] - warm.transport[0]);
      status.log(`gateway: WebSocket sessions ${int(ws.bytesPerConn)} B of RSS each (anonymous ${int(ws.anonBytesPerConn)}, PSS ${int(ws.pssBytesPerConn)}); now the raw TCP ones`);
      r = joinRamps(wsRamp, await ramp(p, status, 'gateway (raw TCP)', o.conns, deadline));
    } else ({ warm, ramp: r } = await rampPhase(o, 'gateway', o.conns, deadline, reading(3, 500)));
    await sleep(settleMs(o, 2000));
    const ramped = await reading(3, 500)();
    const perTransport = transportCosts(warm, mid, ramped);
    if (perTransport.tcp) status.log(`gateway: raw TCP sessions ${int(perTransport.tcp.bytesPerConn)} B of RSS each (anonymous ${int(perTransport.tcp.anonBytesPerConn)}, PSS ${int(perTransport.tcp.pssBytesPerConn)})`);

    phase = 'gateway: hold';
    status.log(`hold ${o.holdS} s: heartbeats at the advised interval, dial test at ${o.dialPerS} pushes/s`);
    p.rate(o.dialPerS, (share) => ({ t: 'dial', perS: share }));
    const lost0 = p.sum((s) => s.lost);
    const holdEnd = performance.now() + o.holdS * 1000;
    while (performance.now() < holdEnd) {
      await sleep(Math.min(1000, Math.max(1, holdEnd - performance.now())));
      const left = (holdEnd - performance.now()) / 1000;
      const last = sampler.samples[sampler.samples.length - 1];
      status.live(`hold ${bar(o.holdS - left, o.holdS)} ${int(p.sum((s) => s.open))} open · ${int(p.sum((s) => s.lost) - lost0)} lost · ${int(p.sum((s) => s.pings))} pings · workers ${mb(last?.serverRss.reduce((a, b) => a + b, 0) ?? 0)} · ${left.toFixed(0)} s left`);
      if (p.dead()) throw new Error('a client process exited during the hold');
    }
    p.send({ t: 'dial', perS: 0 });
    const held = await reading(3, 1000)();
    // The inspectors stay open: the storm's loop probe uses them.
    const mem = memCost(warm, held, p);
    const holdGrowth = stepCost(ramped, held, held.transport[0] + held.transport[1]);
    status.log(`gateway: ${int(mem.bytesPerConn)} B of RSS per connection (anonymous ${int(mem.anonBytesPerConn)}, PSS ${int(mem.pssBytesPerConn)}; the hold added ${int(holdGrowth.bytesPerConn)}; per worker ${mem.bytesPerConnEach.map(int).join(', ')}); kernel ${int(mem.kernelBytesPerSocket)} B per socket; clients ${int(mem.clientBytesPerConn)} B per connection`);
    await sleep(1000);
    const dials = (await p.ask({ t: 'dial-report' }, 'dial-report', 10_000)).map((a) => a.r);
    const dial = {
      latency: summarize(dials.flatMap((d) => d.latencies)),
      api: summarize(dials.flatMap((d) => d.apiMs)),
      sent: dials.reduce((n, d) => n + d.sent, 0),
      missing: dials.reduce((n, d) => n + d.missing, 0),
      errors: dials.reduce<Record<string, number>>((acc, d) => {
        for (const [k, v] of Object.entries(d.errors)) acc[k] = (acc[k] ?? 0) + v;
        return acc;
      }, {}),
      cdf: dials.flatMap((d) => d.latencies).sort((a, b) => a - b),
    };
    status.log(`dial: ${int(dial.latency.n)} pushes, p50 ${dial.latency.p50} ms, p99 ${dial.latency.p99} ms, p999 ${dial.latency.p999} ms (API 202 p50 ${dial.api.p50} ms)`);
    const holdLost = p.sum((s) => s.lost) - lost0;

    phase = 'gateway: fan-out';
    const fan = await fanout(p, status, 'gateway', 101, o.fanoutRounds, 15_000, async (round) => {
      const res = await post(gw.apiPort, { all: true, body: `f${round}` });
      return { status: res.status, online: res.body.online };
    });

    let stormReport = null;
    if (o.storm) {
      phase = 'gateway: storm';
      const probe = (victim: number): Promise<LoopProbe | null> => {
        if (!forced.active) return Promise.resolve(null);
        const procs = forced.sessions().map((x) => ({ worker: pidsByIndex().indexOf(x.pid), pid: x.pid, insp: x.insp }));
        return LoopProbe.start(
          procs.filter((x) => x.worker >= 0 && x.worker !== victim),
          o.stormProfile,
        );
      };
      stormReport = await storm(p, gw, status, { pushesPerS: o.stormPerS, timeoutMs: o.stormTimeoutS * 1000, workers: o.workers, probe, stem });
    }
    phase = 'gateway: end';
    sampler.sample();
    return { ramp: r, wsRamp, mem, perTransport, holdGrowth, holdLost, dial, fanout: fan, storm: stormReport, tls, gc: forced.note, reasons: p.reasons(), problems: gw.problems, problemCount: gw.problemCount, stderr: gw.stderrTail(), clients: specs.length };
  } finally {
    gc?.close();
    phase = 'gateway: stop';
    await pool?.stop();
    pool = null;
    await gw.stop();
  }
}

async function main(): Promise<number> {
  const parsed = parseOptions(process.argv.slice(2), ROOT);
  if (parsed === 'help') {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const o = parsed;
  const deadline = Date.now() + o.timeoutS * 1000;
  setTimeout(() => {
    status.log(`still running after --timeout-s=${o.timeoutS}: stopping everything`);
    killAll();
    process.exit(2);
  }, o.timeoutS * 1000).unref();
  mkdirSync(o.outDir, { recursive: true });
  const started = new Date();
  status.log(`${o.quick ? 'quick' : 'full'} run: ${int(o.conns)} connections, ${o.workers} workers, hold ${o.holdS} s, bound ${o.timeoutS} s; reports in ${path.relative(process.cwd(), o.outDir) || '.'}`);
  sampler.start(o.sampleS * 1000);
  const tlsFiles = o.tls ? selfSignedCert() : null;
  const bare = o.bareConns > 0 ? await runBare(o, deadline, tlsFiles) : null;
  const bareNet = o.bareTcpConns > 0 ? await runBareNet(o, deadline) : null;
  const stem = path.join(o.outDir, `soak-${started.toISOString().replace(/[:.]/g, '-')}`);
  const gateway = await runGateway(o, deadline, tlsFiles, stem);
  sampler.stop();
  const report = buildReport(o, started, (performance.now() - t0) / 1000, bare, bareNet, gateway, sampler);
  writeFileSync(`${stem}.json`, `${JSON.stringify(report, null, 1)}\n`);
  writeFileSync(`${stem}.html`, renderHtml(report));
  const line = headline(report, `${stem}.html`);
  for (const [k, v] of Object.entries(line.targets)) status.log(`target ${k}: ${v.ok === null ? 'not measured' : v.ok ? 'met' : 'MISSED'} (${v.value} vs ${v.limit})`);
  if (report.holdIoStallPct.max > 5) status.log(`warning: tasks waited for I/O up to ${report.holdIoStallPct.max}% of the time during the hold (mean ${report.holdIoStallPct.mean}%, /proc/pressure/io): durable pushes wait for the disk's fsync, so the dial test's latency includes the disk's`);
  if (report.othersCpuCores > 0.2) status.log(`warning: other processes used ${report.othersCpuCores} cores on average during the run: timings and kernel figures include their load`);
  status.log(`reports: ${stem}.json, ${stem}.html`);
  process.stdout.write(`${JSON.stringify(line)}\n`);
  // A target this run did not measure (e.g. --no-storm) is not a miss.
  return Object.values(line.targets).every((t) => t.ok !== false) ? 0 : 1;
}

main().then(
  (code) => {
    killAll();
    process.exit(code);
  },
  (err) => {
    status.log(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : err}`);
    killAll();
    process.exit(2);
  },
);
