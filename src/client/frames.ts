/**
 * Frames for the client side: the TypeScript reference decoder wrapped into Frame
 * objects. The client is not the hot path, so one small object per frame is fine.
 */
import { DECODE_FAULT_MESSAGES, type DecodeFaultValue, MAX_MAX_FRAME } from '../protocol/constants';
import { IN_SPILL, OUT_HEADER, OUT_STRIDE, outSizeFor, TsFrameDecoder } from '../protocol/decoder';
import { MoorClientError } from './errors';

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  /** A view into the received bytes (Node never reuses a buffer it handed out). */
  payload: Buffer;
}

export class FrameReader {
  private readonly decoder: TsFrameDecoder;
  private out = new Uint32Array(outSizeFor(16 * 1024));
  /** Set once the stream broke protocol.md §2; feed() then yields nothing more. */
  error: MoorClientError | null = null;

  /** maxFrame: the largest payload accepted; a client takes anything the protocol allows. */
  constructor(maxFrame = MAX_MAX_FRAME) {
    this.decoder = new TsFrameDecoder(maxFrame);
  }

  /** Frames completed by one chunk of a byte stream (raw TCP): those before a fault too, which then sets `error`. */
  feed(chunk: Buffer): Frame[] {
    if (this.out.length < outSizeFor(chunk.length)) this.out = new Uint32Array(outSizeFor(chunk.length));
    const out = this.out;
    this.decoder.feed(chunk, out);
    const frames: Frame[] = [];
    for (let i = 0; i < out[0]; i++) {
      const o = OUT_HEADER + OUT_STRIDE * i;
      const offset = out[o + 3];
      const payload = offset === IN_SPILL ? this.decoder.takeSpill() : chunk.subarray(offset, offset + out[o + 4]);
      frames.push({ type: out[o], flags: out[o + 1], stream: out[o + 2], payload });
    }
    if (out[1] !== 0 && this.error === null) {
      this.error = new MoorClientError('BAD_FRAME', `bad frame at byte ${out[2]}: ${DECODE_FAULT_MESSAGES[out[1] as DecodeFaultValue]}`);
    }
    return frames;
  }

  /** One WebSocket message, which must hold exactly one whole frame (protocol.md §1); throws BAD_FRAME. */
  message(msg: Buffer): Frame {
    this.decoder.reset();
    this.error = null;
    const frames = this.feed(msg);
    if (this.error !== null) throw this.error;
    const left = this.decoder.pending;
    if (frames.length !== 1 || left !== 0) {
      throw new MoorClientError('BAD_FRAME', `a WebSocket message must hold exactly one frame (got ${frames.length}, ${left} bytes left over)`);
    }
    return frames[0];
  }
}
