/**
 * Connecting the Redis engine: ioredis options chosen so an outage answers fast and a
 * write is never silently sent twice, plus the server checks made once at open.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { RedisTarget } from './redis-url';

export type RedisClient = Redis | Cluster;

/** The server cannot hold the store safely (eviction on, cluster mode mismatch). */
export class RedisSetupError extends Error {
  readonly code = 'STORE_CONFIG' as const;

  constructor(message: string) {
    super(message);
    this.name = 'RedisSetupError';
  }
}

/** Reconnect quickly once Redis is back: 100 ms doubling to 1 s, with jitter. */
function backoff(times: number): number {
  return Math.min(100 * 2 ** Math.min(times - 1, 4), 1000) + Math.floor(Math.random() * 100);
}

/** `name`: the CLIENT SETNAME shown by CLIENT LIST; `subscriber`: a Cluster client that may SSUBSCRIBE (one connection per master). */
export function createClient(t: RedisTarget, opts: { name?: string; subscriber?: boolean } = {}): RedisClient {
  const common: RedisOptions = {
    username: t.username,
    password: t.password,
    tls: t.tls ? {} : undefined,
    connectTimeout: t.timeoutMs,
    // A command Redis does not answer in time fails (a half-open TCP connection would
    // otherwise hold every caller until the kernel gives up, minutes later).
    commandTimeout: t.timeoutMs,
    // A command in flight when the connection drops fails at once instead of waiting
    // for a reconnect, and is never re-sent: Redis may have run it already, and a
    // re-sent append would store the push twice under two seqs.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // RESP2: the same reply shapes from every server version and proxy.
    protocol: 2,
    connectionName: opts.name ?? 'moor-store',
  };
  if (t.cluster) {
    return new Cluster(t.nodes, {
      lazyConnect: true,
      // No queueing while a node is unreachable: callers get STORE_UNAVAILABLE now.
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      // Reads must see the newest seq: never from replicas.
      scaleReads: 'master',
      clusterRetryStrategy: backoff,
      slotsRefreshTimeout: t.timeoutMs,
      shardedSubscribers: opts.subscriber === true,
      redisOptions: common,
    });
  }
  const [node] = t.nodes;
  return new Redis({
    ...common,
    host: node.host,
    port: node.port,
    db: t.db,
    lazyConnect: true,
    enableOfflineQueue: false,
    // Commands issued in one tick leave in one write: a 1,000-device append is one syscall.
    enableAutoPipelining: true,
    retryStrategy: backoff,
  });
}

/** Connects, bounded by timeoutMs; rejects with the connection error (the caller disconnects). */
export async function connectWithin(client: RedisClient, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([client.connect(), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The instances that own data: the masters of a cluster, or the one server. */
export function masters(client: RedisClient): Redis[] {
  return client instanceof Cluster ? client.nodes('master') : [client];
}

function infoField(info: string, name: string): string | undefined {
  const m = new RegExp(`^${name}:(.*)$`, 'm').exec(info);
  return m ? m[1].trim() : undefined;
}

/**
 * Refuses servers that would lose data behind our back. Eviction could drop a seq
 * counter (seqs would repeat and devices would discard new pushes as duplicates); a
 * cluster-mode server reached as a single one answers MOVED for most devices.
 * Servers that deny INFO (ACLs) are not checked.
 */
export async function checkServers(client: RedisClient, target: RedisTarget): Promise<void> {
  const nodes = masters(client);
  if (nodes.length === 0) throw new RedisSetupError('the Redis Cluster reports no masters');
  for (const node of nodes) {
    let info: string;
    try {
      info = await node.info();
    } catch (err) {
      if (/NOPERM/.test((err as Error).message)) continue;
      throw err;
    }
    const where = `${node.options.host}:${node.options.port}`;
    const policy = infoField(info, 'maxmemory_policy');
    if (policy !== undefined && policy !== 'noeviction') {
      throw new RedisSetupError(
        `Redis ${where} has maxmemory-policy ${policy}; the store needs noeviction (an evicted seq counter makes seqs repeat)`,
      );
    }
    if (!target.cluster && infoField(info, 'cluster_enabled') === '1') {
      throw new RedisSetupError(`Redis ${where} runs in cluster mode: add ?cluster=1 to store.redis_url`);
    }
  }
}

/**
 * Why a Cluster client could not connect, when the answer is a setup mistake: ioredis
 * only says "None of startup nodes is available" when the seeds are single servers.
 */
export async function clusterSetupMistake(target: RedisTarget): Promise<RedisSetupError | null> {
  for (const node of target.nodes) {
    const probe = createClient({ ...target, cluster: false, nodes: [node] }) as Redis;
    probe.on('error', () => {});
    try {
      await connectWithin(probe, target.timeoutMs);
      if (infoField(await probe.info('cluster'), 'cluster_enabled') === '0') {
        return new RedisSetupError(
          `store.redis_url asks for Redis Cluster but ${node.host}:${node.port} is not in cluster mode (drop ?cluster=1)`,
        );
      }
    } catch {
      // Unreachable or refusing INFO: not a mistake we can name.
    } finally {
      probe.disconnect();
    }
  }
  return null;
}
