/**
 * `npm run bench -- tls [--devices N] [--workers W] [--concurrency C] [--sample S] [--no-plain]`
 *
 * A TLS reconnect storm against the real gateway (`moor serve`, W workers, default 2,
 * a self-signed ECDSA P-256 certificate from scripts/gen-cert.sh). For each transport
 * (WebSocket, raw TCP) and each TLS version (1.2, 1.3):
 *   full      N devices (default 5,000) connect with no saved session, HELLO, WELCOME,
 *             save the TLS session the gateway gives and WELCOME.resume_endpoint, leave;
 *   resumed   the same N reconnect to their resume endpoint (WebSocket: the worker's own
 *             resume port; TCP: the shared port) offering the saved session, and leave.
 * C connections are in flight at a time (default 100). Through the client library's
 * transport (src/client/transport.ts), so its save/offer path is what is measured.
 *
 * Reported per transport and version: the resumed fraction; handshakes per second (a
 * "handshake" here is a whole connection: TCP + TLS + HELLO/WELCOME + close, so it is
 * sessions per second); server CPU per connection (primary + workers, from
 * /proc/<pid>/stat), full vs resumed; bytes on the wire per connection up to WELCOME
 * (TCP payload both ways, measured through a counting relay for S sequential
 * connections, default 200), full vs resumed. A plaintext gateway runs the same storm
 * (unless --no-plain) so the TLS share of CPU and bytes can be read off. Client and
 * server share this machine's cores: handshakes/s is a loopback figure, not a capacity.
 *
 * Progress on stderr; ONE JSON line on stdout at the end.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { ConnectionOptions } from 'node:tls';
import { hello, RawConnection } from '../src/client/raw';
import { FrameType } from '../src/protocol/constants';
import { moor } from '../src/protocol/generated/moor';
import { type Gateway, startGateway } from '../test/helpers/gateway';
import { type CertDir, makeCerts } from '../test/helpers/tls';
import { ByteRelay } from './lib/byte-relay';
import { own } from './lib/procs';

type Transport = 'ws' | 'tcp';
type Version = 'TLSv1.2' | 'TLSv1.3';
const TRANSPORTS: Transport[] = ['ws', 'tcp'];
const VERSIONS: Version[] = ['TLSv1.2', 'TLSv1.3'];
const TARGET_RESUMED = 0.95;
/** A phase that has not finished in this long is abandoned (every loop is bounded). */
const PHASE_LIMIT_MS = 300_000;

