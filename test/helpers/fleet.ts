/**
 * Gateway nodes in fleet mode for tests: each a real `moor serve` (primary + workers) with
 * its own --node.id and ports, all on one Redis (or Redis Cluster) URL.
 */
import { type Gateway, startGateway } from './gateway';

export function fleetArgs(nodeId: string, redisUrl: string): string[] {
  return [`--node.id=${nodeId}`, '--store.kind=redis', `--store.redis_url=${redisUrl}`];
}

/** Starts the nodes in parallel; `workers[i]` per node (default 1). */
export async function startNodes(redisUrl: string, ids: string[], workers: number[] = []): Promise<Gateway[]> {
  const started = await Promise.allSettled(ids.map((id, i) => startGateway(fleetArgs(id, redisUrl), { workers: workers[i] ?? 1 })));
  const ok = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await Promise.all(ok.map((g) => g.stop()));
    throw (failed as PromiseRejectedResult).reason;
  }
  return ok;
}

/** A crash: SIGKILL every worker of the node, then its primary. */
export async function killNode(gw: Gateway): Promise<void> {
  for (const pid of gw.workerPids().values()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await gw.stop('SIGKILL');
}

export async function eventually(what: string, ms: number, probe: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
