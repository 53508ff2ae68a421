/**
 * Differential property tests: the native (Rust) codec against the TypeScript reference.
 * Random valid and corrupted frame sequences, randomly cut into reads: every feed must
 * leave identical numbers in `out`, identical spilled payloads and the same `pending`;
 * the encoders must agree byte for byte. A missing native module FAILS these tests.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createDecoder, type FrameDecoderLike, IN_SPILL, OUT_HEADER, OUT_STRIDE, outSizeFor } from '../src/protocol/codec';
import { MAX_FRAME_TYPE } from '../src/protocol/constants';
import * as tsEncoder from '../src/protocol/encoder';
import { loadNative, type NativeCodec } from '../src/protocol/native';

function native(): NativeCodec {
  const n = loadNative();
  assert.ok(n, 'native codec not built: run npm run build:native (CI builds it; these tests never skip)');
  return n;
}

const RUNS = Number(process.env.MOOR_FC_RUNS ?? 1000);

interface Spec {
  type: number;
  flags: number;
  stream: number;
  payload: Uint8Array;
}

/** Varint-boundary values are where encoders and decoders disagree if they ever do. */
const u32 = fc.oneof(
  fc.constantFrom(0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 0x1fffff, 0x200000, 0xfffffff, 0x10000000, 0xffffffff),
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.integer({ min: 0, max: 300 }),
);

const frame: fc.Arbitrary<Spec> = fc.record({
  type: fc.integer({ min: 1, max: MAX_FRAME_TYPE }),
  flags: fc.integer({ min: 0, max: 2 }),
  stream: u32,
  payload: fc.oneof(
    { weight: 6, arbitrary: fc.uint8Array({ maxLength: 40 }) },
    { weight: 3, arbitrary: fc.uint8Array({ minLength: 100, maxLength: 1500 }) },
    { weight: 1, arbitrary: fc.integer({ min: 4000, max: 20_000 }).map((n) => new Uint8Array(n).fill(n & 0xff)) },
  ),
});

/** A change that may break the stream anywhere: overwrite, insert, or truncate. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(bytes: Buffer, muts: Mutation[]): Buffer {
  let b = Buffer.from(bytes);
  for (const m of muts) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    if (m.kind === 'set') b[at] = m.byte;
    else if (m.kind === 'insert') b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
    else b = b.subarray(0, at);
  }
  return b;
}

/** Read sizes: mostly small, sometimes socket-sized, so the hybrid uses both decoders. */
const readSizes = fc.array(fc.oneof(fc.integer({ min: 0, max: 16 }), fc.integer({ min: 17, max: 700 }), fc.integer({ min: 700, max: 20_000 })), {
  minLength: 1,
  maxLength: 30,
});

function reads(bytes: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  for (let i = 0; pos < bytes.length; i++) {
    const n = sizes[i % sizes.length] || 1 + (i % 5);
    out.push(bytes.subarray(pos, pos + n));
    pos += n;
  }
  // An empty read must change nothing.
  out.splice(out.length >> 1, 0, bytes.subarray(0, 0));
  return out;
}

/** Everything observable after each feed: the used part of `out`, spills, pending. */
function trace(d: FrameDecoderLike, chunks: Buffer[]): unknown[] {
  const steps: unknown[] = [];
  for (const chunk of chunks) {
    const out = new Uint32Array(outSizeFor(chunk.length)).fill(0xdeadbeef);
    d.feed(chunk, out);
    const used = Array.from(out.subarray(0, OUT_HEADER + OUT_STRIDE * out[0]));
    const spill = out[0] > 0 && out[OUT_HEADER + 3] === IN_SPILL ? d.takeSpill().toString('hex') : null;
    steps.push({ used, spill, pending: d.pending });
    assert.equal(out[3], d.pending, 'out[3] reports pending');
  }
  return steps;
}

function decodersAgree(bytes: Buffer, sizes: number[], maxFrame: number): void {
  const chunks = reads(bytes, sizes);
  const want = trace(createDecoder(maxFrame, 'ts'), chunks);
  assert.deepEqual(trace(new (native().FrameDecoder)(maxFrame), chunks), want, 'native binding');
  assert.deepEqual(trace(createDecoder(maxFrame, 'native'), chunks), want, 'native');
  assert.deepEqual(trace(createDecoder(maxFrame, 'hybrid'), chunks), want, 'hybrid');
}

test('decoders agree on valid frame sequences, however they are cut', () => {
  native();
  fc.assert(
    fc.property(fc.array(frame, { maxLength: 25 }), readSizes, (frames, sizes) => {
      decodersAgree(tsEncoder.encodeFrames(frames), sizes, 65_536);
    }),
    { numRuns: RUNS },
  );
});

test('decoders agree on corrupted streams: same frames, same fault, same offset', () => {
  native();
  fc.assert(
    fc.property(
      fc.array(frame, { minLength: 1, maxLength: 12 }),
      fc.array(mutation, { minLength: 1, maxLength: 4 }),
      readSizes,
      fc.oneof(fc.constant(65_536), fc.integer({ min: 0, max: 2000 })),
      (frames, muts, sizes, maxFrame) => decodersAgree(mutate(tsEncoder.encodeFrames(frames), muts), sizes, maxFrame),
    ),
    { numRuns: RUNS },
  );
});

test('decoders agree on random bytes', () => {
  native();
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), readSizes, fc.integer({ min: 0, max: 300 }), (bytes, sizes, maxFrame) =>
      decodersAgree(Buffer.from(bytes), sizes, maxFrame),
    ),
    { numRuns: RUNS },
  );
});

test('encoders are byte-identical', () => {
  const n = native();
  fc.assert(
    fc.property(fc.array(frame, { maxLength: 20 }), (frames) => {
      const want = tsEncoder.encodeFrames(frames);
      const headers = new Uint32Array(frames.flatMap((f) => [f.type, f.flags, f.stream]));
      assert.deepEqual(n.encodeFrames(headers, frames.map((f) => f.payload)), want, 'native encodeFrames');
      const one = Buffer.concat(frames.map((f) => n.encodeFrame(f.type, f.flags, f.stream, f.payload)));
      assert.deepEqual(one, want, 'native encodeFrame');
      assert.deepEqual(Buffer.concat(frames.map((f) => tsEncoder.encodeFrame(f.type, f.flags, f.stream, f.payload))), want, 'ts encodeFrame');
    }),
    { numRuns: RUNS },
  );
});
