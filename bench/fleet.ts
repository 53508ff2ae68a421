/**
 * `npm run bench -- fleet [--nodes 3] [--devices 3000] [--pushes 20000] [--concurrency 64] [--idle-s 30]`
 *
 * Fleet mode on one machine: one redis-server (appendonly yes, appendfsync everysec) and
 * `--nodes` gateway nodes (`moor serve --node.id=nK --store.kind=redis`, one worker each).
 * Devices (WebSocket) spread over the nodes; every push goes through the HTTP API of a
 * node other than the one holding its device, so each crosses nodes through Redis.
 *
 * Phases, each measured from Redis's own counters (INFO commandstats, cpu, memory):
 *   connect   N devices HELLO: Redis operations and bytes per connected device
 *   idle      S seconds with everyone connected: operations per device-hour and per
 *             worker-hour (liveness renewals, janitor, heartbeat table, samples)
 *   durable   P durable pushes, C in flight, devices ACK each: pushes/s, API latency
 *             (until 202) and delivery latency (send → device), operations and Redis CPU
 *             per push, by command
 *   transient P/2 pushes with durable=false: the same
 *   leave     every device disconnects: operations per disconnect
 *   at load   the Redis side alone (bench/fleet/direct.ts): append, lookup, SPUBLISH and
 *             ack per push from the engine classes, 256 in flight (auto-pipelined, as
 *             from busy gateways): Redis CPU per push where it is not waiting for work
 *   inbox     bytes per stored push and per inbox head (MEMORY USAGE)
 *
 * Everything shares this machine's cores (Redis, the nodes, this client), so pushes/s is
 * a loopback figure; operations and Redis CPU per push are what docs/fleet.md sizes from.
 * Progress on stderr; ONE JSON line on stdout at the end.
 */
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { hello, RawConnection } from '../src/client/raw';
import { FleetKeys } from '../src/presence/redis-keys';
import { FrameType } from '../src/protocol/constants';
import { moor } from '../src/protocol/generated/moor';
import { deviceTag, Keys } from '../src/store/redis-keys';
import { startNodes } from '../test/helpers/fleet';
import { API_KEY, type Gateway } from '../test/helpers/gateway';
import { startRedis } from '../test/helpers/redis';
import { inboxBytes, pushesAtLoad } from './fleet/direct';

interface Args {
  nodes: number;
  devices: number;
  pushes: number;
  concurrency: number;
  idleS: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { nodes: 3, devices: 3000, pushes: 20_000, concurrency: 64, idleS: 30 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const v = Number(inline ?? argv[++i]);
    if (!Number.isInteger(v) || v < 1) throw new Error(`${flag} needs a positive integer`);
    if (flag === '--nodes') a.nodes = Math.max(2, v);
    else if (flag === '--devices') a.devices = v;
    else if (flag === '--pushes') a.pushes = v;
    else if (flag === '--concurrency') a.concurrency = v;
    else if (flag === '--idle-s') a.idleS = v;
    else throw new Error(`unknown flag ${flag}; usage: npm run bench -- fleet [--nodes 3] [--devices N] [--pushes P] [--concurrency C] [--idle-s S]`);
  }
  return a;
}

const log = (s: string): void => void process.stderr.write(`${s}\n`);
/** Every wait is bounded. */
const PHASE_LIMIT_MS = 300_000;

interface Snapshot {
  calls: Map<string, number>;
  cpuUs: number;
  memory: number;
  at: number;
}

async function snapshot(r: Redis): Promise<Snapshot> {
  const [stats, cpu, mem] = await Promise.all([r.info('commandstats'), r.info('cpu'), r.info('memory')]);
  const calls = new Map<string, number>();
  for (const m of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1], Number(m[2]));
  const field = (text: string, k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(text)?.[1] ?? 0);
  // The main thread's CPU: where commands run (I/O threads are off by default).
  const cpuUs = (field(cpu, 'used_cpu_user_main_thread') + field(cpu, 'used_cpu_sys_main_thread')) * 1e6;
  return { calls, cpuUs, memory: field(mem, 'used_memory'), at: Date.now() };
}

/** Operations between two snapshots, by command, without the bench's own INFO calls. */
function delta(a: Snapshot, b: Snapshot): { total: number; byCommand: Record<string, number> } {
  const byCommand: Record<string, number> = {};
  let total = 0;
  for (const [cmd, n] of b.calls) {
    if (cmd === 'info') continue;
    const d = n - (a.calls.get(cmd) ?? 0);
    if (d <= 0) continue;
    byCommand[cmd] = d;
    total += d;
  }
  return { total, byCommand };
}

