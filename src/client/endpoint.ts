/**
 * Where a client connects: a WebSocket URL or a TCP host/port. The gateway names other
 * endpoints as `host:port` (WELCOME.resume_endpoint, GOAWAY.endpoint, ERROR.redirect);
 * endpointFrom() turns one into an Endpoint of the same transport as the home address.
 */
import type { ConnectionOptions } from 'node:tls';

export type Endpoint =
  | { kind: 'ws'; url: string }
  | {
      kind: 'tcp';
      host: string;
      port: number;
      /** TLS over raw TCP: true, or options for tls.connect. */
      tls?: boolean | ConnectionOptions;
    };

export function describeEndpoint(ep: Endpoint): string {
  return ep.kind === 'ws' ? ep.url : `${ep.host.includes(':') ? `[${ep.host}]` : ep.host}:${ep.port}`;
}

/**
 * `target` is `host:port` (IPv6 as `[::1]:port`) or a full URL. A WebSocket endpoint
 * keeps the home scheme and path, so the same session kind is opened elsewhere.
 */
export function endpointFrom(target: string, home: Endpoint): Endpoint {
  if (home.kind === 'ws') {
    if (target.includes('://')) return { kind: 'ws', url: new URL(target).href };
    const url = new URL(home.url);
    url.host = target;
    if (url.host === '' || url.hostname === '') throw new Error(`bad endpoint ${JSON.stringify(target)}`);
    return { kind: 'ws', url: url.href };
  }
  const hostPort = target.includes('://') ? new URL(target).host : target;
  const colon = hostPort.lastIndexOf(':');
  const port = Number(hostPort.slice(colon + 1));
  const host = hostPort.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  if (colon <= 0 || host === '' || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`bad endpoint ${JSON.stringify(target)}: expected host:port`);
  }
  return { kind: 'tcp', host, port, tls: home.tls };
}

/** Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date; undefined if absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
