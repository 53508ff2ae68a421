/**
 * The Redis presence engine (fleet mode, docs/fleet.md). Per device one string,
 * `{<device tag>}:at` = `node/worker/epoch/sid`, with no TTL: registering is one
 * `SET ... GET` (the previous owner comes back atomically, so exactly one of two
 * racing registrations wins and the other learns whom to KICK), unregistering is a
 * compare-and-delete script, a lookup is one GET.
 *
 * Liveness is per worker process, not per device: one key `live:{worker}` with a TTL
 * (`live_ttl_ms`), renewed every third of it. Renewing costs 2 commands per worker per
 * period however many devices it holds; per-device TTLs would cost one PEXPIRE per
 * device per period (docs/fleet.md has the arithmetic). A dead worker's entries stay
 * until a janitor removes them through the worker's index set; until then its bus
 * channel has no subscriber, so pushes to its devices find nobody and stay in the inbox.
 */
import { RedisUnavailableError } from '../store/redis';
import { connectWithin, createClient, type RedisClient } from '../store/redis-client';
import type { RedisTarget } from '../store/redis-url';
import { type Owner, type Presence, type PresenceEntry, sameOwner, type WorkerAddress, workerName } from './presence';
import { CLAIM_LUA, CLEAN_LUA, decodeOwner, encodeOwner, FleetKeys, parseWorkerName, UNREGISTER_LUA } from './redis-keys';

interface Scripts {
  moorPresenceUnregister(key: string, value: string): Promise<number>;
  moorPresenceClean(key: string, prefix: string): Promise<number>;
  moorPresenceClaim(key: string, value: string): Promise<number | string>;
}

/** Devices read from a dead worker's index per round trip. */
const CLEAN_PAGE = 1000;

export interface CleanResult {
  workers: string[];
  entries: number;
}

export class RedisPresence implements Presence {
  readonly kind = 'redis';
  readonly keys: FleetKeys;
  private readonly selfName: string;
  private readonly scripts: Scripts;
  private refreshed = false;
  private closed = false;
  private lastError = '';

  constructor(
    /** Shared with the bus, which publishes on it. */
    readonly client: RedisClient,
    prefix: string,
    readonly self: WorkerAddress,
    readonly liveTtlMs: number,
    /** false: the client is borrowed (the store's) and stays open on close. */
    private readonly owned = true,
  ) {
    this.keys = new FleetKeys(prefix);
    this.selfName = workerName(self);
    const remember = (err: Error) => {
      this.lastError = err.message;
    };
    client.on('error', remember);
    client.on('node error', remember);
    client.defineCommand('moorPresenceUnregister', { numberOfKeys: 1, lua: UNREGISTER_LUA });
    client.defineCommand('moorPresenceClean', { numberOfKeys: 1, lua: CLEAN_LUA });
    client.defineCommand('moorPresenceClaim', { numberOfKeys: 1, lua: CLAIM_LUA });
    this.scripts = client as unknown as Scripts;
  }

  /** Connects its own client to the store's Redis (the store has checked the server already). */
  static async open(target: RedisTarget, self: WorkerAddress): Promise<RedisPresence> {
    const client = createClient(target, { name: 'moor-presence' });
    const presence = new RedisPresence(client, target.prefix, self, target.liveTtlMs);
    try {
      await connectWithin(client, target.timeoutMs);
    } catch (err) {
      client.disconnect();
      throw presence.unavailable('open', err);
    }
    return presence;
  }

  register(entries: readonly PresenceEntry[]): Promise<Array<Owner | null>> {
    return this.run('register', async () => {
      // The index first: it must list every device a janitor may have to clean.
      const indexed = this.index(entries, 'sadd');
      const prev = entries.map(({ deviceId, owner }) => this.client.set(this.keys.at(deviceId), encodeOwner(owner), 'GET'));
      const [values] = await Promise.all([Promise.all(prev), indexed]);
      return values.map((v, i) => {
        const o = decodeOwner(v);
        return o && !sameOwner(o, entries[i].owner) ? o : null;
      });
    });
  }

  claim(entries: readonly PresenceEntry[]): Promise<Array<Owner | boolean>> {
    return this.run('claim', async () => {
      const indexed = this.index(entries, 'sadd');
      const claims = entries.map(({ deviceId, owner }) => this.scripts.moorPresenceClaim(this.keys.at(deviceId), encodeOwner(owner)));
      const [answers] = await Promise.all([Promise.all(claims), indexed]);
      return answers.map((a) => (a === 1 ? true : a === 0 ? false : (decodeOwner(String(a)) ?? false)));
    });
  }

  unregister(entries: readonly PresenceEntry[]): Promise<void> {
    return this.run('unregister', async () => {
      const dels = entries.map(({ deviceId, owner }) => this.scripts.moorPresenceUnregister(this.keys.at(deviceId), encodeOwner(owner)));
      await Promise.all([Promise.all(dels), this.index(entries, 'srem')]);
    });
  }

  lookup(deviceIds: readonly string[]): Promise<Array<Owner | null>> {
    return this.run('lookup', async () => {
      const values = await Promise.all(deviceIds.map((d) => this.client.get(this.keys.at(d))));
      return values.map(decodeOwner);
    });
  }

