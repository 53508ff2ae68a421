/** Flags of `npm run bench -- soak`, their defaults, and --help. */
import path from 'node:path';

export interface SoakOptions {
  conns: number;
  workers: number;
  tcpPct: number;
  tls: boolean;
  rate: number;
  inflight: number;
  perClient: number;
  /** Gateway clients bind 127.0.0.<firstHost>, <firstHost + 1>, ...; bare uWS ones 30 further, bare node:net ones 60. */
  firstHost: number;
  warm: number;
  holdS: number;
  sampleS: number;
  dialPerS: number;
  fanoutRounds: number;
  stormPerS: number;
  stormTimeoutS: number;
  bareConns: number;
  /** Connections for the bare node:net baseline (raw TCP); 0 skips it. */
  bareTcpConns: number;
  storm: boolean;
  /** CPU profiles of the surviving workers during the storm (loop-probe.ts). */
  stormProfile: boolean;
  /** Force a GC in the servers (inspector) before each memory reading. */
  gc: boolean;
  outDir: string;
  timeoutS: number;
  quick: boolean;
  /** Client processes' receive coalescing: the nap, in microseconds, while data trickles in (0: off; client.ts). */
  clientNapUs: number;
  /** Extra `moor serve` flags, from --gw.KEY=VALUE. */
  gwArgs: string[];
}

/** Connections per gateway worker (and per bare uWS process) the defaults stay under. */
export const PER_WORKER = 18_000;
/** A process may hold 20,000 fds (design.md); a client process keeps some for itself. */
export const MAX_PER_CLIENT = 19_000;

export const HELP = `usage: npm run bench -- soak [--quick] [flags]

Soak test before a rollout: starts the gateway (moor serve, N workers) and, as the
baselines, bare uWS.js servers (for WebSocket) and a bare node:net cluster (for raw
TCP); ramps connections from lean client processes spread
over source addresses 127.0.0.41, 127.0.0.42, ...; holds them heartbeating while it
samples memory and CPU and runs a dial test; times a broadcast fan-out against bare
uWS.js publish; kills -9 one worker (reconnect storm) while tracking durable pushes.
Writes bench/out/soak-<time>.json and .html (charts), prints one JSON line.

  --conns=N           connections (default 60000; WebSocket/raw TCP mix)
  --workers=N         gateway workers. Default: ceil(conns / ${PER_WORKER}) + 1, so every
                      worker holds under ~${PER_WORKER} connections (a process may hold
                      20,000 fds) even after the storm spreads a killed worker's devices
                      over the others: 60,000 connections -> 5 workers (4 is the minimum).
  --tcp-pct=P         percent of connections on raw TCP, the rest WebSocket (default 20)
  --tls               connect over TLS (self-signed certificate given to the gateway);
                      skipped with a message when the gateway does not speak TLS yet
  --rate=R            ramp rate, new connections per second in all (default 2000)
  --inflight=K        handshakes in flight per client process (default 256)
  --per-client=M      connections per client process, at most ${MAX_PER_CLIENT} (default 15000)
  --first-host=H      client processes bind 127.0.0.H, H+1, ... (bare uWS: H+30, ...,
                      bare node:net: H+60, ...);
                      default 41, clear of bench idle's 127.0.0.2.. on a shared machine
  --warm=W            connections before the baseline memory reading (default min(1000, 5%))
  --hold-s=T          hold time, heartbeating at the advised interval, dial test running
                      (default 300)
  --sample-s=S        sampling period (default 5)
  --dial-per-s=D      dial-test pushes per second (durable, random devices; default 20)
  --fanout-rounds=F   broadcasts to everyone, gateway and bare uWS.js each (default 3)
  --storm-per-s=P     durable pushes per second during the storm (default 200)
  --storm-timeout-s=S how long the killed worker's devices get to come back (default 120)
  --no-storm          skip the reconnect storm
  --storm-profile     CPU-profile the surviving workers from the kill until every device
                      is back: the report names what took their event loops (the
                      event-loop delay is measured in every run); raw .cpuprofile files
                      next to the report
  --no-gc             do not force a GC in the servers (through their inspector) before
                      the memory readings; RSS then includes garbage not yet collected
  --bare-conns=B      connections for the bare uWS.js baseline (default = --conns; 0 skips it)
  --bare-tcp-conns=B  connections for the bare node:net baseline, the floor for raw TCP
                      sessions (default = --bare-conns when --tcp-pct > 0; 0 skips it)
  --out-dir=DIR       where the reports go (default bench/out)
  --timeout-s=S       hard bound on the whole run (default: from the phases)
  --client-nap-us=U   client processes wait U microseconds (default 1000; 0: never) before
                      reading again while data trickles in (over 5,000 reads/s, under
                      64 per wake-up), so that loopback receivers on the servers'
                      cores cost per batch rather than per message
  --gw.KEY=VALUE      passed to moor serve as --KEY=VALUE (e.g. --gw.heartbeat.default_ms=60000)
  --quick             about 80 s: 5000 connections (1000 for bare node:net), 10 s hold,
                      1 s samples (CI)
  --help

Targets (checked in the report): 0 failed handshakes at the configured rate; fan-out
>= 0.8x the bare uWS.js rate; dial p99 < 50 ms; no durable push lost in the storm;
gateway bytes per connection <= 1.5x bare uWS.js (the WebSocket/TCP mix, after the
hold; sum of the workers' VmRSS). Reported next to it, not checked: bytes per
connection per transport (the ramp adds the WebSocket sessions, then the raw TCP ones,
with a reading between) against each transport's own baseline, and PSS, which counts
the store's memory map once instead of once per worker.`;

