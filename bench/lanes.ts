/**
 * `npm run bench -- lanes [--quick] [--compare] [...]`: flow control under load (issue 10).
 * Target: while a bulk broadcast runs to every connected device and one API key floods,
 * high-priority single-device pushes from another key keep their p99 latency below 2x
 * their idle p99.
 *
 * One gateway (`moor serve`, bench/lib/servers.ts), `devices` lean WebSocket clients in
 * processes of `per-client` each over 127.0.0.x source addresses (bench/lib/idle-client.ts
 * through client-pool.ts), and `probes` WebSocket devices in this process that receive
 * the high-priority pushes (`probe-rate` per second, round robin, durable by default).
 * The load comes from a child process (lanes/load.ts) so this process's event loop only
 * times probes. Two conditions alternate in blocks of `block-s` (after a switch,
 * `settle-s` are not measured), `cycles` times, so what else runs on the machine weighs
 * on both alike:
 *
 *   idle   probes only.
 *   load   probes, plus a bulk broadcast (`all: true`, priority bulk) `broadcast-per-s`
 *          times a second from one key, and a flood of device pushes from another key
 *          (`flood-per-s` at most, `flood-concurrency` in flight; over its budget of
 *          `key-rate`/s the pushes are queued, then refused with 429).
 *
 * Then `slow`: a third of the client processes get SIGSTOP (their devices stop reading)
 * while a heavier broadcast goes on; the worker's RSS is sampled every second, and slow
 * sessions are closed after `slow-ms`.
 *
 * Latency = from the POST leaving this process to the PUSH frame read here (one clock).
 * Probe times are a seeded Poisson stream (`seed`), so they sample the periodic broadcasts
 * at every phase. Per phase the JSON also gives the gateway's own view of the probes, from
 * /metrics read around each block: their store write (`store_write_high`, durable probes)
 * and their wait for the high lane (`lane_wait_high`); and the machine's I/O stall
 * (`io_stall_pct`, /proc/pressure/io), since durable probes wait for the disk's fsync.
 * The load generators run at nice 10 (see lowPriority).
 * `--compare` repeats the blocks on a gateway with flow control disarmed (one turn does
 * all queued work, so a broadcast is never sliced; no key budget).
 *
 * Progress on stderr; one JSON line on stdout; the chart in bench/out/lanes.svg.
 * Exit code 1 when the target is missed, 2 on a failed run.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { hello, RawConnection } from '../src/client/raw';
import { FrameType } from '../src/protocol/constants';
import { moor } from '../src/protocol/generated/moor';
import { freePort } from '../src/util/ports';
import { type Block, lanesChart, type Point, type Series } from './lanes/chart';
import { apiRequest } from './lanes/http';
import type { LoadSpec, LoadStats, ToLoad } from './lanes/load';
import { PhaseCounters } from './lanes/sched';
import { type Client, connectAll, startClient } from './lib/client-pool';
import { killAll, own, readRss, sleep } from './lib/procs';
import { type Server, startGateway } from './lib/servers';
import { mintToken } from './lib/ws-wire';
import { type Summary, summarize } from './soak/stats';

interface Options {
  devices: number;
  perClient: number;
  firstHost: number;
  probes: number;
  probeRate: number;
  cycles: number;
  blockS: number;
  settleS: number;
  slowPhaseS: number;
  broadcastPerS: number;
  broadcastBody: number;
  slowBroadcastPerS: number;
  slowBroadcastBody: number;
  floodConcurrency: number;
  floodPerS: number;
  floodDurable: boolean;
  /** High-priority probe pushes durable (stored, then sent) or transient. */
  probeDurable: boolean;
  /** The default unit's budget per API key per worker (the flooder exceeds it). */
  keyRate: number;
  keyQueue: number;
  maxBuffered: number;
  slowMs: number;
  workers: number;
  compare: boolean;
  slow: boolean;
  /** Write CPU profiles of the gateway's processes into this directory. */
  prof: string;
  /** Write every probe's latency (phase, seconds since start, ms) as JSON to this file. */
  samples: string;
  /** Extra `moor serve` flags (--gateway-arg=--lanes.turn_sends=256, repeatable). */
  gatewayArgs: string[];
  /** What runs in the load phase (to take the load apart). */
  load: 'both' | 'broadcast' | 'flood';
  timeoutS: number;
  /** Seeds the probes' Poisson arrival times. */
  seed: number;
}

