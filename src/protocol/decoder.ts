/**
 * The TypeScript reference frame decoder for `moor/1` (protocol.md §2).
 *
 * Pure: no I/O, no auth. `feed(chunk, out)` reports every frame found in one socket
 * read as numbers in `out` (see the layout below), pointing into `chunk`; only a
 * payload that spans reads is copied, into a spill of at most one maximum frame.
 * The native decoder (native/src/decoder.rs) has the same API and must agree with
 * this one byte for byte, error for error: test/codec-differential.test.ts.
 */
import {
  DecodeFault,
  type DecodeFaultValue,
  FLAG_CODEC_MASK,
  FLAG_RESERVED_MASK,
  MAX_FRAME_TYPE,
  MAX_HEADER_BYTES,
} from './constants';

/**
 * out[0]: frames found; out[1]: DecodeFault (0 none); out[2]: stream offset of the bad
 * frame (mod 2^32); out[3]: bytes pending after this feed (as `pending`, read without a call).
 */
export const OUT_HEADER = 4;
/** Per frame: type, flags, stream, payload offset in chunk (or IN_SPILL), payload length. */
export const OUT_STRIDE = 5;
/** Payload offset meaning "the payload spanned reads: call takeSpill()". Only the first frame of a feed. */
export const IN_SPILL = 0xffffffff;

/** What every decoder implementation offers (TypeScript here, Rust in native/). */
export interface FrameDecoderLike {
  feed(chunk: Uint8Array, out: Uint32Array): void;
  /** The payload of the frame reported with offset IN_SPILL by the last feed (dropped by the next one); ownership passes to the caller. */
  takeSpill(): Buffer;
  /** Bytes held for an incomplete frame (0 when the decoder sits between frames). */
  readonly pending: number;
  reset(): void;
}

/** Size `out` needs for a chunk of `len` bytes: at most one frame per 3 bytes (+1 from spill). */
export function outSizeFor(len: number): number {
  return OUT_HEADER + OUT_STRIDE * (Math.floor(len / 3) + 2);
}

const NEED_MORE = -1;

/** Parsed header, reused between calls (no allocation per frame). */
interface Header {
  type: number;
  flags: number;
  stream: number;
  length: number;
  size: number;
  fault: DecodeFaultValue;
}

/**
 * Parse one header from buf[pos, end). Returns NEED_MORE, or the header size with
 * `h` filled, or 0 with `h.fault` set. Faults are found at the earliest byte that
 * shows them, so a stream split anywhere gives the same verdict.
 */
export function parseHeader(buf: Uint8Array, pos: number, end: number, maxFrame: number, h: Header): number {
  if (pos >= end) return NEED_MORE;
  const type = buf[pos];
  if (type === 0 || type > MAX_FRAME_TYPE) return fault(h, DecodeFault.UNKNOWN_TYPE);
  if (pos + 1 >= end) return NEED_MORE;
  const flags = buf[pos + 1];
  if ((flags & FLAG_RESERVED_MASK) !== 0) return fault(h, DecodeFault.RESERVED_FLAGS);
  if ((flags & FLAG_CODEC_MASK) === 3) return fault(h, DecodeFault.BAD_CODEC);
  let p = pos + 2;
  // stream varint
  let value = 0;
  let shift = 0;
  for (let i = 0; ; i++) {
    if (p >= end) return NEED_MORE;
    const b = buf[p++];
    if (i === 4 && b > 0x0f) return fault(h, DecodeFault.VARINT_OVERFLOW);
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) break;
    shift += 7;
  }
  const stream = value;
  value = 0;
  shift = 0;
  for (let i = 0; ; i++) {
    if (p >= end) return NEED_MORE;
    const b = buf[p++];
    if (i === 4 && b > 0x0f) return fault(h, DecodeFault.VARINT_OVERFLOW);
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) break;
    shift += 7;
  }
  if (value > maxFrame) return fault(h, DecodeFault.TOO_LARGE);
  h.type = type;
  h.flags = flags;
  h.stream = stream;
  h.length = value;
  h.size = p - pos;
  return h.size;
}

function fault(h: Header, f: DecodeFaultValue): number {
  h.fault = f;
  return 0;
}

enum State {
  HEADER = 0,
  PAYLOAD = 1,
  FAILED = 2,
}

export class TsFrameDecoder implements FrameDecoderLike {
  private state = State.HEADER;
  /** Header bytes of a frame whose header spans reads (at most MAX_HEADER_BYTES). */
  private hdr: Buffer | null = null;
  private hdrLen = 0;
  /** Payload of a frame that spans reads. */
  private spill: Buffer | null = null;
  private spillLen = 0;
  private readonly h: Header = { type: 0, flags: 0, stream: 0, length: 0, size: 0, fault: 0 };
  /** Stream offset of the first byte not yet part of a completed frame. */
  private consumed = 0;
  private failedFault: DecodeFaultValue = DecodeFault.NONE;
  private done: Buffer | null = null;

