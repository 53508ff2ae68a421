/**
 * Real Redis servers for the Redis store tests: `redis-server` on loopback, on a free
 * port, in a temp dir, killed by `stop()`. Nothing is mocked; when `redis-server` is not
 * installed the tests fail, saying how to install it (CI does, in .ci/run).
 */
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { freePort as freePairedPort } from './ports';
import { until } from './until';

const run = promisify(execFile);

export class RedisNotInstalledError extends Error {
  constructor(binary: string) {
    super(
      `${binary} is not installed: these tests need a real Redis (Debian: apt-get install -y redis-server; .ci/run installs it)`,
    );
    this.name = 'RedisNotInstalledError';
  }
}

function requireBinary(binary: string): void {
  const r = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  if (r.error) throw new RedisNotInstalledError(binary);
}

/** A free loopback port whose cluster bus port (port + 10000) is free too. */
const freePort = (): Promise<number> => freePairedPort([10_000]);

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5000 });
  return stdout;
}

/** `probe` answered true within `ms`; a probe that throws (the server still starting) counts as false. */
function ready(what: string, ms: number, probe: () => Promise<boolean>): Promise<void> {
  return until(() => probe().catch(() => false), ms, what, 50);
}

export interface RedisServer {
  port: number;
  dir: string;
  /** store.redis_url for this server, with its own key prefix. */
  url(prefix: string, params?: string): string;
  /** Kills the process (SIGKILL, like a crash) and waits for it to go. */
  kill(): Promise<void>;
  /** Starts it again on the same port and dir (an AOF there is loaded). */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: the server keeps its sockets open but answers nothing. */
  freeze(): void;
  thaw(): void;
  /** Kills it and removes its dir. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Extra redis-server arguments, e.g. ['--appendonly', 'yes']. */
  args?: string[];
  port?: number;
  dir?: string;
}

export async function startRedis(opts: StartOptions = {}): Promise<RedisServer> {
  requireBinary('redis-server');
  requireBinary('redis-cli');
  if (opts.port !== undefined) return startOn(opts.port, opts);
  // The free port can be taken between the probe and the start: try another one.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOn(await freePort(), opts);
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

async function startOn(port: number, opts: StartOptions): Promise<RedisServer> {
  const dir = opts.dir ?? (await mkdtemp(path.join(tmpdir(), 'moor-redis-')));
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--appendonly', 'no',
    ...(opts.args ?? []),
  ];
  let child: ChildProcess | null = null;
  let log = '';

  const launch = async (): Promise<void> => {
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    log = '';
    const keep = (b: Buffer) => {
      log = (log + b.toString()).slice(-4000);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    // A server that exits at once (port taken, bad flag) fails the start at once.
    const exited = new Promise<never>((_, reject) => {
      proc.once('exit', (code, signal) => reject(new Error(`exited with ${code ?? signal}`)));
    });
    exited.catch(() => {});
    try {
      await Promise.race([
        ready(`redis-server on port ${port}`, 10_000, async () => (await cli(port, 'ping')).trim() === 'PONG'),
        exited,
      ]);
    } catch (err) {
      proc.kill('SIGKILL');
      throw new Error(`redis-server ${args.join(' ')} did not start (${(err as Error).message}):\n${log}`);
    }
  };

  const kill = async (): Promise<void> => {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGCONT');
    proc.kill('SIGKILL');
    await gone;
  };

  try {
    await launch();
  } catch (err) {
    if (!opts.dir) await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    dir,
    url: (prefix, params = '') => `redis://127.0.0.1:${port}/0?prefix=${prefix}${params}`,
    kill,
    restart: launch,
    freeze: () => child?.kill('SIGSTOP'),
    thaw: () => child?.kill('SIGCONT'),
    async stop() {
      await kill();
      if (!opts.dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisCluster {
  ports: number[];
  url(prefix: string): string;
  stop(): Promise<void>;
}

/** `masters` cluster-mode servers joined by `redis-cli --cluster create`, no replicas. */
export async function startCluster(masters = 3): Promise<RedisCluster> {
  const root = await mkdtemp(path.join(tmpdir(), 'moor-redis-cluster-'));
  const servers: RedisServer[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePort();
      servers.push(
        await startRedis({
          port,
          dir: root,
          args: ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '5000'],
        }),
      );
    }
    const ports = servers.map((s) => s.port);
    await run(
      'redis-cli',
      ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
      { timeout: 30_000 },
    );
    // Every node must agree the slots are covered before clients can rely on it.
    for (const port of ports) {
      await ready(`cluster_state:ok on ${port}`, 15_000, async () =>
        (await cli(port, 'cluster', 'info')).includes('cluster_state:ok'),
      );
    }
    return {
      ports,
      url: (prefix) => `redis://${ports.map((p) => `127.0.0.1:${p}`).join(',')}?prefix=${prefix}`,
      async stop() {
        await Promise.all(servers.map((s) => s.kill()));
        await rm(root, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all(servers.map((s) => s.kill()));
    await rm(root, { recursive: true, force: true });
    throw err;
  }
}
