/**
 * The Redis side of `npm run bench -- fleet` without HTTP and gateways in the way: what
 * Redis spends per push when commands arrive pipelined, as they do from busy gateways
 * (1M pushes/s is thousands of pushes per gateway per second), and what a stored push
 * costs in memory. Same engine classes as the gateway: RedisStore, RedisPresence, RedisBus.
 */
import type { Redis } from 'ioredis';
import { RedisBus } from '../../src/bus/redis';
import type { WorkerAddress } from '../../src/presence/presence';
import { RedisPresence } from '../../src/presence/redis';
import { RedisStore } from '../../src/store/redis';
import { deviceTag, Keys } from '../../src/store/redis-keys';
import { parseRedisUrl } from '../../src/store/redis-url';

const body = (bytes: number) => Buffer.alloc(bytes, 0x61);

/**
 * `n` durable pushes to devices held by one subscribed worker, `concurrency` in flight:
 * append, presence lookup, SPUBLISH to the holder, ACK (what the holder does when the
 * device acknowledges). `measured` runs once the devices are registered, before the first
 * push (the caller snapshots Redis there). Resolves once every message arrived.
 */
export async function pushesAtLoad(
  url: string,
  opts: { n: number; concurrency: number; devices: number; bodyBytes: number },
  measured: () => Promise<void>,
): Promise<{ ms: number; received: number }> {
  const { n, concurrency, devices, bodyBytes } = opts;
  const target = parseRedisUrl(url);
  const store = await RedisStore.open(url);
  const self: WorkerAddress = { node: 'direct', worker: 0, epoch: 'e1' };
  const presence = new RedisPresence(store.connection, target.prefix, self, target.liveTtlMs, false);
  const bus = await RedisBus.open(target, self, store.connection);
  let received = 0;
  bus.onMessage(() => received++);
  try {
    const ids = Array.from({ length: devices }, (_, i) => `direct-${i}`);
    for (let i = 0; i < ids.length; i += 1000) {
      await presence.register(ids.slice(i, i + 1000).map((deviceId, j) => ({ deviceId, owner: { ...self, sid: i + j + 1 } })));
    }
    const payload = body(bodyBytes);
    let next = 0;
    await measured();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          const d = ids[next++ % ids.length];
          const now = Date.now();
          const [seq] = await store.append([{ deviceId: d, push: { id: 'x', topic: '', body: payload, priority: 0, expiresAtMs: 0, sentAtMs: now } }]);
          const [owner] = await presence.lookup([d]);
          if (owner) await bus.sendTo(owner, payload);
          await store.ack(d, seq, []);
        }
      }),
    );
    const deadline = Date.now() + 10_000;
    while (received < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return { ms: performance.now() - t0, received };
  } finally {
    await bus.close();
    await presence.close();
    await store.close();
  }
}

/** Memory of inboxes holding `perDevice` pushes of `bodyBytes` for `devices` offline devices (MEMORY USAGE). */
export async function inboxBytes(url: string, raw: Redis, devices: number, perDevice: number, bodyBytes: number): Promise<{ per_push: number; head_per_device: number }> {
  const store = await RedisStore.open(url);
  const keys = new Keys(parseRedisUrl(url).prefix);
  try {
    const ids = Array.from({ length: devices }, (_, i) => `offline-${i}`);
    const payload = body(bodyBytes);
    for (let k = 0; k < perDevice; k++) {
      await store.append(ids.map((deviceId) => ({ deviceId, push: { id: 'p'.repeat(36), topic: '', body: payload, priority: 0, expiresAtMs: 0, sentAtMs: Date.now() } })));
    }
    const usage = async (key: string) => Number((await raw.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0);
    let pushes = 0;
    let heads = 0;
    for (const d of ids) {
      const [head, inbox, bodies] = keys.device(deviceTag(d));
      pushes += (await usage(inbox)) + (await usage(bodies));
      heads += await usage(head);
    }
    return { per_push: Math.round(pushes / (devices * perDevice)), head_per_device: Math.round(heads / devices) };
  } finally {
    await store.close();
  }
}
