/**
 * Training samples: one outgoing push payload in `sample_one_in` is copied into a
 * bounded ring (newest kept), which the worker writes to the store now and then
 * (compression/samples/<node>.<worker>, see docs.ts). Memory and store bytes are both
 * bounded by `sample_bytes`. Payloads are never logged.
 *
 * Pushes are offered once each, by the worker whose API accepted them (a push to many
 * devices is one offer).
 */

/** A dictionary is for small messages: bigger payloads teach it little and cost a lot. */
export const MAX_SAMPLE_BYTES = 16 * 1024;
/** Each sample in the ring: its length (u32 LE), then its bytes: the stored format too. */
const LEN_BYTES = 4;

/**
 * The samples live in one buffer of `sample_bytes`, as a circular log of
 * length-prefixed records (the oldest overwritten first), so the memory is exactly
 * the configured bound. A Buffer per sample cost ~570 B of objects and malloc on top
 * of its bytes, and a small one copied with Buffer.from kept a whole 8 KiB pool slab
 * alive: 40 samples of 60 B held 330 KB.
 */
export class SampleRing {
  private buf: Buffer | null = null;
  /** Offset of the oldest record. */
  private head = 0;
  /** Offset where the next record goes. */
  private tail = 0;
  /** While the log has wrapped: where the records before offset 0 end (else -1). */
  private wrapAt = -1;
  private count = 0;
  private counter = 0;
  /** Changed since the last serialize(). */
  dirty = false;

  constructor(
    private readonly maxBytes: number,
    /** Read on every offer, so a reload applies at once. */
    private readonly oneIn: () => number,
  ) {}

  get size(): number {
    return this.count;
  }

  /**
   * One push the API accepted: kept with probability 1 / oneIn. `payload` is only built for
   * the pushes kept (the caller encodes it); one over 16 KiB is skipped, its turn spent.
   */
  offer(payload: () => Uint8Array): void {
    const n = this.oneIn();
    if (n <= 0 || ++this.counter < n) return;
    this.counter = 0;
    const p = payload();
    if (p.length > 0 && p.length <= MAX_SAMPLE_BYTES) this.add(p);
  }

  /** Copies `sample` in as the newest record, dropping the oldest ones it overwrites. */
  add(sample: Uint8Array): void {
    const r = LEN_BYTES + sample.length;
    if (sample.length === 0 || r > this.maxBytes) return;
    this.buf ??= Buffer.allocUnsafeSlow(this.maxBytes);
    for (;;) {
      if (this.count === 0) {
        this.head = 0;
        this.tail = 0;
        this.wrapAt = -1;
      }
      if (this.wrapAt < 0) {
        // Records in [head, tail).
        if (this.tail + r <= this.maxBytes) break;
        this.wrapAt = this.tail;
        this.tail = 0;
      }
      // Records in [head, wrapAt) and [0, tail).
      if (this.tail + r <= this.head) break;
      this.dropOldest();
    }
    this.buf.writeUInt32LE(sample.length, this.tail);
    this.buf.set(sample, this.tail + LEN_BYTES);
    this.tail += r;
    this.count++;
    this.dirty = true;
  }

  private dropOldest(): void {
    const buf = this.buf!;
    this.head += LEN_BYTES + buf.readUInt32LE(this.head);
    this.count--;
    if (this.wrapAt >= 0 && this.head >= this.wrapAt) {
      this.head = 0;
      this.wrapAt = -1;
    }
  }

  /** The ring's records, oldest first, in the stored format (two views at most). */
  private regions(): Buffer[] {
    const buf = this.buf;
    if (buf === null || this.count === 0) return [];
    return this.wrapAt < 0 ? [buf.subarray(this.head, this.tail)] : [buf.subarray(this.head, this.wrapAt), buf.subarray(0, this.tail)];
  }

  /** Copies of the samples, oldest first. */
  samples(): Buffer[] {
    return decodeSamples(this.serialize(false));
  }

  /** The ring as stored: each sample as a u32 LE length, then its bytes (a copy). */
  serialize(clean = true): Buffer {
    if (clean) this.dirty = false;
    return Buffer.concat(this.regions());
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
