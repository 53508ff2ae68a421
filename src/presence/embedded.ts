/**
 * The embedded presence engine: the in-process directory (src/mesh/directory.ts) behind
 * the `Presence` interface. On one node every worker keeps the shard of it that
 * hash(device_id) assigns, and the mesh carries registrations and pushes to it: a push
 * costs API worker → shard → holder, lookup and forward fused in one hop (gateway.ts
 * ROUTE), so the gateway calls the shard's Directory directly on that path. This class is
 * what one shard answers, as the interface states it; the shared suite pins that both
 * engines agree.
 */
import { Directory } from '../mesh/directory';
import type { Owner, Presence, PresenceEntry } from './presence';

export class DirectoryPresence implements Presence {
  readonly kind = 'embedded';
  private readonly dir = new Directory();

  /** One node, one boot: the directory dies with the worker, so node and epoch are constants. */
  constructor(
    readonly node: string,
    readonly epoch: string,
  ) {}

  get size(): number {
    return this.dir.size;
  }

  async register(entries: readonly PresenceEntry[]): Promise<Array<Owner | null>> {
    return entries.map(({ deviceId, owner }) => {
      this.check(owner);
      const old = this.dir.add(deviceId, owner.worker, owner.sid);
      return old ? { node: this.node, epoch: this.epoch, worker: old.worker, sid: old.sid } : null;
    });
  }

  async claim(entries: readonly PresenceEntry[]): Promise<Array<Owner | boolean>> {
    return entries.map(({ deviceId, owner }) => {
      this.check(owner);
      const cur = this.dir.get(deviceId);
      if (!cur) {
        this.dir.add(deviceId, owner.worker, owner.sid);
        return true;
      }
      if (cur.worker === owner.worker && cur.sid === owner.sid) return false;
      return { node: this.node, epoch: this.epoch, worker: cur.worker, sid: cur.sid };
    });
  }

  async unregister(entries: readonly PresenceEntry[]): Promise<void> {
    for (const { deviceId, owner } of entries) {
      this.check(owner);
      this.dir.remove(deviceId, owner.worker, owner.sid);
    }
  }

  async lookup(deviceIds: readonly string[]): Promise<Array<Owner | null>> {
    return deviceIds.map((d) => {
      const loc = this.dir.get(d);
      return loc ? { node: this.node, epoch: this.epoch, worker: loc.worker, sid: loc.sid } : null;
    });
  }

  /** Nothing expires in process: a dead worker's entries go with `dropWorker`. */
  async refresh(): Promise<boolean> {
    return false;
  }

  /** A worker of this node died: its sessions are gone (gateway.ts peerDown). */
  dropWorker(worker: number): number {
    return this.dir.dropWorker(worker);
  }

  async close(): Promise<void> {}

  private check(o: Owner): void {
    if (o.node !== this.node || o.epoch !== this.epoch) {
      throw new RangeError(`the embedded directory holds node ${this.node} only, not ${o.node}/${o.epoch}`);
    }
  }
}
