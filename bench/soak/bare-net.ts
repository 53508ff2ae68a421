/**
 * The soak's raw TCP baseline: a bare node:net echo server in a node:cluster of N
 * workers, as the gateway's raw TCP listener is (the primary accepts, round-robin, and
 * hands each socket to a worker). Per socket it keeps only what any node:net server
 * must: the net.Socket the server creates, one shared 'data' handler (echo, so the
 * client knows it was accepted) and one shared 'error' handler; no closure, no state.
 * What it holds per socket is the floor for a session on node:net.
 *
 * `node dist/bench/soak/bare-net.js HOST PORT WORKERS`: prints {"port","pids":[...]}
 * once every worker listens, then answers each stdin line `stats` with
 * {"t":"stats","conns":[connections per worker, in pid order]}. Exits on SIGTERM/SIGINT
 * or when stdin closes, with its workers.
 */

import cluster, { type Worker } from 'node:cluster';
import net from 'node:net';
import { onStdinLines } from '../lib/stdin-lines';

function echo(this: net.Socket, d: Buffer): void {
  this.write(d);
}

function ignore(): void {}

function worker(): void {
  const [host, port] = process.argv.slice(2);
  const srv = net.createServer({ noDelay: true }, (s) => {
    s.on('data', echo);
    s.on('error', ignore);
  });
  srv.listen(Number(port), host);
  process.on('message', (m) => {
    if (m === 'stats') srv.getConnections((_err, n) => process.send?.({ conns: n ?? 0 }));
  });
}

function primary(): void {
  const n = Number(process.argv[4] ?? 1);
  const workers: Worker[] = [];
  let listening = 0;
  const counts: Array<number | undefined> = [];
  const answer = (w: number, conns: number): void => {
    counts[w] = conns;
    if (counts.filter((c) => c !== undefined).length === n) {
      process.stdout.write(`${JSON.stringify({ t: 'stats', conns: counts })}\n`);
      counts.length = 0;
    }
  };
  for (let k = 0; k < n; k++) {
    const w = cluster.fork();
    workers.push(w);
    w.on('message', (m: { conns: number }) => answer(k, m.conns));
    w.once('listening', (addr) => {
      if (++listening === n) process.stdout.write(`${JSON.stringify({ port: addr.port, pids: workers.map((x) => x.process.pid) })}\n`);
    });
    w.once('exit', (code, signal) => {
      process.stderr.write(`bare-net: worker ${k} exited (${signal ?? code})\n`);
      process.exit(1);
    });
  }
  onStdinLines((line) => {
    if (line === 'stats') for (const w of workers) w.send('stats');
  });
  const quit = (): void => {
    for (const w of workers) {
      w.removeAllListeners('exit');
      w.process.kill('SIGKILL');
    }
    process.exit(0);
  };
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
  process.stdin.on('end', quit);
}

if (cluster.isPrimary) primary();
else worker();
