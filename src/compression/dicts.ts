/**
 * The dictionaries one worker holds, each in a small numbered slot (1..255) so a session
 * keeps only a slot number (in Session.cx, see gateway.ts), never an object. Loaded from
 * the index in the store (docs.ts); a dictionary leaves only when the index no longer
 * lists it and no session of this worker uses it.
 */
import type { CompressionNative } from './codec';
import type { DictIndex } from './docs';

export const MAX_SLOTS = 255;

export interface DictEntry {
  id: number;
  slot: number;
  bytes: Buffer;
  /** Position in the index (higher is newer). */
  order: number;
  /** Not offered to new sessions (older than dict_keep versions, or gone from the index). */
  retired: boolean;
  /** Gone from the index: unloaded once its last session ends. */
  gone: boolean;
  /** Sessions of this worker that negotiated it. */
  sessions: number;
}

export interface DictLog {
  warn(obj: object, msg: string): void;
}

export class DictTable {
  private readonly slots: Array<DictEntry | null> = new Array(MAX_SLOTS + 1).fill(null);
  private readonly byId = new Map<number, DictEntry>();
  /** The newest active dictionary (what dict_url points devices to). */
  newest: DictEntry | null = null;
  /** Index generation last applied. */
  gen = 0;

  constructor(
    private readonly native: CompressionNative,
    private readonly level: number,
    private readonly log: DictLog,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  slot(slot: number): DictEntry | null {
    return this.slots[slot] ?? null;
  }

  get(id: number): DictEntry | null {
    return this.byId.get(id) ?? null;
  }

  /** Makes the table match `index`, reading bytes of new dictionaries with `fetch`. */
  async apply(index: DictIndex, fetch: (id: number) => Promise<Buffer | null>): Promise<void> {
    const listed = new Set<number>();
    for (let order = 0; order < index.dicts.length; order++) {
      const info = index.dicts[order];
      listed.add(info.id);
      let e = this.byId.get(info.id);
      if (!e) {
        const bytes = await fetch(info.id).catch(() => null);
        if (bytes === null) {
          this.log.warn({ dict: info.id }, 'dictionary listed in the index has no bytes in the store; skipped');
          continue;
        }
        e = this.load(info.id, bytes) ?? undefined;
        if (!e) continue;
      }
      e.order = order;
      e.retired = info.retired !== 0;
      e.gone = false;
    }
    for (const e of [...this.byId.values()]) {
      if (listed.has(e.id)) continue;
      e.gone = e.retired = true;
      if (e.sessions === 0) this.unload(e);
    }
    this.gen = index.gen;
    this.newest = null;
    for (const e of this.byId.values()) if (!e.retired && (this.newest === null || e.order > this.newest.order)) this.newest = e;
  }

  private load(id: number, bytes: Buffer): DictEntry | null {
    const slot = this.slots.indexOf(null, 1);
    if (slot < 0) {
      this.log.warn({ dict: id }, `all ${MAX_SLOTS} dictionary slots are in use; dictionary not loaded`);
      return null;
    }
    let loaded: number;
    try {
      loaded = this.native.zstdLoadDict(bytes, this.level);
    } catch (err) {
      this.log.warn({ err, dict: id }, 'dictionary could not be loaded');
      return null;
    }
    if (loaded !== id) {
      this.native.zstdUnloadDict(loaded);
      this.log.warn({ dict: id, header: loaded }, 'dictionary bytes carry another id; not loaded');
      return null;
    }
    const e: DictEntry = { id, slot, bytes, order: 0, retired: false, gone: false, sessions: 0 };
    this.slots[slot] = e;
    this.byId.set(id, e);
    return e;
  }

  private unload(e: DictEntry): void {
    this.native.zstdUnloadDict(e.id);
    this.slots[e.slot] = null;
    this.byId.delete(e.id);
    if (this.newest === e) this.newest = null;
  }

  /** The newest active dictionary among `held` (HELLO.dict_ids), or null. */
  negotiate(held: readonly number[]): DictEntry | null {
    let best: DictEntry | null = null;
    for (const id of held) {
      const e = this.byId.get(id);
      if (e && !e.retired && (best === null || e.order > best.order)) best = e;
    }
    return best;
  }

  acquire(slot: number): void {
    const e = this.slots[slot];
    if (e) e.sessions++;
  }

  release(slot: number): void {
    const e = this.slots[slot];
    if (!e) return;
    e.sessions--;
    if (e.sessions <= 0 && e.gone) this.unload(e);
  }

  /** Ids of the dictionaries sessions of this worker use. */
  inUse(): number[] {
    const ids: number[] = [];
    for (const e of this.byId.values()) if (e.sessions > 0) ids.push(e.id);
    return ids;
  }

  /** Every id held, newest first. */
  ids(): number[] {
    return [...this.byId.values()].sort((a, b) => b.order - a.order).map((e) => e.id);
  }
}