const per = (n: number, d: number, digits = 2): number => Number((n / d).toFixed(digits));

/** CPU time (user + system) of processes, µs, from /proc/<pid>/stat (clock ticks of 10 ms). */
function cpuUs(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks * 10_000;
}

/**
 * Commands clients sent (round trips) vs commands scripts ran, by name, while `fn` runs:
 * MONITOR tells them apart (commandstats counts both). Costly: used on a small sample.
 */
async function monitored(port: number, fn: () => Promise<void>): Promise<{ client: Record<string, number>; lua: Record<string, number> }> {
  const conn = new Redis({ host: '127.0.0.1', port });
  const m = await conn.monitor();
  const client: Record<string, number> = {};
  const lua: Record<string, number> = {};
  m.on('monitor', (_time: string, args: string[], source: string) => {
    const cmd = String(args[0]).toLowerCase();
    if (cmd === 'info' || cmd === 'memory' || cmd === 'monitor') return;
    const into = source === 'lua' ? lua : client;
    into[cmd] = (into[cmd] ?? 0) + 1;
  });
  try {
    await fn();
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    m.disconnect();
    conn.disconnect();
  }
  return { client, lua };
}

const sum = (o: Record<string, number>): number => Object.values(o).reduce((a, b) => a + b, 0);

function perCommand(byCommand: Record<string, number>, d: number): Record<string, number> {
  return Object.fromEntries(Object.entries(byCommand).map(([k, v]) => [k, per(v, d, 3)]));
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((x, y) => x - y);
  return Number(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(2));
}

interface Dev {
  id: string;
  node: number;
  conn: RawConnection;
}

/** Delivery latencies (ms) by push, filled by each device's reader loop. */
const delivered = new Map<string, number>();

