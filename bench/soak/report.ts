/**
 * The soak report: everything a run measured (JSON), the targets checked against it,
 * the memory extrapolated to 1M connections per worker, and the one-line headline.
 */
import os from 'node:os';
import type { FanoutResult } from './fanout';
import type { MemCost, StepCost } from './memory';
import type { SoakOptions } from './options';
import type { RampResult } from './ramp';
import type { Sample, Sampler } from './sampler';
import { cdf, type Summary } from './stats';
import type { StormReport } from './storm';

export interface BareRun {
  processes: number;
  tls: boolean;
  /** How the memory readings were taken (forced GC or not). */
  gc: string;
  ramp: RampResult;
  mem: MemCost;
  fanout: FanoutResult;
}

/** The bare node:net baseline (bare-net.ts): the floor for a raw TCP session. */
export interface BareNetRun {
  processes: number;
  gc: string;
  ramp: RampResult;
  mem: MemCost;
}

export interface GatewayRun {
  tls: string;
  gc: string;
  clients: number;
  /** The ramp after the warm-up (both parts when it was split by transport). */
  ramp: RampResult;
  /** The WebSocket part of a ramp split by transport, else null. */
  wsRamp: RampResult | null;
  /** Warm-up reading to held reading, after the hold: the headline. */
  mem: MemCost;
  /** Right after the ramp: what the WebSocket sessions added, then what the raw TCP ones added (null: none of that transport). */
  perTransport: { ws: StepCost | null; tcp: StepCost | null };
  /** End of ramp to end of hold, per connection held: what the hold itself added (pushes, store, heartbeats). */
  holdGrowth: StepCost;
  /** Sessions lost during the hold (none should be). */
  holdLost: number;
  dial: { latency: Summary; api: Summary; sent: number; missing: number; errors: Record<string, number>; cdf: number[] };
  fanout: FanoutResult;
  storm: StormReport | null;
  reasons: Record<string, number>;
  problems: string[];
  problemCount: number;
  stderr: string;
}

export interface Target {
  /** null: not measured in this run. */
  ok: boolean | null;
  value: number | null;
  limit: string;
}

export interface Extrapolation {
  connections: number;
  user_bytes: number;
  kernel_bytes: number;
  total_gb: number;
  method: string;
}

export interface SoakReport {
  bench: 'soak';
  mode: 'quick' | 'full';
  started: string;
  seconds: number;
  node: string;
  machine: { cpus: number; mem_gb: number };
  options: SoakOptions;
  bare: (Omit<BareRun, 'fanout'> & { fanout: FanoutResult }) | null;
  bareNet: BareNetRun | null;
  /** Bytes per connection per transport, each next to its own baseline (see MEMORY_METHOD). */
  memory: MemorySummary;
  gateway: Omit<GatewayRun, 'dial'> & { dial: Omit<GatewayRun['dial'], 'cdf'> & { cdf: Array<[number, number]> } };
  idleCpuCores: number;
  /** Mean cores used by other processes on the machine during the run (a shared machine skews every figure). */
  othersCpuCores: number;
  /** Percent of the hold that some task waited for I/O (/proc/pressure/io), mean and worst sample: a slow disk slows durable pushes' 202. */
  holdIoStallPct: { mean: number; max: number };
  extrapolation: Extrapolation;
  targets: Record<string, Target>;
  samples: Sample[];
}

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

export function extrapolate(mem: MemCost): Extrapolation {
  const perWorkerRss = mean(mem.warm.rss.filter((r) => r > 0));
  const perWorkerConns = mean(mem.warm.conns);
  const fixed = Math.max(0, perWorkerRss - perWorkerConns * mem.bytesPerConn);
  const n = 1_000_000;
  const user = fixed + n * mem.bytesPerConn;
  const kernel = n * mem.kernelBytesPerSocket;
  return {
    connections: n,
    user_bytes: Math.round(user),
    kernel_bytes: Math.round(kernel),
    total_gb: +((user + kernel) / 1024 ** 3).toFixed(2),
    method:
      'linear: one worker\'s RSS without connections (mean worker RSS at the baseline minus its connections x bytes/conn) ' +
      '+ 1e6 x measured RSS bytes/conn ((sum of held RSS - sum of baseline RSS) / connections added, min of 3 readings each) ' +
      '+ 1e6 x kernel bytes/socket (delta of socket slab caches + sockstat TCP buffer pages over the same interval / (2 x connections added): both ends live in this kernel; machine-wide, so skewed by other processes\' sockets). ' +
      'Not measured at 1M: a process here may hold 20,000 fds.',
  };
}

function ratio(a: number | undefined, b: number | undefined): number | null {
  return a && b ? +(a / b).toFixed(3) : null;
}

