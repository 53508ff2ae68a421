/**
 * Key and channel names of fleet mode (docs/fleet.md, "Keys"), beside the store's
 * (src/store/redis-keys.ts) under the same prefix. A device's presence key carries the
 * device's hash tag, so it sits in the slot of its inbox; everything of one worker
 * process (its device index, its liveness key, its bus channel) carries the worker's
 * name as its tag, so it sits together in one slot and different workers spread over
 * a cluster's masters.
 */
import { deviceTag } from '../store/redis-keys';
import type { Owner, WorkerAddress } from './presence';
import { workerName } from './presence';

export class FleetKeys {
  constructor(readonly prefix: string) {}

  /** string: the owner of the device's session (`node/worker/epoch/sid`), no TTL. */
  at(deviceId: string): string {
    return `${this.prefix}:{${deviceTag(deviceId)}}:at`;
  }

  /** set: the devices a worker process registered (what a janitor cleans after it died). */
  index(name: string): string {
    return `${this.prefix}:pw:{${name}}`;
  }

  /** set: devices whose durable push found the worker's channel without a subscriber (it replays them). */
  missed(name: string): string {
    return `${this.prefix}:missed:{${name}}`;
  }

  /** string with a TTL: present while the worker process is alive. */
  live(name: string): string {
    return `${this.prefix}:live:{${name}}`;
  }

  /** hash: worker name → last refresh (ms); how janitors find workers that died. */
  workers(): string {
    return `${this.prefix}:workers`;
  }

  /** string with a TTL: which worker runs the fleet-wide janitor pass now. */
  janitor(): string {
    return `${this.prefix}:janitor`;
  }

  /** Sharded pub/sub channel of one worker process. */
  channel(w: WorkerAddress): string {
    return `${this.prefix}:bus:{${workerName(w)}}`;
  }

  /** Sharded pub/sub channel every worker listens on (topic and broadcast fan-out). */
  all(): string {
    return `${this.prefix}:bus:all`;
  }
}

/** `node/worker/epoch/sid`: node ids hold no `/` (config validates them), epochs neither. */
export function encodeOwner(o: Owner): string {
  return `${workerName(o)}/${o.sid}`;
}

export function decodeOwner(v: string | null): Owner | null {
  if (v === null) return null;
  const parts = v.split('/');
  if (parts.length !== 4) return null;
  const worker = Number(parts[1]);
  const sid = Number(parts[3]);
  if (!Number.isSafeInteger(worker) || !Number.isSafeInteger(sid)) return null;
  return { node: parts[0], worker, epoch: parts[2], sid };
}

/** `node/worker/epoch` → its parts (a janitor reads names from the workers hash). */
export function parseWorkerName(name: string): WorkerAddress | null {
  const parts = name.split('/');
  if (parts.length !== 3 || !/^\d+$/.test(parts[1])) return null;
  return { node: parts[0], worker: Number(parts[1]), epoch: parts[2] };
}

/** Deletes the presence key only where it still names this session. */
export const UNREGISTER_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** Deletes the presence key where it names any session of the worker `ARGV[1]` (`node/worker/epoch/`). */
export const CLEAN_LUA = `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * Registers the session only where the device has none or this one: 1 = written now,
 * 0 = was already this session, otherwise the owner that keeps it (the caller's loses).
 */
export const CLAIM_LUA = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return 0 end
if not v then redis.call('SET', KEYS[1], ARGV[1]) return 1 end
return v`;
