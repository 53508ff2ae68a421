/**
 * The device's side of durable delivery (protocol.md §5): which seqs it has processed,
 * the sync key `last_seq` it reports, and what its next ACK says.
 *
 * `lastSeq` is a watermark: every seq at or below it is processed or known not to exist
 * (expired, or acknowledged before). It moves only contiguously, because the gateway
 * replays exactly what lies after it: reporting a higher seq with a hole below would lose
 * the hole for good. Seqs processed above a hole wait in `above` and go out as selective
 * ACKs. A hole that no redelivery fills (the push expired) is closed by a SYNC: pushes
 * arrive in seq order before SYNC_DONE, so the answer proves which seqs do not exist.
 */
export interface AckSpec {
  upToSeq: number;
  seqs: number[];
}

export class SeqTracker {
  private mark: number;
  private readonly above = new Set<number>();
  private selective: number[] = [];
  private changed = false;
  private counted = 0;
  /** after_seq of the SYNC in flight, or -1. */
  private syncAfter = -1;
  /** Smallest durable seq above syncAfter seen while that SYNC was in flight. */
  private syncMin = Number.POSITIVE_INFINITY;

  constructor(lastSeq = 0) {
    this.mark = lastSeq;
  }

  get lastSeq(): number {
    return this.mark;
  }

  /** Some seq above the watermark is processed while one below it is not. */
  get hasGap(): boolean {
    return this.above.size > 0;
  }

  /** Something changed since the last takeAck(). */
  get dirty(): boolean {
    return this.changed;
  }

  /** Receipts since the last takeAck(), for batching. */
  get unacked(): number {
    return this.counted;
  }

  has(seq: number): boolean {
    return seq <= this.mark || this.above.has(seq);
  }

  /** Every durable PUSH that arrives, processed or not: evidence for an open SYNC. */
  observe(seq: number): void {
    if (this.syncAfter >= 0 && seq > this.syncAfter && seq < this.syncMin) this.syncMin = seq;
  }

  /** Record seq as processed (or re-received); the next ACK covers it. Returns false for a duplicate. */
  process(seq: number): boolean {
    this.changed = true;
    this.counted++;
    if (this.has(seq)) {
      // The gateway re-sent it, so our ACK went missing: say it again.
      if (seq > this.mark) this.selective.push(seq);
      return false;
    }
    if (seq === this.mark + 1) {
      this.mark = seq;
      this.absorb();
    } else {
      this.above.add(seq);
      this.selective.push(seq);
    }
    return true;
  }

  /** The ACK to send now, or null if nothing changed since the last one. */
  takeAck(): AckSpec | null {
    if (!this.changed) return null;
    const seqs = [...new Set(this.selective.filter((s) => s > this.mark))].sort((a, b) => a - b);
    this.selective = [];
    this.changed = false;
    this.counted = 0;
    return { upToSeq: this.mark, seqs };
  }

  openSync(afterSeq: number): void {
    this.syncAfter = afterSeq;
    this.syncMin = Number.POSITIVE_INFINITY;
  }

  /**
   * SYNC_DONE for the open SYNC. Complete (more = false): every seq up to head_seq that
   * exists was just sent. Partial: the page held the lowest seqs after after_seq, so
   * nothing exists between after_seq and the smallest one seen. Only a SYNC starting at
   * or below the watermark proves anything about the watermark's next hole.
   */
  closeSync(headSeq: number, more: boolean): void {
    const after = this.syncAfter;
    const min = this.syncMin;
    this.cancelSync();
    if (after < 0 || after > this.mark) return;
    const through = more ? min - 1 : headSeq;
    if (!Number.isFinite(through) || through <= this.mark) return;
    this.mark = through;
    for (const s of this.above) if (s <= through) this.above.delete(s);
    this.absorb();
    this.changed = true;
  }

  cancelSync(): void {
    this.syncAfter = -1;
    this.syncMin = Number.POSITIVE_INFINITY;
  }

  private absorb(): void {
    while (this.above.delete(this.mark + 1)) this.mark++;
  }
}
