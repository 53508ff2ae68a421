/**
 * Free ports for listeners configured as 0 (and for tests and benches that must name a
 * port before the server starts). The port is found here, closed, and bound again by
 * someone else (a worker, a child process), so it is drawn from below the kernel's
 * ephemeral range: a port from listen(0) comes from that range, and any outgoing
 * connection on the machine may take it before the listener binds it again (seen in
 * CI as EADDRINUSE). Below the range, only another listener naming that port can.
 */
import { readFileSync } from 'node:fs';
import * as net from 'node:net';

const LOWEST = 10_000;
const TRIES = 500;

/** First port of the kernel's ephemeral range (outgoing connections and listen(0) draw from it). */
export function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > LOWEST + 1_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Whether a TCP listener could bind `port` on `host` right now. */
export function canBind(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/**
 * A free port p on `host`, below the ephemeral range, such that every p + offset in
 * `alsoFree` is free too (a run of ports, or a Redis cluster bus port at p + 10,000).
 */
export async function freePort(host = '127.0.0.1', alsoFree: readonly number[] = []): Promise<number> {
  const high = ephemeralLow() - Math.max(0, ...alsoFree);
  for (let i = 0; i < TRIES; i++) {
    const port = LOWEST + Math.floor(Math.random() * (high - LOWEST));
    if (!(await canBind(port, host))) continue;
    let ok = true;
    for (const d of alsoFree) if (!(await canBind(port + d, host))) ok = false;
    if (ok) return port;
  }
  throw new Error(`no free port on ${host} found between ${LOWEST} and ${high}`);
}
