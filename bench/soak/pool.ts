/**
 * The parent's side of the soak client processes (client.ts): forks them (each owned
 * by bench/lib/procs.ts, so a failed run leaves none behind), spreads the devices and
 * the ramp rate over them and their source addresses, sums their reports, and sends
 * them commands.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import { own, stop } from '../lib/procs';
import type { ClientStats, FromClient, SoakClientSpec, ToClient } from './messages';

export interface PoolClient {
  spec: SoakClientSpec;
  pid: number;
  readyRss: number;
  stats: ClientStats | null;
  exited: boolean;
  send(m: ToClient): void;
  /** The next message of type `t` from this client. */
  next<T extends FromClient['t']>(t: T, timeoutMs: number): Promise<Extract<FromClient, { t: T }>>;
  stop(): Promise<void>;
}

export interface PoolPlan {
  total: number;
  perClient: number;
  /** Source addresses start at 127.0.0.<firstHost>. */
  firstHost: number;
  ratePerS: number;
}

/** Splits `total` devices into processes of at most `perClient`, the rate in proportion. */
export function planSpecs(base: Omit<SoakClientSpec, 'id' | 'localAddress' | 'first' | 'count' | 'ratePerS'>, plan: PoolPlan): SoakClientSpec[] {
  const procs = Math.max(1, Math.ceil(plan.total / plan.perClient));
  const specs: SoakClientSpec[] = [];
  for (let k = 0; k < procs; k++) {
    const first = Math.floor((k * plan.total) / procs);
    const end = Math.floor(((k + 1) * plan.total) / procs);
    const count = end - first;
    specs.push({ ...base, id: k, localAddress: `127.0.0.${plan.firstHost + k}`, first, count, ratePerS: (plan.ratePerS * count) / plan.total });
  }
  return specs;
}

function startClient(spec: SoakClientSpec): Promise<PoolClient> {
  const child = fork(path.join(__dirname, 'client.js'), [JSON.stringify(spec)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  own(child);
  const waiters: Array<{ t: string; resolve: (m: FromClient) => void }> = [];
  return new Promise((resolve, reject) => {
    const c: PoolClient = {
      spec,
      pid: child.pid as number,
      readyRss: 0,
      stats: null,
      exited: false,
      send: (m) => {
        if (child.connected) child.send(m);
      },
      next: (t, timeoutMs) =>
        new Promise((res, rej) => {
          const timer = setTimeout(() => rej(new Error(`client ${spec.id} (${spec.localAddress}) sent no "${t}" within ${timeoutMs} ms`)), timeoutMs);
          waiters.push({
            t,
            resolve: (m) => {
              clearTimeout(timer);
              res(m as never);
            },
          });
        }),
      stop: async () => {
        c.send({ t: 'stop' });
        await stop(child, 5_000);
      },
    };
    child.on('message', (m: FromClient) => {
      if (m.t === 'ready') {
        c.readyRss = m.rss;
        resolve(c);
        return;
      }
      if (m.t === 'progress') {
        c.stats = m.s;
        return;
      }
      const w = waiters.findIndex((x) => x.t === m.t);
      if (w >= 0) waiters.splice(w, 1)[0].resolve(m);
    });
    child.once('exit', (code, signal) => {
      c.exited = true;
      reject(new Error(`client ${spec.id} (${spec.localAddress}) exited (${signal ?? code}) before it was ready`));
    });
  });
}

export class ClientPool {
  private constructor(readonly clients: PoolClient[]) {}

  static async start(specs: SoakClientSpec[]): Promise<ClientPool> {
    return new ClientPool(await Promise.all(specs.map(startClient)));
  }

  get total(): number {
    return this.clients.reduce((n, c) => n + c.spec.count, 0);
  }

  sum(f: (s: ClientStats) => number): number {
    let n = 0;
    for (const c of this.clients) if (c.stats) n += f(c.stats);
    return n;
  }

  max(f: (s: ClientStats) => number): number {
    let n = 0;
    for (const c of this.clients) if (c.stats) n = Math.max(n, f(c.stats));
    return n;
  }

  /** Open sessions per gateway worker index, summed over clients. */
  perWorker(): number[] {
    const out: number[] = [];
    for (const c of this.clients) {
      const per = c.stats?.perWorker ?? [];
      // JSON turns the holes of a sparse array into null.
      for (let w = 0; w < per.length; w++) out[w] = (out[w] ?? 0) + (per[w] ?? 0);
    }
    return Array.from(out, (n) => n ?? 0);
  }

  /** Open sessions per transport, summed over clients: [WebSocket, raw TCP]. */
  perTransport(): [number, number] {
    return [this.sum((s) => s.perTransport[0]), this.sum((s) => s.perTransport[1])];
  }

  reasons(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of this.clients) for (const [r, n] of Object.entries(c.stats?.reasons ?? {})) out[r] = (out[r] ?? 0) + n;
    return out;
  }

  /** Connect `n` devices in all, each client its share (or `n(client)` each). */
  target(n: number | ((c: PoolClient) => number)): number {
    let sum = 0;
    for (const c of this.clients) {
      const share = typeof n === 'function' ? n(c) : Math.round((c.spec.count * n) / this.total);
      sum += share;
      c.send({ t: 'target', n: share });
    }
    return sum;
  }

  /** Splits a per-second rate over the clients in proportion to their devices. */
  rate(perS: number, m: (share: number) => ToClient): void {
    for (const c of this.clients) c.send(m((perS * c.spec.count) / this.total));
  }

  send(m: ToClient): void {
    for (const c of this.clients) c.send(m);
  }

  /** Sends `m` to every client and collects each one's answer of type `t`. */
  ask<T extends FromClient['t']>(m: ToClient, t: T, timeoutMs: number): Promise<Array<Extract<FromClient, { t: T }>>> {
    const answers = this.clients.map((c) => c.next(t, timeoutMs));
    this.send(m);
    return Promise.all(answers);
  }

  dead(): PoolClient | undefined {
    return this.clients.find((c) => c.exited);
  }

  pids(): number[] {
    return this.clients.map((c) => c.pid);
  }

  async stop(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.stop()));
  }
}