const USAGE = `usage: npm run bench -- lanes [--quick] [--compare] [--no-slow] [--devices=6000] [--per-client=2000]
  [--first-host=40] [--probes=20] [--probe-rate=50] [--cycles=6] [--block-s=4] [--settle-s=1]
  [--broadcast-per-s=10] [--broadcast-body=1024] [--slow-phase-s=20] [--slow-broadcast-per-s=10] [--slow-broadcast-body=1024]
  [--flood-concurrency=8] [--flood-per-s=2000] [--flood-durable=true] [--probe-durable=true]
  [--key-rate=200] [--key-queue=2000] [--max-buffered=65536] [--slow-ms=8000] [--workers=1] [--load=both|broadcast|flood]
  [--prof=DIR] [--samples=FILE] [--gateway-arg=--section.key=value ...] [--timeout-s=600] [--seed=1]`;

const INTS: Record<string, keyof Options> = {
  devices: 'devices',
  'per-client': 'perClient',
  'first-host': 'firstHost',
  probes: 'probes',
  'probe-rate': 'probeRate',
  cycles: 'cycles',
  'block-s': 'blockS',
  'settle-s': 'settleS',
  'slow-phase-s': 'slowPhaseS',
  'broadcast-per-s': 'broadcastPerS',
  'broadcast-body': 'broadcastBody',
  'slow-broadcast-per-s': 'slowBroadcastPerS',
  'slow-broadcast-body': 'slowBroadcastBody',
  'flood-concurrency': 'floodConcurrency',
  'flood-per-s': 'floodPerS',
  'key-rate': 'keyRate',
  'key-queue': 'keyQueue',
  'max-buffered': 'maxBuffered',
  'slow-ms': 'slowMs',
  workers: 'workers',
  'timeout-s': 'timeoutS',
  seed: 'seed',
};

function parseArgs(argv: string[]): Options {
  const o: Options = {
    devices: 6000, perClient: 2000, firstHost: 40, probes: 20, probeRate: 50, cycles: 6, blockS: 4, settleS: 1, slowPhaseS: 20,
    broadcastPerS: 10, broadcastBody: 1024, slowBroadcastPerS: 10, slowBroadcastBody: 1024, floodConcurrency: 8, floodPerS: 2000, floodDurable: true, probeDurable: true, keyRate: 200, keyQueue: 2000,
    maxBuffered: 65_536, slowMs: 8_000, workers: 1, compare: false, slow: true, prof: '', samples: '', gatewayArgs: [], load: 'both', timeoutS: 600, seed: 1,
  };
  if (argv.includes('--quick')) Object.assign(o, { devices: 1500, perClient: 500, cycles: 4, blockS: 2, slowPhaseS: 15 });
  for (const a of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    const [k, v] = m ? [m[1], m[2]] : ['', undefined];
    if (k === 'help') {
      process.stderr.write(`${USAGE}\n`);
      process.exit(0);
    } else if (k === 'quick' && v === undefined) continue;
    else if (k === 'compare' && v === undefined) o.compare = true;
    else if (k === 'no-slow' && v === undefined) o.slow = false;
    else if (k === 'prof' && v) o.prof = path.resolve(v);
    else if (k === 'samples' && v) o.samples = path.resolve(v);
    else if (k === 'gateway-arg' && v?.startsWith('--')) o.gatewayArgs.push(v);
    else if (k === 'flood-durable' && (v === 'true' || v === 'false')) o.floodDurable = v === 'true';
    else if (k === 'probe-durable' && (v === 'true' || v === 'false')) o.probeDurable = v === 'true';
    else if (k === 'load' && (v === 'both' || v === 'broadcast' || v === 'flood')) o.load = v;
    else if (k in INTS && v !== undefined && /^\d+$/.test(v)) (o[INTS[k]] as number) = Number(v);
    else {
      process.stderr.write(`bad argument ${a}\n${USAGE}\n`);
      process.exit(2);
    }
  }
  return o;
}

