/**
 * Samples over time what a soak costs the machine: RSS and CPU of every server process
 * (gateway workers by index, the primary; or the bare uWS processes) and of the client
 * processes, open connections (per worker), and the kernel's socket memory
 * (/proc/net/sockstat: TCP sockets in use and their buffer pages; /proc/slabinfo: the
 * slab caches a socket lives in; Slab from /proc/meminfo), and how much of the time tasks
 * waited for I/O (/proc/pressure/io): a durable push's 202 waits for an fsync, so a slow
 * disk shows in the dial test, and this tells it apart from a slow gateway.
 */
import { readFileSync } from 'node:fs';

const PAGE = 4096;
const TICKS_PER_S = 100;
/** Slab caches an idle TCP socket (and its file) occupies. */
const SOCKET_SLABS = ['TCP', 'tcp_bind_bucket', 'sock_inode_cache', 'filp', 'dentry', 'eventpoll_epi', 'eventpoll_pwq', 'skbuff_head_cache', 'kmalloc-rcl-64'];

export interface KernelFigures {
  tcpInuse: number;
  tcpTw: number;
  tcpOrphan: number;
  /** TCP socket buffer memory, bytes (sockstat "mem" pages). */
  tcpMem: number;
  /** Bytes held by the slab caches in SOCKET_SLABS (0 when slabinfo is unreadable). */
  socketSlab: number;
  /** Every slab cache, bytes (meminfo Slab). */
  slab: number;
  memAvailable: number;
}

export interface Sample {
  /** Seconds since the run started. */
  t: number;
  phase: string;
  conns: number;
  perWorker: number[];
  /** RSS per server process: gateway workers by index, or the bare uWS processes. */
  serverRss: number[];
  primaryRss: number;
  /** Cores used by the server processes (all of them) since the previous sample. */
  serverCpu: number;
  clientRss: number;
  clientCpu: number;
  /** Cores busy machine-wide (/proc/stat): more than servers + clients means someone else is using the machine. */
  machineCpu: number;
  load1: number;
  /** Percent of the time since the previous sample that some task waited for I/O (PSI "some"; 0 without PSI). */
  ioStallPct: number;
  kernel: KernelFigures;
}

/** The first eight fields of /proc/stat's cpu line (user nice system idle iowait irq softirq steal), jiffies; null off Linux. */
export function cpuJiffies(): number[] | null {
  try {
    return readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  } catch {
    return null;
  }
}

/** [busy, total] jiffies of all CPUs (/proc/stat). */
function machineJiffies(): [number, number] {
  const f = cpuJiffies();
  if (!f) return [0, 0];
  const total = f.reduce((a, b) => a + b, 0);
  return [total - f[3] - f[4], total];
}

function load1(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return 0;
  }
}

/** Cumulative microseconds some task waited for I/O (/proc/pressure/io "some total"), or null without PSI. */
export function ioStallUs(): number | null {
  try {
    const m = /^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/io', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** `stalledUs` of I/O stall over `ms` of wall time, as a percent (0 for no time). */
export function stallPercent(stalledUs: number, ms: number): number {
  return ms > 0 ? Math.min(100, stalledUs / 10 / ms) : 0;
}

export function readRssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // gone (a killed worker)
  }
}

/** utime + stime of a process, ms (0 when it is gone). */
export function cpuMs(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // Fields after the command: state is f[0]; utime and stime are fields 14 and 15 of the line.
    return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS_PER_S;
  } catch {
    return 0;
  }
}