interface Args {
  devices: number;
  workers: number;
  concurrency: number;
  sample: number;
  plain: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { devices: 5000, workers: 2, concurrency: 100, sample: 200, plain: true };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = (): number => {
      const v = Number(inline ?? argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${flag} needs a positive integer`);
      return v;
    };
    if (flag === '--devices') a.devices = value();
    else if (flag === '--workers') a.workers = value();
    else if (flag === '--concurrency') a.concurrency = value();
    else if (flag === '--sample') a.sample = value();
    else if (flag === '--no-plain') a.plain = false;
    else throw new Error(`unknown flag ${flag}; usage: npm run bench -- tls [--devices N] [--workers W] [--concurrency C] [--sample S] [--no-plain]`);
  }
  if (a.workers < 2) process.stderr.write('note: resumption across workers needs --workers 2 or more\n');
  a.sample = Math.min(a.sample, a.devices);
  return a;
}

const progress = (s: string): void => void process.stderr.write(`${s}\n`);

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (user + system, every thread) of the processes, µs. */
function cpuUs(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
  }
  return (ticks * 1e6) / CLK_TCK;
}

/** The gateway's processes: the primary (it accepts raw TCP for node:cluster) and its workers. */
function serverPids(gw: Gateway): number[] {
  return [gw.proc.pid as number, ...gw.workerPids().values()];
}

interface Device {
  id: string;
  token: string;
  session: Buffer | null;
  resumeEndpoint: string;
}

interface Outcome {
  resumed: boolean | null;
  session: Buffer | null;
  resumeEndpoint: string;
}

/** One connection: connect, HELLO, WELCOME, leave (waiting for the close). */
async function session(url: { transport: Transport; port: number }, d: Device, tls: ConnectionOptions | null, offer: Buffer | null, onWelcome?: () => void): Promise<Outcome> {
  const conn =
    url.transport === 'ws'
      ? await RawConnection.ws(`${tls ? 'wss' : 'ws'}://127.0.0.1:${url.port}/ws`, { tls: tls ?? undefined, tlsSession: offer })
      : await RawConnection.tcp('127.0.0.1', url.port, { tls: tls ?? undefined, tlsSession: offer });
  try {
    conn.send(hello({ deviceId: d.id, token: d.token }));
    const f = await conn.nextFrame(15_000);
    if (f.type !== FrameType.WELCOME) throw new Error(`expected WELCOME, got frame type ${f.type}`);
    onWelcome?.();
    const w = moor.v1.Welcome.decode(f.payload);
    return { resumed: conn.tlsResumed, session: conn.tlsSession, resumeEndpoint: w.resumeEndpoint };
  } finally {
    conn.close();
    await conn.closed(5_000).catch(() => {});
  }
}

interface PhaseResult {
  n: number;
  failed: number;
  resumed: number;
  wallMs: number;
  cpuUs: number;
  /** This process (the devices' side), for comparison only: it also runs the client library's JS. */
  clientCpuUs: number;
}

/** The gateway's own CPU use while idle (timers, stats, sweeps), µs per second: taken off every phase. */
async function idleCpuRate(gw: Gateway, ms = 3000): Promise<number> {
  const pids = serverPids(gw);
  const c0 = cpuUs(pids);
  await new Promise((r) => setTimeout(r, ms));
  return ((cpuUs(pids) - c0) * 1000) / ms;
}

/**
 * Runs `one` for every device with `concurrency` in flight. Server CPU is measured over
 * the whole phase, less the idle rate × its wall time.
 */
async function phase(label: string, gw: Gateway, devices: Device[], concurrency: number, one: (d: Device) => Promise<Outcome>, idleUsPerS = 0): Promise<PhaseResult> {
  const pids = serverPids(gw);
  let next = 0;
  let done = 0;
  let failed = 0;
  let resumed = 0;
  let firstError = '';
  const t0 = performance.now();
  const c0 = cpuUs(pids);
  const k0 = process.cpuUsage();
  const ticker = setInterval(() => progress(`  ${label}: ${done}/${devices.length} (${Math.round((done * 1000) / (performance.now() - t0))}/s)`), 1000);
  const worker = async (): Promise<void> => {
    while (next < devices.length && performance.now() - t0 < PHASE_LIMIT_MS) {
      const d = devices[next++];
      try {
        const o = await one(d);
        if (o.resumed) resumed++;
        if (o.session) d.session = o.session;
        d.resumeEndpoint = o.resumeEndpoint;
      } catch (err) {
        failed++;
        firstError ||= (err as Error).message;
      }
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  clearInterval(ticker);
  const wallMs = performance.now() - t0;
  const cpu = Math.max(0, cpuUs(pids) - c0 - (idleUsPerS * wallMs) / 1000);
  const k = process.cpuUsage(k0);
  progress(`  ${label}: ${done} in ${(wallMs / 1000).toFixed(1)} s, ${resumed} resumed, ${failed} failed${firstError ? ` (first: ${firstError})` : ''}`);
  return { n: done, failed, resumed, wallMs, cpuUs: cpu, clientCpuUs: k.user + k.system };
}

interface Wire {
  up: number;
  down: number;
  total: number;
}

/** Mean bytes per connection up to WELCOME, over `sample` sequential connections through relays. */
async function wire(devices: Device[], transport: Transport, sharedPort: number, tls: ConnectionOptions | null, resume: boolean): Promise<Wire & { resumed: number }> {
  const relays = new Map<number, ByteRelay>();
  const relay = async (port: number): Promise<ByteRelay> => {
    let r = relays.get(port);
    if (!r) relays.set(port, (r = await ByteRelay.to(port)));
    return r;
  };
  let up = 0;
  let down = 0;
  let resumed = 0;
  try {
    for (const d of devices) {
      const target = resume && transport === 'ws' ? portOf(d.resumeEndpoint) : sharedPort;
      const r = await relay(target);
      r.reset();
      let at = { up: 0, down: 0 };
      const o = await session({ transport, port: r.port }, d, tls, resume ? d.session : null, () => (at = { up: r.up, down: r.down }));
      if (o.resumed) resumed++;
      up += at.up;
      down += at.down;
    }
  } finally {
    for (const r of relays.values()) r.close();
  }
  const n = devices.length;
  return { up: Math.round(up / n), down: Math.round(down / n), total: Math.round((up + down) / n), resumed };
}

function portOf(endpoint: string): number {
  return Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
}

function perConn(p: PhaseResult): { handshakes_per_s: number; server_cpu_us_per_handshake: number; client_cpu_us_per_handshake: number; failed: number } {
  const ok = Math.max(1, p.n - p.failed);
  return {
    handshakes_per_s: Math.round((p.n * 1000) / p.wallMs),
    server_cpu_us_per_handshake: Math.round(p.cpuUs / ok),
    client_cpu_us_per_handshake: Math.round(p.clientCpuUs / ok),
    failed: p.failed,
  };
}

async function makeDevices(gw: Gateway, n: number): Promise<Device[]> {
  const out: Device[] = [];
  for (let i = 0; i < n; i++) {
    const id = `bench-tls-${i}`;
    out.push({ id, token: await gw.token(id, { ttlS: 3600 }), session: null, resumeEndpoint: '' });
  }
  return out;
}

async function startOwned(args: string[], workers: number): Promise<Gateway> {
  const gw = await startGateway(args, { workers });
  own(gw.proc);
  return gw;
}

/**
 * Untimed: every device connects once on each transport, so the store already knows
 * them and the workers' code is warm before anything is measured (the first pass was
 * otherwise ~2x dearer, whichever mode came first). Then the idle CPU rate.
 */
async function warmUp(gw: Gateway, devices: Device[], a: Args, tls: ConnectionOptions | null): Promise<number> {
  for (const transport of TRANSPORTS) {
    const port = transport === 'ws' ? gw.wsPort : gw.tcpPort;
    await phase(`warm-up ${transport}`, gw, devices, a.concurrency, (d) => session({ transport, port }, d, tls, null));
  }
  const idle = await idleCpuRate(gw);
  progress(`  idle gateway CPU: ${Math.round(idle)} µs/s (taken off every phase)`);
  return idle;
}

async function tlsRuns(a: Args, certs: CertDir): Promise<{ results: Record<Transport, Record<Version, unknown>>; idle: number }> {
  const gw = await startOwned([...certs.args, '--limits.handshake_timeout_ms=30000'], a.workers);
  const results = { ws: {}, tcp: {} } as Record<Transport, Record<Version, unknown>>;
  let idle = 0;
  try {
    const devices = await makeDevices(gw, a.devices);
    idle = await warmUp(gw, devices, a, { ca: certs.ca, servername: 'localhost' });
    for (const transport of TRANSPORTS) {
      for (const version of VERSIONS) {
        const tls: ConnectionOptions = { ca: certs.ca, servername: 'localhost', minVersion: version, maxVersion: version };
        const shared = transport === 'ws' ? gw.wsPort : gw.tcpPort;
        for (const d of devices) {
          d.session = null;
          d.resumeEndpoint = '';
        }
        progress(`${transport} ${version}:`);
        const full = await phase('full', gw, devices, a.concurrency, (d) => session({ transport, port: shared }, d, tls, null), idle);
        const resumed = await phase(
          'resumed',
          gw,
          devices,
          a.concurrency,
          (d) => session({ transport, port: transport === 'ws' ? portOf(d.resumeEndpoint) : shared }, d, tls, d.session),
          idle,
        );
        const sample = devices.slice(0, a.sample);
        const wireFull = await wire(sample, transport, shared, tls, false);
        const wireResumed = await wire(sample, transport, shared, tls, true);
        progress(`  wire: full ${wireFull.total} B, resumed ${wireResumed.total} B per connection (${sample.length} sampled)`);
        const fraction = resumed.resumed / resumed.n;
        results[transport][version] = {
          resumed_fraction: Number(fraction.toFixed(4)),
          full: { ...perConn(full), wire_bytes: { up: wireFull.up, down: wireFull.down, total: wireFull.total } },
          resumed: { ...perConn(resumed), wire_bytes: { up: wireResumed.up, down: wireResumed.down, total: wireResumed.total } },
          cpu_saved_per_resumption_us: perConn(full).server_cpu_us_per_handshake - perConn(resumed).server_cpu_us_per_handshake,
          bytes_saved_per_resumption: wireFull.total - wireResumed.total,
        };
      }
    }
  } finally {
    await gw.stop();
  }
  return { results, idle };
}

async function plainRuns(a: Args): Promise<Record<Transport, unknown>> {
  const gw = await startOwned([], a.workers);
  const out = {} as Record<Transport, unknown>;
  try {
    const devices = await makeDevices(gw, a.devices);
    progress('plaintext gateway:');
    const idle = await warmUp(gw, devices, a, null);
    for (const transport of TRANSPORTS) {
      progress(`${transport} plaintext:`);
      const port = transport === 'ws' ? gw.wsPort : gw.tcpPort;
      const p = await phase('plain', gw, devices, a.concurrency, (d) => session({ transport, port }, d, null, null), idle);
      const w = await wire(devices.slice(0, a.sample), transport, port, null, false);
      out[transport] = { ...perConn(p), wire_bytes: { up: w.up, down: w.down, total: w.total } };
    }
  } finally {
    await gw.stop();
  }
  return out;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const certs = makeCerts();
  const t0 = performance.now();
  const load0 = os.loadavg()[0];
  try {
    progress(`bench tls: ${a.devices} devices, ${a.workers} workers, ${a.concurrency} in flight, ${os.availableParallelism()} cores`);
    const tls = await tlsRuns(a, certs);
    const plain = a.plain ? await plainRuns(a) : null;
    const fractions = TRANSPORTS.flatMap((t) => VERSIONS.map((v) => (tls.results[t][v] as { resumed_fraction: number }).resumed_fraction));
    const out = {
      bench: 'tls',
      devices: a.devices,
      workers: a.workers,
      concurrency: a.concurrency,
      wire_sample: a.sample,
      cores: os.availableParallelism(),
      node: process.version,
      openssl: process.versions.openssl,
      cert: 'ECDSA P-256, self-signed',
      handshake_means: 'one connection: TCP + TLS + HELLO/WELCOME + close; wire bytes are TCP payload up to WELCOME',
      server_cpu_means: 'primary + workers (user + system, /proc), per connection, after a warm-up pass, idle rate taken off',
      idle_server_cpu_us_per_s: Math.round(tls.idle),
      results: tls.results,
      plaintext: plain,
      target: { resumed_fraction_min: TARGET_RESUMED, met: fractions.every((f) => f >= TARGET_RESUMED) },
      duration_s: Math.round((performance.now() - t0) / 1000),
      // Other processes on this machine skew handshakes/s (wall time) far more than CPU per handshake.
      loadavg_1m: { start: Number(load0.toFixed(2)), end: Number(os.loadavg()[0].toFixed(2)) },
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    certs.remove();
  }
}

main().catch((err) => {
  process.stderr.write(`bench tls failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
