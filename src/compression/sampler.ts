/**
 * Training samples: one outgoing push payload in `sample_one_in` is copied into a
 * bounded ring (newest kept), which the worker writes to the store now and then
 * (compression/samples/<node>.<worker>, see docs.ts). Memory and store bytes are both
 * bounded by `sample_bytes`. Payloads are never logged.
 *
 * A push going to many devices is offered once per device, differing only in its seq:
 * offers are de-duplicated by push id so one broadcast cannot fill the ring.
 */

/** Bytes counted per sample on top of its payload (the Buffer object and array slot). */
const ENTRY_OVERHEAD = 64;
/** A dictionary is for small messages: bigger payloads teach it little and cost a lot. */
export const MAX_SAMPLE_BYTES = 16 * 1024;
const RECENT_IDS = 64;

export class SampleRing {
  private items: Buffer[] = [];
  private head = 0;
  private bytes = 0;
  private counter = 0;
  private lastId = '';
  private readonly recent: string[] = [];
  private readonly recentSet = new Set<string>();
  /** Changed since the last serialize(). */
  dirty = false;

  constructor(
    private readonly maxBytes: number,
    /** Read on every offer, so a reload applies at once. */
    private readonly oneIn: () => number,
  ) {}

  get size(): number {
    return this.items.length - this.head;
  }

  /** An outgoing payload of push `id`: kept with probability 1 / oneIn, once per id. */
  offer(id: string, payload: Uint8Array): void {
    const n = this.oneIn();
    if (n <= 0 || payload.length === 0 || payload.length > MAX_SAMPLE_BYTES) return;
    // A push to many devices is offered once per device, one after the other.
    if (id !== '' && (id === this.lastId || this.recentSet.has(id))) return;
    this.lastId = id;
    if (++this.counter < n) return;
    this.counter = 0;
    if (id !== '') {
      this.recent.push(id);
      this.recentSet.add(id);
      if (this.recent.length > RECENT_IDS) this.recentSet.delete(this.recent.shift()!);
    }
    this.add(Buffer.from(payload));
  }

  add(sample: Buffer): void {
    this.items.push(sample);
    this.bytes += sample.length + ENTRY_OVERHEAD;
    while (this.bytes > this.maxBytes && this.head < this.items.length) {
      this.bytes -= this.items[this.head].length + ENTRY_OVERHEAD;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    this.dirty = true;
  }

  samples(): Buffer[] {
    return this.items.slice(this.head);
  }

  /** The ring as stored: each sample as a u32 LE length, then its bytes. */
  serialize(): Buffer {
    this.dirty = false;
    return encodeSamples(this.samples());
  }

  /** Samples from a stored ring (e.g. this worker's, before a restart), oldest first. */
  load(stored: Buffer | null): void {
    for (const s of decodeSamples(stored)) this.add(s);
    this.dirty = false;
  }
}

export function encodeSamples(samples: readonly Uint8Array[]): Buffer {
  let total = 0;
  for (const s of samples) total += 4 + s.length;
  const out = Buffer.allocUnsafe(total);
  let p = 0;
  for (const s of samples) {
    out.writeUInt32LE(s.length, p);
    out.set(s, p + 4);
    p += 4 + s.length;
  }
  return out;
}

/** Stops at the first malformed entry (a torn or foreign value gives what precedes it). */
export function decodeSamples(stored: Buffer | null): Buffer[] {
  const out: Buffer[] = [];
  if (stored === null) return out;
  let p = 0;
  while (p + 4 <= stored.length) {
    const n = stored.readUInt32LE(p);
    if (n === 0 || n > MAX_SAMPLE_BYTES || p + 4 + n > stored.length) break;
    out.push(stored.subarray(p + 4, p + 4 + n));
    p += 4 + n;
  }
  return out;
}