export function readKernel(): KernelFigures {
  const k: KernelFigures = { tcpInuse: 0, tcpTw: 0, tcpOrphan: 0, tcpMem: 0, socketSlab: 0, slab: 0, memAvailable: 0 };
  try {
    const m = /^TCP: inuse (\d+) orphan (\d+) tw (\d+) alloc \d+ mem (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'));
    if (m) {
      k.tcpInuse = Number(m[1]);
      k.tcpOrphan = Number(m[2]);
      k.tcpTw = Number(m[3]);
      k.tcpMem = Number(m[4]) * PAGE;
    }
  } catch {}
  try {
    for (const line of readFileSync('/proc/slabinfo', 'utf8').split('\n')) {
      const f = line.split(/\s+/);
      // name active_objs num_objs objsize ...
      if (SOCKET_SLABS.includes(f[0])) k.socketSlab += Number(f[2]) * Number(f[3]);
    }
  } catch {}
  try {
    const mi = readFileSync('/proc/meminfo', 'utf8');
    k.slab = Number(/^Slab:\s+(\d+) kB/m.exec(mi)?.[1] ?? 0) * 1024;
    k.memAvailable = Number(/^MemAvailable:\s+(\d+) kB/m.exec(mi)?.[1] ?? 0) * 1024;
  } catch {}
  return k;
}

export interface SampleSources {
  phase(): string;
  conns(): number;
  perWorker(): number[];
  serverPids(): number[];
  primaryPid(): number;
  clientPids(): number[];
}

export class Sampler {
  readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | null = null;
  private last = new Map<number, number>();
  private lastT = 0;
  private lastMachine: [number, number] = machineJiffies();
  private lastIo: number | null = ioStallUs();
  private readonly cpus: number;

  constructor(
    private readonly t0: number,
    private readonly src: SampleSources,
    cpus: number,
  ) {
    this.cpus = cpus;
  }

  private machine(): number {
    const now = machineJiffies();
    const [b0, t0] = this.lastMachine;
    this.lastMachine = now;
    return now[1] > t0 ? ((now[0] - b0) / (now[1] - t0)) * this.cpus : 0;
  }

  /** Percent of the `dtMs` since the last call that some task waited for I/O. */
  private ioStall(dtMs: number): number {
    const now = ioStallUs();
    const before = this.lastIo;
    this.lastIo = now;
    return now !== null && before !== null ? stallPercent(now - before, dtMs) : 0;
  }

  /** Cores used by `pids` since the last call (per pid bookkeeping). */
  private cores(pids: number[], dtMs: number): number {
    let used = 0;
    for (const pid of pids) {
      const now = cpuMs(pid);
      const before = this.last.get(pid);
      this.last.set(pid, now);
      if (before !== undefined && now >= before && dtMs > 0) used += (now - before) / dtMs;
    }
    return used;
  }

  sample(): Sample {
    const now = performance.now();
    const dt = this.lastT ? now - this.lastT : 0;
    this.lastT = now;
    const servers = this.src.serverPids();
    const primary = this.src.primaryPid();
    const clients = this.src.clientPids();
    const s: Sample = {
      t: +((now - this.t0) / 1000).toFixed(2),
      phase: this.src.phase(),
      conns: this.src.conns(),
      perWorker: this.src.perWorker(),
      serverRss: servers.map(readRssBytes),
      primaryRss: primary ? readRssBytes(primary) : 0,
      serverCpu: +this.cores(primary ? [...servers, primary] : servers, dt).toFixed(3),
      clientRss: clients.reduce((n, pid) => n + readRssBytes(pid), 0),
      clientCpu: +this.cores(clients, dt).toFixed(3),
      machineCpu: +this.machine().toFixed(3),
      load1: load1(),
      ioStallPct: +this.ioStall(dt).toFixed(2),
      kernel: readKernel(),
    };
    this.samples.push(s);
    return s;
  }

  start(everyMs: number): void {
    this.stop();
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Mean of `f` over the samples of `phase` (after the first, whose CPU figures cover no interval). */
  mean(phase: string, f: (s: Sample) => number): number {
    const xs = this.samples.filter((s) => s.phase === phase).slice(1).map(f);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
  }

  /** Largest value of `f` over the samples of `phase` (after the first), 0 if none. */
  max(phase: string, f: (s: Sample) => number): number {
    return this.samples
      .filter((s) => s.phase === phase)
      .slice(1)
      .reduce((m, s) => Math.max(m, f(s)), 0);
  }

  /** Mean cores used machine-wide by processes that are not this run's servers or clients. */
  othersCpu(): number {
    const xs = this.samples.slice(1).map((s) => Math.max(0, s.machineCpu - s.serverCpu - s.clientCpu));
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
  }
}