const SECRET = randomBytes(24).toString('base64url');
const KEYS = { high: 'bench-high-key', bulk: 'bench-bulk-key', flood: 'bench-flood-key' };
const log = (m: string): void => {
  process.stderr.write(`[lanes] ${m}\n`);
};


const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

function request(port: number, method: string, p: string, body?: string, key?: string): Promise<{ status: number; text: string }> {
  return apiRequest(agent, port, method, p, body, key);
}

/** The probe devices and the high-priority pushes sent to them, matched by body. */
class Probes {
  private readonly conns: RawConnection[] = [];
  private readonly pending = new Map<string, { t0: number; phase: number }>();
  readonly samples: Point[][] = [];
  lost = 0;
  private n = 0;

  constructor(
    private readonly apiPort: number,
    private readonly t0: number,
    private readonly durable: boolean,
    private readonly random: () => number,
  ) {}

  async open(wsPort: number, count: number): Promise<void> {
    const exp = Math.floor(Date.now() / 1000) + 3600;
    for (let i = 0; i < count; i++) {
      const id = `probe-${i}`;
      const c = await RawConnection.ws(`ws://127.0.0.1:${wsPort}/ws`);
      c.send(hello({ deviceId: id, token: mintToken(SECRET, id, exp), client: 'bench-lanes' }));
      const f = await c.nextFrame(10_000);
      if (f.type !== FrameType.WELCOME) throw new Error(`probe ${id}: expected WELCOME, got frame type ${f.type}`);
      this.conns.push(c);
      void this.read(c);
    }
  }

  private async read(c: RawConnection): Promise<void> {
    for (;;) {
      let f: { type: number; payload: Buffer };
      try {
        f = await c.nextFrame(3_600_000);
      } catch {
        return;
      }
      if (f.type !== FrameType.PUSH) continue;
      const now = performance.now();
      const key = Buffer.from(moor.v1.Push.decode(f.payload).body).toString();
      const p = this.pending.get(key);
      if (!p) continue;
      this.pending.delete(key);
      this.samples[p.phase].push({ t: (p.t0 - this.t0) / 1000, v: now - p.t0 });
    }
  }

  /**
   * Sends `rate` pushes/s on average for `ms` (samples of `phase` accumulate over calls),
   * then waits up to 3 s for the last ones. The gaps are exponential (a Poisson stream,
   * seeded): probes at a fixed period would sample the broadcasts, which also come at a
   * fixed period, at the same few phases only.
   */
  async run(phase: number, rate: number, ms: number): Promise<void> {
    this.samples[phase] ??= [];
    const every = 1000 / rate;
    const end = performance.now() + ms;
    let next = performance.now();
    while (performance.now() < end) {
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
      next += -Math.log(1 - this.random()) * every;
      const n = this.n++;
      const device = `probe-${n % this.conns.length}`;
      const body = `h${n}`;
      this.pending.set(body, { t0: performance.now(), phase });
      void request(this.apiPort, 'POST', '/v1/push', JSON.stringify({ device_id: device, body, priority: 'high', durable: this.durable }), KEYS.high);
    }
    for (let i = 0; i < 30 && [...this.pending.values()].some((p) => p.phase === phase); i++) await sleep(100);
    for (const [k, p] of this.pending) {
      if (p.phase !== phase) continue;
      this.pending.delete(k);
      this.lost++;
    }
  }

  close(): void {
    for (const c of this.conns) c.close();
  }
}