export const MEMORY_METHOD =
  'RSS: sum over the server processes of VmRSS (/proc/<pid>/status), each the min of 3 readings after a full GC forced through the inspector; ' +
  'per connection = (reading after - reading before) / connections added. Baselines: bare uWS.js (one process per worker) for WebSocket, ' +
  'a bare node:net cluster (as the gateway\'s raw TCP listener) for raw TCP. Per transport: the gateway ramp adds a mixed warm-up, then every ' +
  'WebSocket session, a reading, then every raw TCP session, a reading. Headline bytes_per_conn: warm-up to the end of the hold, the mix. ' +
  'PSS (smaps_rollup) counts a page shared by k processes 1/k in each: the store\'s memory map (data.mdb), which every worker maps, counts once ' +
  'instead of once per worker.';

export interface TransportMemory {
  /** Sessions the figure was measured over. */
  conns: number;
  rss_bytes_per_conn: number;
  anon_bytes_per_conn: number;
  pss_bytes_per_conn: number;
  parts_per_conn: StepCost['partsPerConn'];
  baseline: string;
  baseline_bytes_per_conn: number | null;
  /** rss / baseline. */
  ratio: number | null;
  /** Raw TCP: rss / bare uWS.js (the 1.5x target is against bare uWS.js). */
  ratio_vs_bare_uws?: number | null;
}

export interface MemorySummary {
  method: string;
  /** The mix after the hold vs bare uWS.js: the target. */
  bytes_per_conn: number;
  bare_uws_bytes_per_conn: number | null;
  ratio: number | null;
  target_ratio: 1.5;
  pss_bytes_per_conn: number;
  anon_bytes_per_conn: number;
  file_bytes_per_conn: number;
  hold_growth_bytes_per_conn: number;
  ws: TransportMemory | null;
  tcp: TransportMemory | null;
}

function transportMemory(c: StepCost | null, baseline: string, base: number | null): TransportMemory | null {
  if (!c || c.conns <= 0) return null;
  return {
    conns: c.conns,
    rss_bytes_per_conn: c.bytesPerConn,
    anon_bytes_per_conn: c.anonBytesPerConn,
    pss_bytes_per_conn: c.pssBytesPerConn,
    parts_per_conn: c.partsPerConn,
    baseline,
    baseline_bytes_per_conn: base,
    ratio: ratio(c.bytesPerConn, base ?? undefined),
  };
}

export function memorySummary(bare: BareRun | null, bareNet: BareNetRun | null, gw: GatewayRun): MemorySummary {
  const uws = bare?.mem.bytesPerConn ?? null;
  const tcp = transportMemory(gw.perTransport.tcp, 'bare node:net (cluster)', bareNet?.mem.bytesPerConn ?? null);
  if (tcp) tcp.ratio_vs_bare_uws = ratio(tcp.rss_bytes_per_conn, uws ?? undefined);
  return {
    method: MEMORY_METHOD,
    bytes_per_conn: gw.mem.bytesPerConn,
    bare_uws_bytes_per_conn: uws,
    ratio: ratio(gw.mem.bytesPerConn, uws ?? undefined),
    target_ratio: 1.5,
    pss_bytes_per_conn: gw.mem.pssBytesPerConn,
    anon_bytes_per_conn: gw.mem.anonBytesPerConn,
    file_bytes_per_conn: gw.mem.fileBytesPerConn,
    hold_growth_bytes_per_conn: gw.holdGrowth.bytesPerConn,
    ws: transportMemory(gw.perTransport.ws, 'bare uWS.js', uws),
    tcp,
  };
}

export function buildReport(o: SoakOptions, started: Date, seconds: number, bare: BareRun | null, bareNet: BareNetRun | null, gw: GatewayRun, sampler: Sampler): SoakReport {
  const lat = gw.dial.latency;
  const fanRatio = ratio(gw.fanout.median?.msgsPerS, bare?.fanout.median?.msgsPerS);
  const memRatio = ratio(gw.mem.bytesPerConn, bare?.mem.bytesPerConn);
  const lost = gw.storm ? gw.storm.pushes.lost : null;
  const targets: Record<string, Target> = {
    failed_handshakes: { ok: gw.ramp.failed === 0, value: gw.ramp.failed, limit: `0 at --rate=${o.rate}/s (achieved ${gw.ramp.ratePerS}/s)` },
    fanout_vs_bare: { ok: fanRatio === null ? null : fanRatio >= 0.8, value: fanRatio, limit: '>= 0.8' },
    dial_p99_ms: { ok: Number.isFinite(lat.p99) ? lat.p99 < 50 : false, value: Number.isFinite(lat.p99) ? lat.p99 : null, limit: '< 50' },
    storm_lost_pushes: { ok: lost === null ? null : lost === 0 && gw.storm?.backMs !== null, value: lost, limit: '0, every device back' },
    bytes_per_conn_vs_bare: { ok: memRatio === null ? null : memRatio <= 1.5, value: memRatio, limit: '<= 1.5' },
  };
  return {
    bench: 'soak',
    mode: o.quick ? 'quick' : 'full',
    started: started.toISOString(),
    seconds: +seconds.toFixed(1),
    node: process.version,
    machine: { cpus: os.availableParallelism(), mem_gb: +(os.totalmem() / 1024 ** 3).toFixed(1) },
    options: o,
    bare,
    bareNet,
    memory: memorySummary(bare, bareNet, gw),
    gateway: { ...gw, dial: { ...gw.dial, cdf: cdf(gw.dial.cdf, 300) } },
    idleCpuCores: +sampler.mean('gateway: hold', (s) => s.serverCpu).toFixed(3),
    othersCpuCores: +sampler.othersCpu().toFixed(3),
    holdIoStallPct: { mean: +sampler.mean('gateway: hold', (s) => s.ioStallPct).toFixed(2), max: sampler.max('gateway: hold', (s) => s.ioStallPct) },
    extrapolation: extrapolate(gw.mem),
    targets,
    samples: sampler.samples,
  };
}