  constructor(private readonly maxFrame: number) {}

  get pending(): number {
    return this.state === State.PAYLOAD ? this.h.size + this.spillLen : this.hdrLen;
  }

  reset(): void {
    this.state = State.HEADER;
    this.hdr = null;
    this.hdrLen = 0;
    this.spill = null;
    this.spillLen = 0;
    this.consumed = 0;
    this.failedFault = DecodeFault.NONE;
    this.done = null;
  }

  takeSpill(): Buffer {
    const b = this.done;
    if (b === null) throw new Error('takeSpill: no spilled payload');
    this.done = null;
    return b;
  }

  feed(chunk: Uint8Array, out: Uint32Array): void {
    // A short `out` would silently lose frames (typed-array stores past the end are dropped).
    if (out.length < outSizeFor(chunk.length)) {
      throw new RangeError(`feed: out has ${out.length} slots, a chunk of ${chunk.length} bytes needs ${outSizeFor(chunk.length)}`);
    }
    // An untaken spill is dropped: never more than one max frame held between reads.
    this.done = null;
    out[0] = 0;
    out[1] = 0;
    out[2] = 0;
    this.run(chunk, out);
    out[3] = this.pending;
  }

  private run(chunk: Uint8Array, out: Uint32Array): void {
    if (this.state === State.FAILED) {
      this.fail(out, this.failedFault);
      return;
    }
    const end = chunk.length;
    let pos = 0;
    const h = this.h;

    if (this.state === State.PAYLOAD) {
      const spill = this.spill as Buffer;
      const take = Math.min(end, h.length - this.spillLen);
      spill.set(chunk.subarray(0, take), this.spillLen);
      this.spillLen += take;
      pos = take;
      if (this.spillLen < h.length) return;
      this.emit(out, IN_SPILL);
      this.done = spill;
      this.spill = null;
      this.spillLen = 0;
      this.state = State.HEADER;
    } else if (this.hdrLen > 0) {
      // A header spans reads: extend the saved bytes until it parses.
      const hdr = this.hdr as Buffer;
      const add = Math.min(end, MAX_HEADER_BYTES - this.hdrLen);
      hdr.set(chunk.subarray(0, add), this.hdrLen);
      const r = parseHeader(hdr, 0, this.hdrLen + add, this.maxFrame, h);
      if (r === 0) {
        this.fail(out, h.fault);
        return;
      }
      if (r === NEED_MORE) {
        this.hdrLen += add;
        return;
      }
      pos = r - this.hdrLen;
      this.hdrLen = 0;
      if (!this.payload(chunk, pos, end, out)) return;
      pos += h.length;
    }

    while (pos < end) {
      const r = parseHeader(chunk, pos, end, this.maxFrame, h);
      if (r === 0) {
        this.fail(out, h.fault);
        return;
      }
      if (r === NEED_MORE) {
        if (this.hdr === null) this.hdr = Buffer.allocUnsafe(MAX_HEADER_BYTES);
        this.hdr.set(chunk.subarray(pos, end), 0);
        this.hdrLen = end - pos;
        return;
      }
      pos += r;
      if (!this.payload(chunk, pos, end, out)) return;
      pos += h.length;
    }
  }

  /** The header in `h` is complete and its payload starts at chunk[pos]: emit or spill. */
  private payload(chunk: Uint8Array, pos: number, end: number, out: Uint32Array): boolean {
    const h = this.h;
    if (end - pos >= h.length) {
      this.emit(out, pos);
      return true;
    }
    const spill = Buffer.allocUnsafe(h.length);
    spill.set(chunk.subarray(pos, end), 0);
    this.spill = spill;
    this.spillLen = end - pos;
    this.state = State.PAYLOAD;
    return false;
  }

  private emit(out: Uint32Array, offset: number): void {
    const h = this.h;
    const i = OUT_HEADER + OUT_STRIDE * out[0];
    out[i] = h.type;
    out[i + 1] = h.flags;
    out[i + 2] = h.stream;
    out[i + 3] = offset;
    out[i + 4] = h.length;
    out[0]++;
    this.consumed += h.size + h.length;
  }

  private fail(out: Uint32Array, f: DecodeFaultValue): void {
    this.state = State.FAILED;
    this.failedFault = f;
    this.hdr = null;
    this.hdrLen = 0;
    this.spill = null;
    out[1] = f;
    out[2] = this.consumed >>> 0;
  }
}
