/**
 * The frame codec the gateway uses. Decoding: the Rust decoder for socket-sized reads,
 * the TypeScript reference decoder for small ones and as the fallback when the native
 * module is missing. Encoding: whichever measured faster (bench/codec.ts).
 */
import { type DecodeFaultValue, MAX_MAX_FRAME } from './constants';
import { type FrameDecoderLike, IN_SPILL, OUT_HEADER, OUT_STRIDE, outSizeFor, TsFrameDecoder } from './decoder';
import * as tsEncoder from './encoder';
import { loadNative, type NativeCodec, type NativeDecoderBinding } from './native';

export { type FrameDecoderLike, IN_SPILL, OUT_HEADER, OUT_STRIDE, outSizeFor } from './decoder';
export type { FrameSpec } from './encoder';

/**
 * Reads shorter than this go to TypeScript: a native feed pays ~140 ns to cross N-API
 * (one PING: native 139 ns, TypeScript 37 ns), then ~3 ns a frame against TypeScript's
 * ~20-40 ns. On mixed 4-600 byte frames the two tie at 256-512 byte reads and native
 * is ~8x faster at 16 KiB (bench/codec.ts prints the sweep every run).
 */
export const NATIVE_MIN_BYTES = 512;

export type DecoderKind = 'auto' | 'hybrid' | 'native' | 'ts';

/** One decoded frame with its payload. */
export interface DecodedFrame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/** Everything a decoder made of a sequence of reads (for tools, tests, recorded streams). */
export interface DecodedStream {
  frames: DecodedFrame[];
  /** DecodeFault that stopped the stream, 0 if none. */
  fault: DecodeFaultValue;
  /** Stream offset of the frame that faulted (mod 2^32). */
  faultAt: number;
  /** Bytes held for an incomplete last frame. */
  pending: number;
}

/** `out` if it can take a chunk of `len` bytes, else a new array that can. */
export function sizedOut(out: Uint32Array, len: number): Uint32Array {
  const need = outSizeFor(len);
  return out.length >= need ? out : new Uint32Array(need);
}

/**
 * The Rust decoder behind FrameDecoderLike. Small spills are copied into a buffer from
 * Node's pool (Buffer.allocUnsafe, ~100 ns) instead of taken as an external Buffer
 * (zero-copy, but ~2 us to create and finalize, measured); large ones are handed over.
 */
export class NativeFrameDecoder implements FrameDecoderLike {
  private readonly d: NativeDecoderBinding;
  /** Length of the spilled payload the last feed reported, or -1. */
  private spillLen = -1;

  constructor(maxFrame: number, native: NativeCodec) {
    this.d = new native.FrameDecoder(maxFrame);
  }

  get pending(): number {
    return this.d.pending;
  }

  feed(chunk: Uint8Array, out: Uint32Array): void {
    this.d.feed(chunk, out);
    this.spillLen = out[0] > 0 && out[OUT_HEADER + 3] === IN_SPILL ? out[OUT_HEADER + 4] : -1;
  }

  takeSpill(): Buffer {
    const len = this.spillLen;
    this.spillLen = -1;
    // Buffer.allocUnsafe pools sizes below poolSize / 2.
    if (len < 0 || len >= Buffer.poolSize >>> 1) return this.d.takeSpill();
    const b = Buffer.allocUnsafe(len);
    this.d.takeSpillInto(b);
    return b;
  }

  reset(): void {
    this.d.reset();
    this.spillLen = -1;
  }
}

/**
 * Routes each read to TypeScript or native by size. Whichever decoder holds a partial
 * frame (or has failed) gets the next read, so spill state never splits between them.
 */
export class HybridFrameDecoder implements FrameDecoderLike {
  private readonly ts: TsFrameDecoder;
  private readonly native: FrameDecoderLike;
  /** The decoder that must see the next read: it holds a partial frame, or failed. */
  private owner: FrameDecoderLike | null = null;
  private failed = false;
  /** The decoder the last read went to: its spill is the one to take. */
  private last: FrameDecoderLike;
  /** Bytes each decoder was fed; a fault offset counts the whole stream, not one share. */
  private tsBytes = 0;
  private nativeBytes = 0;

  constructor(
    maxFrame: number,
    native: NativeCodec,
    private readonly minNativeBytes = NATIVE_MIN_BYTES,
  ) {
    this.ts = new TsFrameDecoder(maxFrame);
    this.native = new NativeFrameDecoder(maxFrame, native);
    this.last = this.ts;
  }

  get pending(): number {
    return this.owner === null ? 0 : this.owner.pending;
  }

