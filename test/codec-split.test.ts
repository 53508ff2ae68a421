/**
 * The same stream cut anywhere decodes the same: reads of every size 1..N, a cut at
 * every position, and pairs of cuts (which move the hybrid between its decoders while
 * a frame is partial). Valid and corrupt streams, on every decoder.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { collectFrames, createDecoder, type DecodedStream, type FrameDecoderLike, NATIVE_MIN_BYTES } from '../src/protocol/codec';
import { DecodeFault, FrameType } from '../src/protocol/constants';
import { encodeFrame } from '../src/protocol/encoder';
import { loadNative } from '../src/protocol/native';

const MAX = 65_536;

const DECODERS: Record<string, () => FrameDecoderLike> = {
  ts: () => createDecoder(MAX, 'ts'),
  'native binding': () => {
    const n = loadNative();
    assert.ok(n, 'native codec not built: run npm run build:native');
    return new n.FrameDecoder(MAX);
  },
  native: () => createDecoder(MAX, 'native'),
  hybrid: () => createDecoder(MAX, 'hybrid'),
};

const pattern = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

/** Small frames, 2-byte varints, a payload above NATIVE_MIN_BYTES, a 5-byte stream id. */
function smallStream(): Buffer {
  return Buffer.concat([
    encodeFrame(FrameType.HELLO, 0, 0, pattern(40, 1)),
    encodeFrame(FrameType.PING, 0, 0),
    encodeFrame(FrameType.REQUEST, 1, 1000, pattern(200, 2)),
    encodeFrame(FrameType.ACK, 0, 0, pattern(3, 3)),
    encodeFrame(FrameType.SYNC, 2, 0, pattern(NATIVE_MIN_BYTES + 100, 4)),
    encodeFrame(FrameType.REQUEST, 0, 0xfffffff0, pattern(5, 5)),
    encodeFrame(FrameType.PING, 0, 0),
  ]);
}

/** Adds a payload above Node's Buffer pool size, so spills take both hand-over paths. */
function bigStream(): Buffer {
  return Buffer.concat([smallStream(), encodeFrame(FrameType.PUSH, 1, 0, pattern(9000, 6)), encodeFrame(FrameType.PING, 0, 0)]);
}

function cutAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const reads: Buffer[] = [];
  let from = 0;
  for (const c of [...cuts, bytes.length]) {
    reads.push(bytes.subarray(from, c));
    from = c;
  }
  return reads;
}

function inReadsOf(bytes: Buffer, size: number): Buffer[] {
  const reads: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) reads.push(bytes.subarray(i, i + size));
  return reads;
}

/** Reference: the TypeScript decoder on the whole stream in one read. */
function reference(bytes: Buffer): DecodedStream {
  return collectFrames(createDecoder(MAX, 'ts'), [bytes]);
}

function check(bytes: Buffer, readsFor: (bytes: Buffer) => Iterable<Buffer[]>, expectFault: number): void {
  const want = reference(bytes);
  assert.equal(want.fault, expectFault);
  for (const [name, make] of Object.entries(DECODERS)) {
    for (const reads of readsFor(bytes)) {
      const got = collectFrames(make(), reads);
      if (got.fault !== want.fault || got.faultAt !== want.faultAt || got.frames.length !== want.frames.length) {
        assert.fail(`${name}, reads of ${reads.map((r) => r.length).join('+')}: ${JSON.stringify([got.fault, got.faultAt, got.frames.length])}`);
      }
      assert.deepEqual(got.frames, want.frames, `${name}, reads of ${reads.map((r) => r.length).join('+')}`);
    }
  }
}

function* everySize(bytes: Buffer): Iterable<Buffer[]> {
  for (let size = 1; size <= bytes.length; size++) yield inReadsOf(bytes, size);
}

function* everyCut(bytes: Buffer): Iterable<Buffer[]> {
  for (let c = 0; c <= bytes.length; c++) yield cutAt(bytes, [c]);
}

/** Two cuts, every `step` bytes: the middle read is sometimes above, sometimes below NATIVE_MIN_BYTES. */
function pairsOfCuts(step: number) {
  return function* (bytes: Buffer): Iterable<Buffer[]> {
    for (let a = 0; a <= bytes.length; a += step) {
      for (let b = a; b <= bytes.length; b += step) yield cutAt(bytes, [a, b]);
    }
  };
}

/** `bytes` with the frame starting at `at` replaced by one whose header is bad. */
function corrupt(bytes: Buffer, at: number, header: number[]): Buffer {
  return Buffer.concat([bytes.subarray(0, at), Buffer.from(header), pattern(30, 9)]);
}

describe('split feeding', () => {
  test('reads of every size 1..N give the same frames', () => {
    check(smallStream(), everySize, 0);
    check(bigStream(), function* (b) {
      for (const size of [1, 2, 3, 5, 7, 64, 511, 512, 513, 1000, 4095, 4096, 8191, 9000, b.length]) yield inReadsOf(b, size);
    }, 0);
  });

  test('a cut at every position gives the same frames', () => {
    check(bigStream(), everyCut, 0);
  });

  test('two cuts anywhere (the hybrid switching decoders mid-stream) give the same frames', () => {
    check(smallStream(), pairsOfCuts(7), 0);
  });

  test('a fault is found at the same frame offset however the stream is cut', () => {
    const good = smallStream();
    const at = good.length - 4; // the last PING
    const cases: Array<[number[], number]> = [
      [[0x0d, 0, 0, 0], DecodeFault.UNKNOWN_TYPE],
      [[FrameType.PING, 0x20, 0, 0], DecodeFault.RESERVED_FLAGS],
      [[FrameType.PUSH, 0x03, 0, 0], DecodeFault.BAD_CODEC],
      [[FrameType.REQUEST, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], DecodeFault.VARINT_OVERFLOW],
      [[FrameType.PUSH, 0, 0, 0x81, 0x80, 0x04], DecodeFault.TOO_LARGE],
    ];
    for (const [header, fault] of cases) {
      const bad = corrupt(good, at, header);
      assert.equal(reference(bad).faultAt, at);
      check(bad, everySize, fault);
      check(bad, everyCut, fault);
      check(bad, pairsOfCuts(23), fault);
    }
  });
});
