/**
 * `store.redis_url` → what the Redis engine connects to (docs/store.md, "Redis").
 *
 *   redis[s]://[user[:password]@]host[:port][,host[:port]...][/db][?param=value&...]
 *
 * One host is a single Redis; several hosts (the seed nodes) or `?cluster=1` mean Redis
 * Cluster. `rediss://` turns TLS on for every node. Parameters:
 *   cluster=1|0      force Cluster mode on or off (default: on when several hosts are listed)
 *   prefix=NAME      key prefix, so several gateways can share one Redis (default: moor)
 *   timeout_ms=N     bound on every command and on connecting (default: 2000)
 *   live_ttl_ms=N    fleet mode: how long a gateway worker counts as alive without
 *                    renewing its liveness key (default: 15000; docs/fleet.md)
 *
 * Written by hand: WHATWG URL cannot parse a comma-separated host list.
 */

export interface RedisNode {
  host: string;
  port: number;
}

export interface RedisTarget {
  cluster: boolean;
  nodes: RedisNode[];
  tls: boolean;
  username: string | undefined;
  password: string | undefined;
  db: number;
  prefix: string;
  timeoutMs: number;
  liveTtlMs: number;
}

/** A `store.redis_url` that cannot work; raised by openStore before any connection is tried. */
export class RedisUrlError extends Error {
  readonly code = 'STORE_CONFIG' as const;

  constructor(message: string) {
    super(`store.redis_url: ${message}`);
    this.name = 'RedisUrlError';
  }
}

const DEFAULT_PORT = 6379;
const DEFAULT_TIMEOUT_MS = 2000;
const DEFAULT_LIVE_TTL_MS = 15_000;
const PARAMS = new Set(['cluster', 'prefix', 'timeout_ms', 'live_ttl_ms']);

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new RedisUrlError(`${what} is not valid percent-encoding`);
  }
}

function parseNode(spec: string): RedisNode {
  let host: string;
  let portText: string | undefined;
  if (spec.startsWith('[')) {
    // IPv6 literal: [::1]:6379
    const end = spec.indexOf(']');
    if (end < 0) throw new RedisUrlError(`unclosed [ in host "${spec}"`);
    host = spec.slice(1, end);
    const rest = spec.slice(end + 1);
    if (rest !== '' && !rest.startsWith(':')) throw new RedisUrlError(`unexpected "${rest}" after host "${spec}"`);
    portText = rest === '' ? undefined : rest.slice(1);
  } else {
    const colon = spec.lastIndexOf(':');
    host = colon < 0 ? spec : spec.slice(0, colon);
    portText = colon < 0 ? undefined : spec.slice(colon + 1);
  }
  if (host === '') throw new RedisUrlError(`empty host in "${spec}"`);
  let port = DEFAULT_PORT;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      throw new RedisUrlError(`port "${portText}" is not 1..65535`);
    }
    port = Number(portText);
  }
  return { host, port };
}

export function parseRedisUrl(url: string): RedisTarget {
  if (typeof url !== 'string' || url === '') {
    throw new RedisUrlError('is required when store.kind = "redis" (e.g. redis://127.0.0.1:6379/0)');
  }
  const m = /^(rediss?):\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(url);
  if (!m) throw new RedisUrlError(`"${url}" is not a redis:// or rediss:// URL`);
  const [, scheme, authority, pathPart = '', query = ''] = m;

  let username: string | undefined;
  let password: string | undefined;
  let hosts = authority;
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    hosts = authority.slice(at + 1);
    const colon = userinfo.indexOf(':');
    const user = decode(colon < 0 ? userinfo : userinfo.slice(0, colon), 'user name');
    username = user === '' ? undefined : user;
    password = colon < 0 ? undefined : decode(userinfo.slice(colon + 1), 'password');
  }
  if (hosts === '') throw new RedisUrlError('names no host');
  const nodes = hosts.split(',').map(parseNode);

  let db = 0;
  const dbText = pathPart.replace(/^\//, '');
  if (dbText !== '') {
    if (!/^\d{1,5}$/.test(dbText)) throw new RedisUrlError(`database "${dbText}" is not a number`);
    db = Number(dbText);
  }

  const params = new URLSearchParams(query.slice(1));
  for (const key of params.keys()) {
    if (!PARAMS.has(key)) {
      throw new RedisUrlError(`unknown parameter "${key}" (known: ${[...PARAMS].join(', ')})`);
    }
  }
  let cluster = nodes.length > 1;
  const clusterParam = params.get('cluster');
  if (clusterParam !== null) {
    if (clusterParam !== '1' && clusterParam !== '0') throw new RedisUrlError('cluster must be 1 or 0');
    cluster = clusterParam === '1';
  }
  if (!cluster && nodes.length > 1) {
    throw new RedisUrlError('several hosts are only allowed for Redis Cluster (drop cluster=0)');
  }
  if (cluster && db !== 0) throw new RedisUrlError('Redis Cluster has only database 0');

  const prefix = params.get('prefix') ?? 'moor';
  // Braces in the prefix would move the hash tag off the device id; see redis-keys.ts.
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(prefix)) {
    throw new RedisUrlError('prefix must be 1..64 of A-Z a-z 0-9 _ . : -');
  }
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  const timeoutParam = params.get('timeout_ms');
  if (timeoutParam !== null) {
    if (!/^\d{1,6}$/.test(timeoutParam) || Number(timeoutParam) < 10) {
      throw new RedisUrlError('timeout_ms must be a whole number of milliseconds >= 10');
    }
    timeoutMs = Number(timeoutParam);
  }
  let liveTtlMs = DEFAULT_LIVE_TTL_MS;
  const liveParam = params.get('live_ttl_ms');
  if (liveParam !== null) {
    if (!/^\d{1,7}$/.test(liveParam) || Number(liveParam) < 300) {
      throw new RedisUrlError('live_ttl_ms must be a whole number of milliseconds >= 300');
    }
    liveTtlMs = Number(liveParam);
  }
  return { cluster, nodes, tls: scheme === 'rediss', username, password, db, prefix, timeoutMs, liveTtlMs };
}

/** The URL with any password masked, for logs and error messages. */
export function redactRedisUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/[^:@/]*:)[^@/]*@/, '$1***@');
}