  feed(chunk: Uint8Array, out: Uint32Array): void {
    const d = this.owner ?? (chunk.length >= this.minNativeBytes ? this.native : this.ts);
    d.feed(chunk, out);
    this.last = d;
    const isTs = d === this.ts;
    if (out[1] !== 0) {
      // The other decoder sits between frames, so everything it was fed is consumed.
      out[2] = (out[2] + (isTs ? this.nativeBytes : this.tsBytes)) >>> 0;
      this.owner = d;
      this.failed = true;
    } else if (!this.failed) {
      this.owner = out[3] > 0 ? d : null;
    }
    if (isTs) this.tsBytes += chunk.length;
    else this.nativeBytes += chunk.length;
  }

  takeSpill(): Buffer {
    return this.last.takeSpill();
  }

  reset(): void {
    this.ts.reset();
    this.native.reset();
    this.owner = null;
    this.failed = false;
    this.last = this.ts;
    this.tsBytes = 0;
    this.nativeBytes = 0;
  }
}

function requireNative(kind: DecoderKind): NativeCodec {
  const native = loadNative();
  if (native === null) throw new Error(`createDecoder(${kind}): the native codec is not built (npm run build:native)`);
  return native;
}

/**
 * A decoder for one connection. 'auto' (the default) is the hybrid when the native
 * module loaded, else TypeScript; the other kinds are for tests and benches.
 */
export function createDecoder(maxFrame: number, kind: DecoderKind = 'auto'): FrameDecoderLike {
  if (!Number.isInteger(maxFrame) || maxFrame < 0 || maxFrame > MAX_MAX_FRAME) {
    throw new RangeError(`createDecoder: maxFrame ${maxFrame} is not an integer in [0, ${MAX_MAX_FRAME}]`);
  }
  switch (kind) {
    case 'ts':
      return new TsFrameDecoder(maxFrame);
    case 'native':
      return new NativeFrameDecoder(maxFrame, requireNative(kind));
    case 'hybrid':
      return new HybridFrameDecoder(maxFrame, requireNative(kind));
    default: {
      const native = loadNative();
      return native === null ? new TsFrameDecoder(maxFrame) : new HybridFrameDecoder(maxFrame, native);
    }
  }
}

export type FrameCallback = (type: number, flags: number, stream: number, payload: Buffer) => void;

/**
 * Feed one read and call `cb` for each frame, with the payload as a view of `chunk`
 * (or the spilled payload). Returns the DecodeFault (0 none; the offset is in out[2]).
 * `cb` must not feed another decoder with the same `out`.
 */
export function forEachFrame(decoder: FrameDecoderLike, chunk: Buffer, out: Uint32Array, cb: FrameCallback): DecodeFaultValue {
  decoder.feed(chunk, out);
  const n = out[0];
  const fault = out[1] as DecodeFaultValue;
  for (let i = 0; i < n; i++) {
    const o = OUT_HEADER + OUT_STRIDE * i;
    const off = out[o + 3];
    const payload = off === IN_SPILL ? decoder.takeSpill() : chunk.subarray(off, off + out[o + 4]);
    cb(out[o], out[o + 1], out[o + 2], payload);
  }
  return fault;
}

/**
 * TypeScript for both: a frame from Buffer.allocUnsafe's pool costs ~100-200 ns, while
 * any native encoder must create a fresh ArrayBuffer (~500 ns here) and read each
 * payload through N-API (~50 ns each), more than JIT-compiled `set` costs.
 * bench/codec.ts measures both every run.
 */
export const encodeFrame: (type: number, flags: number, stream: number, payload?: Uint8Array) => Buffer = tsEncoder.encodeFrame;
export const encodeFrames: (frames: readonly tsEncoder.FrameSpec[]) => Buffer = tsEncoder.encodeFrames;

/** Decode `reads` in order, stopping at a fault; payloads are views or spills. */
export function collectFrames(decoder: FrameDecoderLike, reads: Iterable<Buffer>): DecodedStream {
  const frames: DecodedFrame[] = [];
  let out: Uint32Array = new Uint32Array(0);
  let fault: DecodeFaultValue = 0;
  let faultAt = 0;
  for (const chunk of reads) {
    out = sizedOut(out, chunk.length);
    fault = forEachFrame(decoder, chunk, out, (type, flags, stream, payload) => frames.push({ type, flags, stream, payload }));
    faultAt = out[2];
    if (fault !== 0) break;
  }
  return { frames, fault, faultAt, pending: decoder.pending };
}
