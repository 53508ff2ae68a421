/**
 * Memory readings of a soak phase: the server processes' RSS at a baseline (after a
 * warm-up of connections, so one-time costs such as JIT code and buffers land before
 * it) and after connections were added, each after a forced GC (gc.ts) and the minimum
 * of a few readings; the client processes' cost; the kernel's socket memory.
 *
 * Besides VmRSS, each reading keeps the PSS (/proc/<pid>/smaps_rollup: a page shared by
 * k processes counts 1/k in each, so a sum over workers counts the store's memory map
 * once, where a sum of RSS counts it once per worker) and the RSS split by kind of
 * mapping (bench/lib/procs.ts readBreakdown: malloc heap, thread arenas, V8 and other
 * anonymous pages, store file, code).
 */
import { minRss, type RssBreakdown, readBreakdown, readPss } from '../lib/procs';
import type { ClientPool } from './pool';
import { type KernelFigures, readKernel, readRssBytes } from './sampler';

export interface MemPoint {
  /** RSS per server process (gateway workers by index, or bare server processes), bytes. */
  rss: number[];
  /** Its anonymous part (heap, stacks; not file pages such as the store's memory map). */
  anon: number[];
  /** PSS per process (shared pages split between the processes that map them). */
  pss: number[];
  /** RSS per process by kind of mapping. */
  parts: RssBreakdown[];
  /** Connections per server process at the time. */
  conns: number[];
  /** Open connections per transport at the time: [WebSocket, raw TCP]. */
  transport: [number, number];
  kernel: KernelFigures;
}

/** What connections added between two readings, per connection added. */
export interface StepCost {
  /** Connections added. */
  conns: number;
  /** Δ Σ VmRSS / conns: what the target is checked on. */
  bytesPerConn: number;
  /** Δ Σ anonymous RSS (RssAnon) / conns. */
  anonBytesPerConn: number;
  /** Δ Σ file-backed RSS / conns: mostly the store's memory map, counted in every worker that maps it. */
  fileBytesPerConn: number;
  /** Δ Σ PSS / conns: shared pages counted once over all the processes. */
  pssBytesPerConn: number;
  /** Δ Σ RSS by kind of mapping / conns (smaps). */
  partsPerConn: { malloc_main: number; malloc_threads: number; anon_other: number; store_file: number; code_file: number };
}

export interface MemCost extends StepCost {
  warm: MemPoint;
  held: MemPoint;
  /** Per server process, (held RSS − warm RSS) / its connections added. */
  bytesPerConnEach: number[];
  /** Δ(socket slab caches + sockstat TCP buffer memory) / (2 × connections added): both ends are sockets of this kernel. */
  kernelBytesPerSocket: number;
  /** Client processes: RSS growth since they started, per connection they hold. */
  clientBytesPerConn: number;
  clientRss: number;
  /** Client CPU ms spent per connection opened (ramp included). */
  clientCpuMsPerConn: number;
}

const NO_PARTS: RssBreakdown = { mallocMain: 0, mallocThreads: 0, anonOther: 0, storeFile: 0, codeFile: 0 };

/** The reading with the least RSS of each pid over `n` readings `everyMs` apart, with its PSS and smaps parts (zeros for a pid that is gone). */
export async function minRssOf(pids: number[], n: number, everyMs: number): Promise<Array<{ rss: number; anon: number; pss: number; parts: RssBreakdown }>> {
  return Promise.all(
    pids.map((pid) =>
      minRss(pid, n, everyMs).then(
        (r) => {
          try {
            return { rss: r.min.rss, anon: r.min.anon, pss: readPss(pid).pss, parts: readBreakdown(pid) };
          } catch {
            return { rss: r.min.rss, anon: r.min.anon, pss: 0, parts: NO_PARTS };
          }
        },
        () => ({ rss: 0, anon: 0, pss: 0, parts: NO_PARTS }),
      ),
    ),
  );
}

/** `collect`: forces a GC in the servers first (gc.ts). `transport`: open connections per transport. */
export async function memPoint(pids: number[], conns: () => Promise<number[]> | number[], n: number, everyMs: number, collect: () => Promise<void>, transport: () => [number, number] = () => [0, 0]): Promise<MemPoint> {
  await collect();
  const r = await minRssOf(pids, n, everyMs);
  return { rss: r.map((x) => x.rss), anon: r.map((x) => x.anon), pss: r.map((x) => x.pss), parts: r.map((x) => x.parts), conns: await conns(), transport: transport(), kernel: readKernel() };
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + (b || 0), 0);
const per = (bytes: number, conns: number): number => (conns > 0 ? Math.round(bytes / conns) : 0);
const partSum = (p: MemPoint, k: keyof RssBreakdown): number => sum(p.parts.map((x) => x[k]));

/** The cost of going from `a` to `b`, per connection added (`conns`: default, the servers' count). */
export function stepCost(a: MemPoint, b: MemPoint, conns = sum(b.conns) - sum(a.conns)): StepCost {
  const d = (k: keyof RssBreakdown): number => per(partSum(b, k) - partSum(a, k), conns);
  const rss = sum(b.rss) - sum(a.rss);
  const anon = sum(b.anon) - sum(a.anon);
  return {
    conns,
    bytesPerConn: per(rss, conns),
    anonBytesPerConn: per(anon, conns),
    fileBytesPerConn: per(rss - anon, conns),
    pssBytesPerConn: per(sum(b.pss) - sum(a.pss), conns),
    partsPerConn: { malloc_main: d('mallocMain'), malloc_threads: d('mallocThreads'), anon_other: d('anonOther'), store_file: d('storeFile'), code_file: d('codeFile') },
  };
}

export function memCost(warm: MemPoint, held: MemPoint, pool: ClientPool): MemCost {
  const dConns = sum(held.conns) - sum(warm.conns);
  const kBytes = held.kernel.socketSlab + held.kernel.tcpMem - warm.kernel.socketSlab - warm.kernel.tcpMem;
  let clientGrowth = 0;
  let clientConns = 0;
  let clientRss = 0;
  let clientCpu = 0;
  for (const c of pool.clients) {
    const rss = readRssBytes(c.pid);
    clientRss += rss;
    clientGrowth += rss - c.readyRss;
    clientConns += c.stats?.open ?? 0;
    clientCpu += c.stats?.cpuMs ?? 0;
  }
  return {
    warm,
    held,
    ...stepCost(warm, held, dConns),
    bytesPerConnEach: held.rss.map((r, i) => per(r - (warm.rss[i] ?? 0), (held.conns[i] ?? 0) - (warm.conns[i] ?? 0))),
    // Machine-wide figures: other processes' sockets opening or closing meanwhile skew them.
    kernelBytesPerSocket: dConns > 0 ? Math.max(0, Math.round(kBytes / (2 * dConns))) : 0,
    clientBytesPerConn: clientConns ? Math.round(clientGrowth / clientConns) : 0,
    clientRss,
    clientCpuMsPerConn: clientConns ? +(clientCpu / clientConns).toFixed(3) : 0,
  };
}