/** The final stdout line: headline figures only. */
export function headline(r: SoakReport, html: string) {
  const g = r.gateway;
  const s = g.storm;
  return {
    bench: 'soak',
    mode: r.mode,
    conns: r.options.conns,
    up: g.ramp.open,
    workers: r.options.workers,
    clients: g.clients,
    tcp_pct: r.options.tcpPct,
    tls: g.tls,
    ramp_per_s: g.ramp.ratePerS,
    failed_handshakes: g.ramp.failed,
    hold_s: r.options.holdS,
    hold_lost: g.holdLost,
    bytes_per_conn: g.mem.bytesPerConn,
    anon_bytes_per_conn: g.mem.anonBytesPerConn,
    bare_bytes_per_conn: r.bare?.mem.bytesPerConn ?? null,
    bytes_per_conn_ratio: r.memory.ratio,
    pss_bytes_per_conn: r.memory.pss_bytes_per_conn,
    hold_growth_bytes_per_conn: r.memory.hold_growth_bytes_per_conn,
    ws_bytes_per_conn: r.memory.ws?.rss_bytes_per_conn ?? null,
    ws_pss_bytes_per_conn: r.memory.ws?.pss_bytes_per_conn ?? null,
    ws_vs_bare_uws: r.memory.ws?.ratio ?? null,
    tcp_bytes_per_conn: r.memory.tcp?.rss_bytes_per_conn ?? null,
    tcp_pss_bytes_per_conn: r.memory.tcp?.pss_bytes_per_conn ?? null,
    bare_net_bytes_per_conn: r.bareNet?.mem.bytesPerConn ?? null,
    tcp_vs_bare_net: r.memory.tcp?.ratio ?? null,
    tcp_vs_bare_uws: r.memory.tcp?.ratio_vs_bare_uws ?? null,
    mem_method: 'sum of workers\' VmRSS after a forced GC, per connection added; per transport: WebSocket sessions ramped, read, then raw TCP ones (see report.memory.method)',
    kernel_bytes_per_socket: g.mem.kernelBytesPerSocket,
    client_bytes_per_conn: g.mem.clientBytesPerConn,
    idle_cpu_cores: r.idleCpuCores,
    others_cpu_cores: r.othersCpuCores,
    hold_io_stall_pct: r.holdIoStallPct.mean,
    hold_io_stall_pct_max: r.holdIoStallPct.max,
    dial_n: g.dial.latency.n,
    dial_p50_ms: g.dial.latency.p50,
    dial_p99_ms: g.dial.latency.p99,
    dial_p999_ms: g.dial.latency.p999,
    fanout_msgs_per_s: g.fanout.median?.msgsPerS ?? null,
    fanout_t100_ms: g.fanout.median?.t100 ?? null,
    bare_publish_msgs_per_s: r.bare?.fanout.median?.msgsPerS ?? null,
    storm_back_ms: s?.backMs ?? null,
    storm_sessions_lost: s?.lost ?? null,
    storm_refused: s?.refused ?? null,
    storm_overloaded: s?.overloaded ?? null,
    storm_pushes_accepted: s?.pushes.accepted ?? null,
    storm_pushes_lost: s?.pushes.lost ?? null,
    storm_pushes_by_sync_only: s?.pushes.bySync ?? null,
    storm_loop_delay_max_ms: s?.loop.length ? Math.max(...s.loop.map((l) => l.max_ms)) : null,
    storm_loop_delay_p99_ms: s?.loop.length ? Math.max(...s.loop.map((l) => l.p99_ms)) : null,
    mem_1m_conns_per_worker_gb: r.extrapolation.total_gb,
    mem_1m_method: 'worker fixed RSS + 1e6 x RSS bytes/conn + 1e6 x kernel bytes/socket, all measured in this run (see report.extrapolation)',
    targets: r.targets,
    seconds: r.seconds,
    report: html,
  };
}
