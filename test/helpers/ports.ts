/**
 * Loopback ports a test names in advance (a listener it must know before the gateway
 * starts, or restarts on). They are chosen below the kernel's ephemeral range: a port
 * from listen(0), closed and handed on, can be taken by another test's outgoing
 * connection before the gateway binds it (seen in CI: EADDRINUSE on the TCP port).
 */
import { readFileSync } from 'node:fs';
import * as net from 'node:net';

const LOWEST = 10_000;

/** First port of the kernel's ephemeral range (outgoing connections and listen(0) draw from it). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > LOWEST + 1_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

export function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A free loopback port p below the ephemeral range such that every p + offset in
 * `alsoFree` is free too (a run of ports, or a Redis cluster bus port at p + 10,000).
 */
export async function freePort(alsoFree: readonly number[] = []): Promise<number> {
  const high = ephemeralLow() - Math.max(0, ...alsoFree);
  for (let i = 0; i < 500; i++) {
    const port = LOWEST + Math.floor(Math.random() * (high - LOWEST));
    if (!(await canBind(port))) continue;
    let ok = true;
    for (const d of alsoFree) if (!(await canBind(port + d))) ok = false;
    if (ok) return port;
  }
  throw new Error(`no free loopback port found between ${LOWEST} and ${high}`);
}
