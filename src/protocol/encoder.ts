/**
 * The TypeScript reference frame encoder: one frame, or many into one buffer so a
 * socket write carries them all. The native encoder (native/src/encoder.rs) agrees
 * byte for byte.
 */
import { MAX_HEADER_BYTES } from './constants';

export function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Write v (< 2^32) as LEB128 at buf[pos]; returns the position after it. */
export function writeVarint(buf: Uint8Array, pos: number, v: number): number {
  while (v >= 0x80) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

export function headerSize(stream: number, length: number): number {
  return 2 + varintSize(stream) + varintSize(length);
}

/** Write a frame header at buf[pos]; returns the position where the payload goes. */
export function writeHeader(buf: Uint8Array, pos: number, type: number, flags: number, stream: number, length: number): number {
  // A stream >= 2^32 took 6 varint bytes in a 5-byte slot and corrupted the frame.
  if (stream >>> 0 !== stream) throw new RangeError(`stream ${stream} is not an integer in [0, 2^32)`);
  buf[pos] = type;
  buf[pos + 1] = flags;
  return writeVarint(buf, writeVarint(buf, pos + 2, stream), length);
}

const EMPTY = Buffer.alloc(0);

export function encodeFrame(type: number, flags: number, stream: number, payload: Uint8Array = EMPTY): Buffer {
  const out = Buffer.allocUnsafe(headerSize(stream, payload.length) + payload.length);
  const p = writeHeader(out, 0, type, flags, stream, payload.length);
  out.set(payload, p);
  return out;
}

/** One frame in a batch. */
export interface FrameSpec {
  type: number;
  flags?: number;
  stream?: number;
  payload?: Uint8Array;
}

export function encodeFrames(frames: readonly FrameSpec[]): Buffer {
  let size = 0;
  for (const f of frames) size += MAX_HEADER_BYTES + (f.payload?.length ?? 0);
  const out = Buffer.allocUnsafe(size);
  let p = 0;
  for (const f of frames) {
    const payload = f.payload ?? EMPTY;
    p = writeHeader(out, p, f.type, f.flags ?? 0, f.stream ?? 0, payload.length);
    out.set(payload, p);
    p += payload.length;
  }
  return out.subarray(0, p);
}