  /**
   * Renews this worker's liveness key and its line in the workers hash. Resolves true when
   * the key had expired or vanished since the last renewal: a janitor may have removed
   * this worker's entries, so the caller claims its sessions again.
   */
  refresh(): Promise<boolean> {
    return this.run('refresh', async () => {
      const [prev] = await Promise.all([
        this.client.set(this.keys.live(this.selfName), '1', 'PX', this.liveTtlMs, 'GET'),
        this.client.hset(this.keys.workers(), this.selfName, String(Date.now())),
      ]);
      const lost = prev === null && this.refreshed;
      this.refreshed = true;
      return lost;
    });
  }

  /**
   * A durable push for these devices found `w`'s bus channel without a subscriber: if `w`
   * is alive (its subscription was being restored), it replays them (`takeMissed`); if it
   * died, a janitor drops the note with the rest of it.
   */
  noteMissed(w: WorkerAddress, deviceIds: readonly string[]): Promise<void> {
    return this.run('noteMissed', async () => {
      await this.client.sadd(this.keys.missed(workerName(w)), ...deviceIds);
    });
  }

  /** Devices of this worker whose durable pushes were not delivered live (up to `max`, removed). */
  takeMissed(max: number): Promise<string[]> {
    return this.run('takeMissed', async () => (await this.client.spop(this.keys.missed(this.selfName), max)) as string[]);
  }

  /** Whether the worker process named in `w` is alive (its liveness key exists). */
  alive(w: WorkerAddress): Promise<boolean> {
    return this.run('alive', async () => (await this.client.exists(this.keys.live(workerName(w)))) === 1);
  }

  /**
   * Fleet-wide janitor pass: removes the entries of workers whose liveness key expired.
   * At most one worker of the fleet runs it per `live_ttl_ms` (a lease); others return
   * at once. Two passes on one dead worker only repeat work (the clean script is exact).
   */
  sweepDead(): Promise<CleanResult> {
    return this.run('sweepDead', async () => {
      const lease = await this.client.set(this.keys.janitor(), this.selfName, 'PX', this.liveTtlMs, 'NX');
      if (lease === null) return { workers: [], entries: 0 };
      const names = Object.keys(await this.client.hgetall(this.keys.workers())).filter((n) => n !== this.selfName);
      const live = await Promise.all(names.map((n) => this.client.exists(this.keys.live(n))));
      return this.cleanAll(names.filter((_, i) => live[i] === 0));
    });
  }

  /** Removes the entries of the listed workers' processes now, alive or not (a restarted node's older boots). */
  cleanWorkers(which: (w: WorkerAddress) => boolean): Promise<CleanResult> {
    return this.run('cleanWorkers', async () => {
      const names = Object.keys(await this.client.hgetall(this.keys.workers())).filter((n) => {
        const w = parseWorkerName(n);
        return n !== this.selfName && w !== null && which(w);
      });
      return this.cleanAll(names);
    });
  }

  /** Removes this worker's own remaining entries and its liveness (a clean exit). */
  leave(): Promise<CleanResult> {
    return this.run('leave', () => this.cleanAll([this.selfName]));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.owned) return;
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }

  // ---- helpers ------------------------------------------------------------------------

  /** One SADD/SREM per worker named in `entries` (usually just this one). */
  private index(entries: readonly PresenceEntry[], op: 'sadd' | 'srem'): Promise<unknown> {
    const byWorker = new Map<string, string[]>();
    for (const { deviceId, owner } of entries) {
      const name = workerName(owner);
      let ids = byWorker.get(name);
      if (!ids) byWorker.set(name, (ids = []));
      ids.push(deviceId);
    }
    return Promise.all([...byWorker].map(([name, ids]) => this.client[op](this.keys.index(name), ...ids)));
  }

  private async cleanAll(names: string[]): Promise<CleanResult> {
    let entries = 0;
    for (const name of names) entries += await this.cleanWorker(name);
    return { workers: names, entries };
  }

  /** Walks the worker's index, deletes the presence keys that still name it, then its own keys. */
  private async cleanWorker(name: string): Promise<number> {
    const index = this.keys.index(name);
    const mine = `${name}/`;
    let removed = 0;
    let cursor = '0';
    do {
      const [next, ids] = await this.client.sscan(index, cursor, 'COUNT', CLEAN_PAGE);
      cursor = next;
      const n = await Promise.all(ids.map((d) => this.scripts.moorPresenceClean(this.keys.at(d), mine)));
      for (const k of n) removed += k;
    } while (cursor !== '0');
    const k = this.keys;
    await Promise.all([this.client.unlink(index), this.client.del(k.live(name), k.missed(name)), this.client.hdel(k.workers(), name)]);
    return removed;
  }

  private async run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new Error('presence is closed');
    try {
      return await fn();
    } catch (err) {
      throw this.unavailable(op, err);
    }
  }

  private unavailable(op: string, err: unknown): RedisUnavailableError {
    return RedisUnavailableError.of('presence', op, err, this.lastError);
  }
}
