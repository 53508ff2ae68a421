/**
 * This worker's shard of the presence directory: device id → (worker, session sid)
 * for the devices whose hash(device_id) lands here. Packed into one number per device
 * to keep the per-connection cost down. Holding workers register and unregister;
 * a registration that displaces another session yields the one to kick (REPLACED).
 *
 * The worker sits in the low bits: while a worker's session numbers stay below 2^21
 * the packed value is a small integer (a Smi) stored in the Map itself; above, V8 boxes
 * it in a 16-byte HeapNumber per entry, as it did for every entry with the worker on
 * top (docs/memory.md). Exact either way up to 2^43 sessions per worker.
 */
/** Workers a fleet node may run (config `workers`, max 1024). */
const WORKER_SPACE = 1024;

export interface Location {
  worker: number;
  sid: number;
}

export class Directory {
  private readonly entries = new Map<string, number>();

  get size(): number {
    return this.entries.size;
  }

  /** Returns the location this registration displaced, if it was another session. */
  add(deviceId: string, worker: number, sid: number): Location | null {
    const packed = pack(worker, sid);
    const prev = this.entries.get(deviceId);
    this.entries.set(deviceId, packed);
    return prev !== undefined && prev !== packed ? unpack(prev) : null;
  }

  /** Removes the entry only if it still names this session (a newer one may have replaced it). */
  remove(deviceId: string, worker: number, sid: number): void {
    if (this.entries.get(deviceId) === pack(worker, sid)) this.entries.delete(deviceId);
  }

  get(deviceId: string): Location | null {
    const p = this.entries.get(deviceId);
    return p === undefined ? null : unpack(p);
  }

  /** A worker died: its sessions are gone. */
  dropWorker(worker: number): number {
    let n = 0;
    for (const [d, p] of this.entries) {
      if (p % WORKER_SPACE === worker) {
        this.entries.delete(d);
        n++;
      }
    }
    return n;
  }
}

function pack(worker: number, sid: number): number {
  if (!(worker >= 0 && worker < WORKER_SPACE)) throw new RangeError(`directory: worker ${worker} is outside 0..${WORKER_SPACE - 1}`);
  return sid * WORKER_SPACE + worker;
}

function unpack(p: number): Location {
  const worker = p % WORKER_SPACE;
  return { worker, sid: (p - worker) / WORKER_SPACE };
}
