/**
 * Memory readings of a soak phase: the server processes' RSS at a baseline (after a
 * warm-up of connections, so one-time costs such as JIT code and buffers land before
 * it) and held (every connection open), each the minimum of a few readings (nothing
 * outside a process can force its GC: the minimum carries the least garbage); the
 * client processes' cost; the kernel's socket memory.
 */
import { minRss } from '../lib/procs';
import type { ClientPool } from './pool';
import { type KernelFigures, readKernel, readRssBytes } from './sampler';

export interface MemPoint {
  /** RSS per server process (gateway workers by index, or bare uWS processes), bytes. */
  rss: number[];
  /** Its anonymous part (heap, stacks; not file pages such as the store's memory map). */
  anon: number[];
  /** Connections per server process at the time. */
  conns: number[];
  kernel: KernelFigures;
}

export interface MemCost {
  warm: MemPoint;
  held: MemPoint;
  /** (Σ held RSS − Σ warm RSS) / (held conns − warm conns). */
  bytesPerConn: number;
  /** The same for anonymous memory only (RSS less file-backed pages, e.g. the lmdb map). */
  anonBytesPerConn: number;
  /** Per server process, the same ratio. */
  bytesPerConnEach: number[];
  /** Δ(socket slab caches + sockstat TCP buffer memory) / (2 × connections added): both ends are sockets of this kernel. */
  kernelBytesPerSocket: number;
  /** Client processes: RSS growth since they started, per connection they hold. */
  clientBytesPerConn: number;
  clientRss: number;
  /** Client CPU ms spent per connection opened (ramp included). */
  clientCpuMsPerConn: number;
}

/** The reading with the least RSS of each pid over `n` readings `everyMs` apart (zeros for a pid that is gone). */
export async function minRssOf(pids: number[], n: number, everyMs: number): Promise<Array<{ rss: number; anon: number }>> {
  return Promise.all(pids.map((pid) => minRss(pid, n, everyMs).then((r) => r.min, () => ({ rss: 0, anon: 0 }))));
}

/** `collect`: forces a GC in the servers first (gc.ts). */
export async function memPoint(pids: number[], conns: () => Promise<number[]> | number[], n: number, everyMs: number, collect: () => Promise<void>): Promise<MemPoint> {
  await collect();
  const r = await minRssOf(pids, n, everyMs);
  return { rss: r.map((x) => x.rss), anon: r.map((x) => x.anon), conns: await conns(), kernel: readKernel() };
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + (b || 0), 0);

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
    bytesPerConn: dConns > 0 ? Math.round((sum(held.rss) - sum(warm.rss)) / dConns) : 0,
    anonBytesPerConn: dConns > 0 ? Math.round((sum(held.anon) - sum(warm.anon)) / dConns) : 0,
    bytesPerConnEach: held.rss.map((r, i) => {
      const d = (held.conns[i] ?? 0) - (warm.conns[i] ?? 0);
      return d > 0 ? Math.round((r - (warm.rss[i] ?? 0)) / d) : 0;
    }),
    // Machine-wide figures: other processes' sockets opening or closing meanwhile skew them.
    kernelBytesPerSocket: dConns > 0 ? Math.max(0, Math.round(kBytes / (2 * dConns))) : 0,
    clientBytesPerConn: clientConns ? Math.round(clientGrowth / clientConns) : 0,
    clientRss,
    clientCpuMsPerConn: clientConns ? +(clientCpu / clientConns).toFixed(3) : 0,
  };
}
