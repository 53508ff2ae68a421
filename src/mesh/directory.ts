/**
 * This worker's shard of the presence directory: device id → (worker, session sid)
 * for the devices whose hash(device_id) lands here. Packed into one number per device
 * to keep the per-connection cost down. Holding workers register and unregister;
 * a registration that displaces another session yields the one to kick (REPLACED).
 */
const SID_SPACE = 2 ** 40;

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
    const packed = worker * SID_SPACE + sid;
    const prev = this.entries.get(deviceId);
    this.entries.set(deviceId, packed);
    return prev !== undefined && prev !== packed ? unpack(prev) : null;
  }

  /** Removes the entry only if it still names this session (a newer one may have replaced it). */
  remove(deviceId: string, worker: number, sid: number): void {
    if (this.entries.get(deviceId) === worker * SID_SPACE + sid) this.entries.delete(deviceId);
  }

  get(deviceId: string): Location | null {
    const p = this.entries.get(deviceId);
    return p === undefined ? null : unpack(p);
  }

  /** A worker died: its sessions are gone. */
  dropWorker(worker: number): number {
    let n = 0;
    for (const [d, p] of this.entries) {
      if (Math.floor(p / SID_SPACE) === worker) {
        this.entries.delete(d);
        n++;
      }
    }
    return n;
  }
}

function unpack(p: number): Location {
  const worker = Math.floor(p / SID_SPACE);
  return { worker, sid: p - worker * SID_SPACE };
}