const INTS: Record<string, keyof SoakOptions> = {
  conns: 'conns',
  workers: 'workers',
  'tcp-pct': 'tcpPct',
  rate: 'rate',
  inflight: 'inflight',
  'per-client': 'perClient',
  'first-host': 'firstHost',
  warm: 'warm',
  'hold-s': 'holdS',
  'sample-s': 'sampleS',
  'dial-per-s': 'dialPerS',
  'fanout-rounds': 'fanoutRounds',
  'storm-per-s': 'stormPerS',
  'storm-timeout-s': 'stormTimeoutS',
  'bare-conns': 'bareConns',
  'bare-tcp-conns': 'bareTcpConns',
  'timeout-s': 'timeoutS',
  'client-nap-us': 'clientNapUs',
};

export function parseOptions(argv: string[], root: string): SoakOptions | 'help' {
  const o: SoakOptions = {
    conns: 60_000,
    workers: 0,
    tcpPct: 20,
    tls: false,
    rate: 2000,
    inflight: 256,
    perClient: 15_000,
    firstHost: 41,
    warm: -1,
    holdS: 300,
    sampleS: 5,
    dialPerS: 20,
    fanoutRounds: 3,
    stormPerS: 200,
    stormTimeoutS: 120,
    bareConns: -1,
    bareTcpConns: -1,
    storm: true,
    stormProfile: false,
    gc: true,
    outDir: path.join(root, 'bench', 'out'),
    timeoutS: 0,
    quick: false,
    clientNapUs: 1000,
    gwArgs: [],
  };
  if (argv.includes('--quick')) {
    Object.assign(o, { quick: true, conns: 5000, holdS: 10, sampleS: 1, stormPerS: 100, stormTimeoutS: 60, bareTcpConns: 1000 });
  }
  for (const a of argv) {
    const gw = /^--gw\.([a-z_.]+)=(.*)$/.exec(a);
    if (gw) {
      o.gwArgs.push(`--${gw[1]}=${gw[2]}`);
      continue;
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`unexpected argument ${a} (see --help)`);
    const [, k, v] = m;
    if (k === 'help') return 'help';
    if (k === 'quick' && v === undefined) continue;
    if (k === 'tls' && v === undefined) o.tls = true;
    else if (k === 'no-storm' && v === undefined) o.storm = false;
    else if (k === 'storm-profile' && v === undefined) o.stormProfile = true;
    else if (k === 'no-gc' && v === undefined) o.gc = false;
    else if (k === 'out-dir' && v) o.outDir = path.resolve(v);
    else if (k in INTS && v !== undefined && /^\d+$/.test(v)) (o[INTS[k]] as number) = Number(v);
    else throw new Error(`bad argument ${a} (see --help)`);
  }
  if (o.conns < 1) throw new Error('--conns must be at least 1');
  if (o.workers === 0) o.workers = Math.ceil(o.conns / PER_WORKER) + 1;
  if (o.warm < 0) o.warm = Math.min(1000, Math.floor(o.conns / 20));
  if (o.bareConns < 0) o.bareConns = o.conns;
  if (o.bareTcpConns < 0) o.bareTcpConns = o.tcpPct > 0 ? o.bareConns : 0;
  if (o.perClient < 1 || o.perClient > MAX_PER_CLIENT) throw new Error(`--per-client must be in [1, ${MAX_PER_CLIENT}]: a process may hold 20,000 fds`);
  if (o.conns / o.workers > PER_WORKER + 1000) {
    throw new Error(`--workers=${o.workers} puts ${Math.round(o.conns / o.workers)} connections on each worker; a process may hold 20,000 fds: use --workers=${Math.ceil(o.conns / PER_WORKER)} or more`);
  }
  if (o.bareConns / o.workers > PER_WORKER + 1000) throw new Error(`--bare-conns=${o.bareConns} over ${o.workers} bare uWS processes is more than ~${PER_WORKER} each`);
  if (o.bareTcpConns / o.workers > PER_WORKER + 1000) throw new Error(`--bare-tcp-conns=${o.bareTcpConns} over ${o.workers} bare node:net workers is more than ~${PER_WORKER} each`);
  const procs = Math.ceil(Math.max(o.conns, o.bareConns, o.bareTcpConns) / o.perClient);
  if (o.firstHost < 2 || o.firstHost + 60 + procs > 255 || procs > 30) throw new Error(`--first-host=${o.firstHost}: ${procs} client processes need 127.0.0.H..H+${procs - 1}, H+30..H+${29 + procs} and H+60..H+${59 + procs}, all below 255`);
  if (o.tcpPct > 100) throw new Error('--tcp-pct is a percentage');
  if (o.rate < 1 || o.sampleS < 1 || o.fanoutRounds < 1) throw new Error('--rate, --sample-s and --fanout-rounds must be at least 1');
  if (o.warm >= o.conns) o.warm = 0;
  if (o.timeoutS === 0) {
    const ramps = ((o.conns + o.bareConns + o.bareTcpConns) / o.rate) * 3 + 150;
    o.timeoutS = Math.ceil(ramps + o.holdS + (o.storm ? o.stormTimeoutS + 60 : 0) + o.fanoutRounds * 30 + 180);
  }
  return o;
}