async function reader(d: Dev): Promise<void> {
  for (;;) {
    let f: Awaited<ReturnType<RawConnection['nextFrame']>>;
    try {
      f = await d.conn.nextFrame(PHASE_LIMIT_MS);
    } catch {
      return;
    }
    if (f.type !== FrameType.PUSH) continue;
    const p = moor.v1.Push.decode(f.payload);
    const [key, sent] = Buffer.from(p.body).toString().split('|');
    if (!delivered.has(key)) delivered.set(key, performance.timeOrigin + performance.now() - Number(sent));
    if (Number(p.seq) > 0) d.conn.sendFrame(FrameType.ACK, moor.v1.Ack.encode({ upToSeq: p.seq }).finish());
  }
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

async function pushPhase(nodes: Gateway[], devs: Dev[], n: number, concurrency: number, durable: boolean) {
  delivered.clear();
  const apiMs: number[] = [];
  let failed = 0;
  const ids = Array.from({ length: n }, (_, i) => i);
  const t0 = performance.now();
  await pool(ids, concurrency, async (i) => {
    const d = devs[i % devs.length];
    // Through a node other than the device's: every push crosses nodes.
    const via = nodes[(d.node + 1 + (i % (nodes.length - 1))) % nodes.length];
    const start = performance.now();
    const res = await fetch(`http://127.0.0.1:${via.apiPort}/v1/push`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      // No idempotency id: that would add a GET and a SET per push (docs/fleet.md).
      body: JSON.stringify({ device_id: d.id, body: `${durable ? 'd' : 't'}${i}|${performance.timeOrigin + start}`, durable }),
    });
    await res.arrayBuffer();
    apiMs.push(performance.now() - start);
    if (res.status !== 202) failed++;
  });
  const sendMs = performance.now() - t0;
  const deadline = Date.now() + 30_000;
  while (delivered.size < n - failed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const wallMs = performance.now() - t0;
  const lat = [...delivered.values()];
  return {
    pushes: n,
    failed,
    delivered: delivered.size,
    pushes_per_s: Math.round((n / sendMs) * 1000),
    api_ms: { p50: pct(apiMs, 50), p99: pct(apiMs, 99) },
    delivery_ms: { p50: pct(lat, 50), p99: pct(lat, 99), max: pct(lat, 100) },
    wall_ms: Math.round(wallMs),
  };
}

/** Connects `ids` (device i on node i % nodes) and starts each one's reader. */
async function connectAll(nodes: Gateway[], ids: string[], into: Dev[]): Promise<void> {
  const tokens = await Promise.all(ids.map((id) => nodes[0].token(id)));
  await pool(
    ids.map((id, i) => ({ id, i })),
    200,
    async ({ id, i }) => {
      const node = i % nodes.length;
      const conn = await RawConnection.ws(nodes[node].wsUrl);
      conn.send(hello({ deviceId: id, token: tokens[i] }));
      const f = await conn.nextFrame(30_000);
      if (f.type !== FrameType.WELCOME) throw new Error(`device ${id}: frame ${f.type} instead of WELCOME`);
      const d = { id, node, conn };
      into.push(d);
      void reader(d);
    },
  );
}

async function leaveAll(devs: Dev[]): Promise<void> {
  for (const d of devs) d.conn.close();
  await Promise.all(devs.map((d) => d.conn.closed(10_000).catch(() => {})));
  await new Promise((r) => setTimeout(r, 500));
}

/** Bytes Redis holds per device, by key (MEMORY USAGE on a sample), and per index member. */
async function bytesPerDevice(raw: Redis, prefix: string, ids: string[]): Promise<Record<string, number>> {
  const store = new Keys(prefix);
  const fleet = new FleetKeys(prefix);
  const usage = async (keys: string[]) => {
    const n = await Promise.all(keys.map((k) => raw.call('MEMORY', 'USAGE', k, 'SAMPLES', '0') as Promise<number | null>));
    return Math.round(n.reduce<number>((a, b) => a + (b ?? 0), 0) / keys.length);
  };
  const workers = Object.keys(await raw.hgetall(fleet.workers()));
  let indexBytes = 0;
  let members = 0;
  for (const w of workers) {
    indexBytes += Number((await raw.call('MEMORY', 'USAGE', fleet.index(w), 'SAMPLES', '0')) ?? 0);
    members += await raw.scard(fleet.index(w));
  }
  return {
    presence: await usage(ids.map((d) => fleet.at(d))),
    presence_index: members ? Math.round(indexBytes / members) : 0,
    device_record: await usage(ids.map((d) => store.record(deviceTag(d)))),
    inbox_head: await usage(ids.map((d) => store.device(deviceTag(d))[0])),
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  log(`fleet bench: ${args.nodes} nodes, ${args.devices} devices, ${args.pushes} pushes, ${args.concurrency} in flight`);
  const redis = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'everysec'] });
  const raw = new Redis({ host: '127.0.0.1', port: redis.port });
  // However the bench ends (a crash included), nothing it started keeps running.
  const pids = new Set<number>([Number(/process_id:(\d+)/.exec(await raw.info('server'))?.[1])]);
  process.on('exit', () => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  });
  let nodes: Gateway[] = [];
  const devs: Dev[] = [];
  try {
    nodes = await startNodes(
      redis.url('bench'),
      Array.from({ length: args.nodes }, (_, i) => `n${i}`),
    );
    const workers = args.nodes;
    const serverPids = () => nodes.flatMap((g) => [g.proc.pid as number, ...g.workerPids().values()]);
    for (const pid of serverPids()) pids.add(pid);
    await new Promise((r) => setTimeout(r, 1000));
    const s0 = await snapshot(raw);

    log('connect…');
    const ids = Array.from({ length: args.devices }, (_, i) => `d${i}`);
    await connectAll(nodes, ids, devs);
    await new Promise((r) => setTimeout(r, 500));
    const s1 = await snapshot(raw);
    const connect = delta(s0, s1);
    const sample = ids.slice(0, Math.min(500, ids.length));
    const bytesConnected = await bytesPerDevice(raw, 'bench', sample);

    log(`idle ${args.idleS} s…`);
    // Every phase starts from a fresh snapshot: the bench's own MEMORY/SCARD calls stay out.
    const s1b = await snapshot(raw);
    await new Promise((r) => setTimeout(r, args.idleS * 1000));
    const s2 = await snapshot(raw);
    const idle = delta(s1b, s2);
    const idleHours = (s2.at - s1b.at) / 3_600_000;

    const measure = async (durable: boolean, n: number, from: Snapshot) => {
      const gwCpu0 = cpuUs(serverPids());
      const cli0 = process.cpuUsage();
      const r = await pushPhase(nodes, devs, n, args.concurrency, durable);
      const gwCpu = cpuUs(serverPids()) - gwCpu0;
      const cli = process.cpuUsage(cli0);
      await new Promise((res) => setTimeout(res, 1500));
      const to = await snapshot(raw);
      const ops = delta(from, to);
      return {
        to,
        out: {
          ...r,
          redis_commands_per_push: per(ops.total, n),
          redis_commands_by_name: perCommand(ops.byCommand, n),
          redis_cpu_us_per_push: per(to.cpuUs - from.cpuUs, n),
          gateway_cpu_us_per_push: per(gwCpu, n, 0),
          client_cpu_us_per_push: per(cli.user + cli.system, n, 0),
        },
      };
    };
    log('durable pushes…');
    const durable = await measure(true, args.pushes, s2);
    const bytesAfterPushes = await bytesPerDevice(raw, 'bench', sample);
    log('transient pushes…');
    const transient = await measure(false, Math.max(1, Math.floor(args.pushes / 2)), await snapshot(raw));
    log('unloaded latency (one push at a time)…');
    const unloaded = await pushPhase(nodes, devs, 300, 1, true);

    // Round trips (what clients send) vs commands run inside scripts, on small samples.
    log('round trips (MONITOR sample)…');
    const extra: Dev[] = [];
    const extraIds = Array.from({ length: 100 }, (_, i) => `x${i}`);
    const rtConnect = await monitored(redis.port, () => connectAll(nodes, extraIds, extra));
    const rtDurable = await monitored(redis.port, async () => void (await pushPhase(nodes, devs, 300, 8, true)));
    const rtTransient = await monitored(redis.port, async () => void (await pushPhase(nodes, devs, 300, 8, false)));
    const rtLeave = await monitored(redis.port, () => leaveAll(extra));
    const rt = (m: { client: Record<string, number>; lua: Record<string, number> }, n: number) => ({
      round_trips: per(sum(m.client), n),
      by_name: perCommand(m.client, n),
      in_scripts: per(sum(m.lua), n),
    });

    log('leave…');
    const s5a = await snapshot(raw);
    await leaveAll(devs);
    const s5 = await snapshot(raw);
    const leave = delta(s5a, s5);

    log('Redis side at load (engine classes, no HTTP)…');
    const nDirect = args.pushes * 2;
    let d0: Snapshot | null = null;
    const direct = await pushesAtLoad(redis.url('direct'), { n: nDirect, concurrency: 256, devices: 10_000, bodyBytes: 100 }, async () => {
      d0 = await snapshot(raw);
    });
    const d1 = await snapshot(raw);
    if (!d0) throw new Error('the load phase never started');
    const dOps = delta(d0 as Snapshot, d1);
    log('inbox memory…');
    const inbox = await inboxBytes(redis.url('inbox'), raw, 1000, 4, 100);

    const result = {
      bench: 'fleet',
      nodes: args.nodes,
      workers,
      devices: args.devices,
      redis: 'one redis-server 7.0, appendonly yes, appendfsync everysec, loopback; 2 cores shared by Redis, the nodes and this client',
      connect: {
        redis_commands_per_device: per(connect.total, args.devices),
        ...rt(rtConnect, extraIds.length),
        bytes_per_device: bytesConnected,
        used_memory_per_device: Math.round((s1.memory - s0.memory) / args.devices),
      },
      idle: {
        seconds: args.idleS,
        redis_commands: idle.total,
        per_device_hour: per(idle.total, args.devices * idleHours),
        per_worker_hour: Math.round(idle.total / (workers * idleHours)),
        by_name_per_worker_hour: perCommand(idle.byCommand, workers * idleHours),
      },
      durable: { ...durable.out, ...rt(rtDurable, 300), bytes_per_device: bytesAfterPushes },
      transient: { ...transient.out, ...rt(rtTransient, 300) },
      unloaded_durable: { api_ms: unloaded.api_ms, delivery_ms: unloaded.delivery_ms },
      leave: { redis_commands_per_device: per(leave.total, args.devices), ...rt(rtLeave, extraIds.length) },
      redis_side_at_load: {
        what: 'append + lookup + SPUBLISH + ack per push, 256 in flight from one process (auto-pipelined), 100 B bodies',
        pushes: nDirect,
        received: direct.received,
        pushes_per_s: Math.round((nDirect / direct.ms) * 1000),
        redis_cpu_us_per_push: per(d1.cpuUs - (d0 as Snapshot).cpuUs, nDirect),
        redis_commands_per_push: per(dOps.total, nDirect),
      },
      inbox_bytes: { body_bytes: 100, ...inbox },
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    for (const d of devs) d.conn.close();
    await Promise.all(nodes.map((g) => g.stop()));
    raw.disconnect();
    await redis.stop();
  }
}

main().catch((err) => {
  log(`fleet bench failed: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
