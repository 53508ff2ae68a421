/**
 * The client processes of `bench idle` (idle-client.ts), seen from the bench: fork
 * one per source address, follow their progress, and stop them.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import type { ClientSpec, ClientStats, FromClient } from './idle-client';
import { own, sleep, stop } from './procs';

export interface Client {
  spec: ClientSpec;
  pid: number;
  /** The client's RSS before it opened any socket (after its own GC). */
  readyRss: number;
  stats: ClientStats | null;
  done: boolean;
  exited: boolean;
  stop(): Promise<void>;
}

/** Forks a client; resolves once it is ready (it starts connecting right away). */
export function startClient(spec: ClientSpec): Promise<Client> {
  const child = fork(path.join(__dirname, 'idle-client.js'), [JSON.stringify(spec)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  own(child);
  return new Promise((resolve, reject) => {
    const c: Client = {
      spec,
      pid: child.pid as number,
      readyRss: 0,
      stats: null,
      done: false,
      exited: false,
      stop: async () => {
        if (child.connected) child.send({ t: 'stop' });
        await stop(child, 5_000);
      },
    };
    child.on('message', (m: FromClient) => {
      if (m.t === 'ready') {
        c.readyRss = m.rss;
        resolve(c);
      } else {
        c.stats = m.s;
        if (m.t === 'done') c.done = true;
      }
    });
    child.once('exit', (code) => {
      c.exited = true;
      if (!c.done) reject(new Error(`client ${spec.localAddress} exited (${code}) before it finished connecting`));
    });
  });
}

export function sum(clients: Client[], f: (s: ClientStats) => number): number {
  let n = 0;
  for (const c of clients) if (c.stats) n += f(c.stats);
  return n;
}

/** Waits until every client has tried all its sockets, logging progress each second. */
export async function connectAll(label: string, clients: Client[], deadline: number, log: (m: string) => void): Promise<number> {
  const t0 = performance.now();
  const total = clients.reduce((n, c) => n + c.spec.count, 0);
  let lastUp = 0;
  let lastT = t0;
  for (;;) {
    await sleep(1000);
    const up = sum(clients, (s) => s.up);
    const now = performance.now();
    const rate = ((up - lastUp) * 1000) / (now - lastT);
    lastUp = up;
    lastT = now;
    log(`${label}: up ${up}/${total}, failed ${sum(clients, (s) => s.failed)}, pending ${sum(clients, (s) => s.pending)}, ${rate.toFixed(0)}/s`);
    if (clients.every((c) => c.done)) return (performance.now() - t0) / 1000;
    const dead = clients.find((c) => c.exited);
    if (dead) throw new Error(`${label}: the client on ${dead.spec.localAddress} exited while connecting`);
    if (Date.now() > deadline) throw new Error(`${label}: connecting did not finish in time`);
  }
}

/** Failure reasons of every client, added up. */
export function reasons(clients: Client[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of clients) for (const [r, n] of Object.entries(c.stats?.reasons ?? {})) out[r] = (out[r] ?? 0) + n;
  return out;
}

/** What the clients grew by (each after its own GC) per socket they hold. */
export function clientBytesPerConn(clients: Client[]): number {
  let growth = 0;
  let conns = 0;
  for (const c of clients) {
    growth += (c.stats?.rss ?? c.readyRss) - c.readyRss;
    conns += c.stats?.up ?? 0;
  }
  return conns ? Math.round(growth / conns) : 0;
}
