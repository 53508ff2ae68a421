/**
 * Where a client connects: a WebSocket URL or a TCP host/port. The gateway names other
 * endpoints as `host:port` (WELCOME.resume_endpoint, GOAWAY.endpoint, ERROR.redirect);
 * endpointFrom() turns one into an Endpoint of the same transport as the home address.
 */
import type { ConnectionOptions } from 'node:tls';

export type Endpoint =
  | {
      kind: 'ws';
      url: string;
      /** TLS options for wss:// (ca, servername, ...). */
      tls?: ConnectionOptions;
    }
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
  if (home.kind === 'ws' && target.includes('://')) return { kind: 'ws', url: new URL(target).href, tls: home.tls };
  const { host, port } = parseHostPort(target.includes('://') ? new URL(target).host : target);
  if (home.kind === 'tcp') return { kind: 'tcp', host, port, tls: home.tls };
  const url = new URL(home.url);
  url.hostname = host.includes(':') ? `[${host}]` : host;
  url.port = String(port);
  return { kind: 'ws', url: url.href, tls: home.tls };
}

function parseHostPort(hostPort: string): { host: string; port: number } {
  const colon = hostPort.lastIndexOf(':');
  const port = Number(hostPort.slice(colon + 1));
  const host = hostPort.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  if (colon <= 0 || host === '' || !/^\d+$/.test(hostPort.slice(colon + 1)) || port <= 0 || port > 65535) {
    throw new Error(`bad endpoint ${JSON.stringify(hostPort)}: expected host:port`);
  }
  return { host, port };
}

/** Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date; undefined if absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
