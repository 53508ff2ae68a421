/**
 * Per-worker WebSocket resume ports. Worker i gets the i-th port counting up from
 * `ws.resume_port_base`, or from ws.port + 1 when the base is 0, skipping the ports
 * of the other listeners: with the defaults (ws 8080, api 8081, tcp 7070) workers
 * resume on 8082, 8083, ... rather than colliding with the API.
 */
import type { Config } from './types';

export function resumePorts(config: Config): number[] {
  const explicit = config.ws.resume_port_base > 0;
  let port = explicit ? config.ws.resume_port_base : config.ws.port + 1;
  const taken = new Set([config.ws.port, config.tcp.port, config.api.port]);
  const out: number[] = [];
  while (out.length < config.workers && port <= 65_535) {
    if (explicit || !taken.has(port)) out.push(port);
    port++;
  }
  return out;
}