/**
 * The load generators (client processes, the loader) run at nice 10: on this 2-core
 * machine they would otherwise take the CPU from the gateway they are measuring, which
 * in production runs on its own cores.
 */
function lowPriority(pid: number): void {
  try {
    os.setPriority(pid, 10);
  } catch {}
}

/** The load process (lanes/load.ts): switched on and off; `end` resolves its stats. */
class Loader {
  private readonly child: ChildProcess;
  private readonly stats: Promise<LoadStats>;

  constructor(spec: LoadSpec) {
    this.child = fork(path.join(__dirname, 'lanes', 'load.js'), [JSON.stringify(spec)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    own(this.child);
    lowPriority(this.child.pid as number);
    this.stats = new Promise((resolve, reject) => {
      this.child.on('message', (m: { t: string; stats: LoadStats }) => {
        if (m.t === 'stats') resolve(m.stats);
      });
      this.child.once('exit', (code) => reject(new Error(`the load process exited (${code}) without a report`)));
    });
  }

  send(m: ToLoad): void {
    if (this.child.connected) this.child.send(m);
  }

  end(): Promise<LoadStats> {
    this.send({ t: 'end' });
    return this.stats;
  }
}

/** One histogram's buckets from Prometheus text (prom-client puts `le` first): le → cumulative count. */
function buckets(text: string, name: string, label: string): Map<string, number> {
  const out = new Map<string, number>();
  const re = new RegExp(`^${name}_bucket\\{le="([^"]+)",${label}\\} (\\d+)`, 'gm');
  for (let m = re.exec(text); m; m = re.exec(text)) out.set(m[1], Number(m[2]));
  return out;
}

/** Cumulative histogram buckets summed over differences of two /metrics readings. */
class Hist {
  private readonly sum = new Map<string, number>();
  constructor(
    private readonly name: string,
    private readonly label: string,
  ) {}

  add(before: string, after: string): void {
    const a = buckets(before, this.name, this.label);
    for (const [le, n] of buckets(after, this.name, this.label)) this.sum.set(le, (this.sum.get(le) ?? 0) + n - (a.get(le) ?? 0));
  }

  report(): Record<string, number> {
    const count = this.sum.get('+Inf') ?? 0;
    const share = (le: string) => (count ? r1((100 * (this.sum.get(le) ?? 0)) / count) : Number.NaN);
    return { n: count, pct_within_1ms: share('0.001'), pct_within_2ms: share('0.002'), pct_within_5ms: share('0.005'), pct_within_10ms: share('0.01'), pct_within_25ms: share('0.025') };
  }
}

class StageHists {
  readonly lane = new Hist('moor_lane_wait_seconds', 'lane="high"');
  readonly store = new Hist('moor_push_store_seconds', 'lane="high"');
  add(before: string, after: string): void {
    this.lane.add(before, after);
    this.store.add(before, after);
  }
}

function gauge(text: string, line: string): number {
  const m = new RegExp(`^${line.replace(/[{}"]/g, '\\$&')} ([\\d.e+]+)`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

/** A small seeded PRNG (mulberry32): the same probe times on every run of a seed. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const r1 = (x: number): number => Math.round(x * 10) / 10;
const MB = 1024 * 1024;

interface Run {
  idle: Summary;
  load: Summary;
  ratio: number;
  lost: number;
  loadStats: LoadStats;
  laneHigh: Record<string, Record<string, number>>;
  storeHigh: Record<string, Record<string, number>>;
  /** Percent of each phase's time some task waited for I/O (/proc/pressure/io; 0 without PSI). */
  ioStall: { idle: number; load: number };
  /** ms per second the gateway's worker and this process waited for a CPU (run queue), per phase. */
  runWait: Record<'idle' | 'load', { worker: number; worker_main: number; bench: number; steal_pct: number }>;
  slow: Record<string, number> | null;
  series: Series[];
  blocks: Block[];
  rss: Point[];
}

const COLORS = { idle: '#2b7bba', load: '#d7301f', slow: '#7a0177' };

async function experiment(o: Options, label: string, extra: string[], withSlow: boolean): Promise<Run> {
  const apiPort = await freePort();
  const server: Server = await startGateway({
    nodeArgs: o.prof ? ['--cpu-prof', `--cpu-prof-dir=${o.prof}`] : [],
    jwtSecret: SECRET,
    apiKey: Object.values(KEYS).join(','),
    args: [
      `--workers=${o.workers}`,
      `--api.port=${apiPort}`,
      `--limits.push_per_s=${o.keyRate}`,
      `--limits.push_burst=${o.keyRate}`,
      `--limits.push_queue=${o.keyQueue}`,
      `--limits.max_buffered=${o.maxBuffered}`,
      `--limits.slow_ms=${o.slowMs}`,
      ...o.gatewayArgs,
      ...extra,
    ],
  });
  log(`${label}: gateway up (worker pid ${server.pid}, ws ${server.port}, api ${apiPort})`);
  const procs = Math.max(1, Math.ceil(o.devices / o.perClient));
  const clients: Client[] = [];
  for (let k = 0; k < procs; k++) {
    const first = Math.floor((k * o.devices) / procs);
    const count = Math.floor(((k + 1) * o.devices) / procs) - first;
    clients.push(
      await startClient({
        mode: 'moor', host: '127.0.0.1', port: server.port, path: server.path, localAddress: `127.0.0.${o.firstHost + k}`,
        prefix: 'bulk-', first, count, secret: SECRET, inflight: 200, pingEveryMs: 60_000, handshakeTimeoutMs: 20_000, maxLifeMs: o.timeoutS * 1000,
      }),
    );
  }
  await connectAll(`${label}: devices`, clients, Date.now() + 120_000, log);
  for (const c of clients) lowPriority(c.pid);
  const t0 = performance.now();
  const now = () => (performance.now() - t0) / 1000;
  const probes = new Probes(apiPort, t0, o.probeDurable, mulberry32(o.seed));
  await probes.open(server.port, o.probes);
  const rss: Point[] = [];
  const sampler = setInterval(() => {
    try {
      rss.push({ t: now(), v: readRss(server.pid).rss / MB });
    } catch {}
  }, 1000);
  const spec = (broadcastPerS: number, broadcastBody: number): LoadSpec => ({
    apiPort, bulkKey: KEYS.bulk, floodKey: KEYS.flood, broadcastPerS, broadcastBody, floodConcurrency: o.floodConcurrency, floodPerS: o.floodPerS,
    floodBody: 256, floodDurable: o.floodDurable, floodPrefix: 'bulk-', floodCount: o.devices, maxLifeMs: o.timeoutS * 1000,
  });
  const blocks: Block[] = [];
  // The gateway's own view of the probes, per phase: how long their store write took
  // (moor_push_store_seconds) and how long they waited for the high lane, from /metrics
  // read before and after each block (the probes are the only high-priority pushes).
  const stages = [new StageHists(), new StageHists()];
  // The machine per phase: the I/O stall (durable probes wait for fsyncs, so a disk slow
  // during one phase moves that phase's p99, and with it the ratio), CPU queues and steal.
  const machine = [new PhaseCounters(server.pid), new PhaseCounters(server.pid)];
  const block = async (phase: number, color: string) => {
    const before = (await request(apiPort, 'GET', '/metrics')).text;
    const start = now();
    machine[phase].begin();
    await probes.run(phase, o.probeRate, o.blockS * 1000);
    machine[phase].end();
    blocks.push({ color, start, end: now() });
    stages[phase]?.add(before, (await request(apiPort, 'GET', '/metrics')).text);
  };

  // Idle and load alternate; the first seconds after a switch (a broadcast still landing,
  // a flood's queue still draining) are not measured.
  const loader = new Loader(spec(o.broadcastPerS, o.broadcastBody));
  for (let c = 0; c < o.cycles; c++) {
    await block(0, COLORS.idle);
    loader.send({ t: 'on', broadcast: o.load !== 'flood', flood: o.load !== 'broadcast' });
    await sleep(o.settleS * 1000);
    await block(1, COLORS.load);
    loader.send({ t: 'off' });
    await sleep(o.settleS * 1000 + (c === o.cycles - 1 ? 0 : Math.ceil((1000 * o.keyQueue) / o.keyRate)));
  }
  const loadStats = await loader.end();
  const idle = summarize(probes.samples[0].map((p) => p.v));
  const loaded = summarize(probes.samples[1].map((p) => p.v));
  const series: Series[] = [
    { name: `${label} idle`, color: COLORS.idle, points: probes.samples[0], p99: idle.p99 },
    { name: `${label} broadcast + flood`, color: COLORS.load, points: probes.samples[1], p99: loaded.p99 },
  ];
  log(`${label} idle: n ${idle.n}, p50 ${idle.p50} ms, p99 ${idle.p99} ms, max ${idle.max} ms`);
  log(`${label} load: n ${loaded.n}, p50 ${loaded.p50} ms, p99 ${loaded.p99} ms, max ${loaded.max} ms`);
  const bms = summarize(loadStats.broadcastMs);
  log(`${label} load: ${loadStats.broadcasts} broadcasts to ${loadStats.broadcastOnline} devices (202 after ${bms.p50} ms p50), flood ${JSON.stringify(loadStats.flood)}`);
  const laneHigh = { idle: stages[0].lane.report(), load: stages[1].lane.report() };
  const storeHigh = { idle: stages[0].store.report(), load: stages[1].store.report() };
  const runWait = { idle: machine[0].runWait(), load: machine[1].runWait() };
  log(`${label} waited for a CPU (ms per s): idle ${JSON.stringify(runWait.idle)}, load ${JSON.stringify(runWait.load)}`);
  log(`${label} high-priority store writes (share within 1/2/5/10/25 ms): idle ${JSON.stringify(storeHigh.idle)}, load ${JSON.stringify(storeHigh.load)}`);

  let slow: Record<string, number> | null = null;
  if (withSlow && clients.length >= 2) {
    const stopped = clients.slice(0, Math.max(1, Math.floor(clients.length / 3)));
    const stalled = stopped.reduce((n, c) => n + (c.stats?.up ?? 0), 0);
    const start = now();
    const before = readRss(server.pid).rss;
    for (const c of stopped) process.kill(c.pid, 'SIGSTOP');
    log(`${label} slow: ${stalled} devices stopped reading (SIGSTOP on ${stopped.length} of ${clients.length} client processes)`);
    const bg = new Loader(spec(o.slowBroadcastPerS, o.slowBroadcastBody));
    bg.send({ t: 'on', broadcast: true, flood: false });
    await probes.run(2, o.probeRate, o.slowPhaseS * 1000);
    const bgStats = await bg.end();
    blocks.push({ color: COLORS.slow, start, end: now() });
    const after = readRss(server.pid).rss;
    const m = (await request(apiPort, 'GET', '/metrics')).text;
    for (const c of stopped) process.kill(c.pid, 'SIGCONT');
    const s = summarize(probes.samples[2].map((p) => p.v));
    series.push({ name: `${label} a third stalled`, color: COLORS.slow, points: probes.samples[2], p99: s.p99 });
    const inPhase = rss.filter((p) => p.t >= start);
    const peak = Math.max(before / MB, ...inPhase.map((p) => p.v)) * MB;
    slow = {
      stopped_devices: stalled,
      broadcasts: bgStats.broadcasts,
      broadcast_mb_per_device: r1((bgStats.broadcasts * o.slowBroadcastBody) / MB),
      rss_before_mb: r1(before / MB),
      rss_peak_mb: r1(peak / MB),
      rss_end_mb: r1(after / MB),
      buffer_bound_mb: r1((stalled * o.maxBuffered) / MB),
      slow_closed: gauge(m, 'moor_flow_refused_total{reason="slow"}'),
      p99_ms: s.p99,
    };
    log(`${label} slow: RSS ${slow.rss_before_mb} -> peak ${slow.rss_peak_mb} -> ${slow.rss_end_mb} MB (buffers bounded by ${slow.buffer_bound_mb} MB), ${slow.slow_closed} slow sessions closed; high p99 ${s.p99} ms`);
  }

  clearInterval(sampler);
  probes.close();
  for (const c of clients) await c.stop();
  await server.stop();
  const ioStall = { idle: machine[0].ioStallPct(), load: machine[1].ioStallPct() };
  log(`${label} I/O stall (% of the time some task waited for I/O): idle ${ioStall.idle}, load ${ioStall.load}`);
  return { idle, load: loaded, ratio: loaded.p99 / idle.p99, lost: probes.lost, loadStats, laneHigh, storeHigh, ioStall, runWait, slow, series, blocks, rss };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const watchdog = setTimeout(() => {
    log(`timed out after ${o.timeoutS} s`);
    killAll();
    process.exit(2);
  }, o.timeoutS * 1000);
  watchdog.unref();
  const run = await experiment(o, 'lanes', [], o.slow);
  let compare: Run | null = null;
  // Disarmed: one turn takes every queued job whole (no slicing between a broadcast's shards), no key budget.
  if (o.compare) compare = await experiment({ ...o, devices: o.devices }, 'disarmed', ['--lanes.turn_sends=1000000', '--limits.push_per_s=1000000', '--limits.push_burst=1000000'], false);

  const outDir = path.resolve(__dirname, '..', '..', 'bench', 'out');
  mkdirSync(outDir, { recursive: true });
  const svg = path.join(outDir, 'lanes.svg');
  const title = `bench lanes: ${o.devices} devices, ${o.workers} worker(s): high-priority p99 ${run.idle.p99} ms idle, ${run.load.p99} ms under broadcast + flood (${run.ratio.toFixed(2)}x)`;
  writeFileSync(svg, lanesChart(title, run.series, run.blocks, run.rss));
  if (o.samples) writeFileSync(o.samples, JSON.stringify({ blocks: run.blocks, series: run.series }));
  log(`chart: ${svg}`);
  const s = run.loadStats;
  const line = {
    bench: 'lanes',
    devices: o.devices,
    workers: o.workers,
    probes: o.probes,
    probe_rate: o.probeRate,
    probe_arrivals: 'poisson',
    probe_durable: o.probeDurable,
    gateway_args: o.gatewayArgs,
    cycles: o.cycles,
    block_s: o.blockS,
    idle: run.idle,
    load: run.load,
    p99_ratio: Math.round(run.ratio * 100) / 100,
    target: 'load p99 < 2x idle p99',
    pass: run.ratio < 2,
    lost: run.lost,
    broadcast: { per_s: o.broadcastPerS, body: o.broadcastBody, done: s.broadcasts, devices: s.broadcastOnline, fanout_ms: summarize(s.broadcastMs) },
    flood: { concurrency: o.floodConcurrency, per_s_max: o.floodPerS, durable: o.floodDurable, key_rate: o.keyRate, key_queue: o.keyQueue, ...s.flood },
    lane_wait_high: run.laneHigh,
    store_write_high: run.storeHigh,
    io_stall_pct: run.ioStall,
    run_wait_ms_per_s: run.runWait,
    slow: run.slow,
    compare: compare ? { idle: compare.idle, load: compare.load, p99_ratio: Math.round(compare.ratio * 100) / 100, lane_wait_high: compare.laneHigh, store_write_high: compare.storeHigh, broadcasts: compare.loadStats.broadcasts, flood: compare.loadStats.flood } : null,
    chart: 'bench/out/lanes.svg',
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  clearTimeout(watchdog);
  process.exit(line.pass ? 0 : 1);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : err}\n`);
  killAll();
  process.exit(2);
});
