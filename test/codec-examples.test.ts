/**
 * Byte-exact examples from shared/protocol.md §2-3, and one test per protocol error,
 * on every decoder: TypeScript, the native binding as built, its codec wrapper, and the
 * hybrid. A missing native module fails these tests (CI builds it).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { collectFrames, createDecoder, encodeFrame, type FrameDecoderLike, outSizeFor } from '../src/protocol/codec';
import { DEFAULT_MAX_FRAME, DecodeFault, ErrorCode, errorCodeForFault, FrameType } from '../src/protocol/constants';
import * as tsEncoder from '../src/protocol/encoder';
import { loadNative, type NativeCodec } from '../src/protocol/native';

function native(): NativeCodec {
  const n = loadNative();
  assert.ok(n, 'native codec not built: run npm run build:native');
  return n;
}

const DECODERS: Record<string, (maxFrame: number) => FrameDecoderLike> = {
  ts: (m) => createDecoder(m, 'ts'),
  'native binding': (m) => new (native().FrameDecoder)(m),
  native: (m) => createDecoder(m, 'native'),
  hybrid: (m) => createDecoder(m, 'hybrid'),
};

const ENCODERS: Record<string, (type: number, flags: number, stream: number, payload?: Uint8Array) => Buffer> = {
  ts: tsEncoder.encodeFrame,
  native: (t, f, s, p) => native().encodeFrame(t, f, s, p),
  codec: encodeFrame,
};

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Decode `bytes` whole and one byte at a time; both must agree. */
function decode(make: (maxFrame: number) => FrameDecoderLike, bytes: Buffer, maxFrame = DEFAULT_MAX_FRAME) {
  const whole = collectFrames(make(maxFrame), [bytes]);
  const bytewise = collectFrames(
    make(maxFrame),
    Array.from(bytes, (_, i) => bytes.subarray(i, i + 1)),
  );
  assert.deepEqual(bytewise, whole, 'byte-at-a-time feeding must give the same result');
  return whole;
}

function assertFault(bytes: Buffer, fault: number, faultAt: number, framesBefore: number, maxFrame = DEFAULT_MAX_FRAME): void {
  for (const [name, make] of Object.entries(DECODERS)) {
    const r = decode(make, bytes, maxFrame);
    assert.equal(r.fault, fault, `${name}: fault`);
    assert.equal(r.faultAt, faultAt, `${name}: fault offset`);
    assert.equal(r.frames.length, framesBefore, `${name}: frames before the fault`);
  }
}

describe('protocol.md examples', () => {
  test('an empty PING is 4 bytes: 03 00 00 00', () => {
    for (const [name, enc] of Object.entries(ENCODERS)) assert.deepEqual(enc(FrameType.PING, 0, 0), hex('03 00 00 00'), name);
    for (const [name, make] of Object.entries(DECODERS)) {
      const r = decode(make, hex('03 00 00 00'));
      assert.deepEqual(r.frames, [{ type: 3, flags: 0, stream: 0, payload: Buffer.alloc(0) }], name);
      assert.equal(r.fault, 0, name);
      assert.equal(r.pending, 0, name);
    }
  });

  test('REQUEST: stream and length are LEB128 varints (300 = ac 02)', () => {
    const payload = Buffer.alloc(300, 0x5a);
    const wire = Buffer.concat([hex('07 00 ac 02 ac 02'), payload]);
    for (const [name, enc] of Object.entries(ENCODERS)) assert.deepEqual(enc(FrameType.REQUEST, 0, 300, payload), wire, name);
    for (const [name, make] of Object.entries(DECODERS)) {
      assert.deepEqual(decode(make, wire).frames, [{ type: 7, flags: 0, stream: 300, payload }], name);
    }
  });

  test('a 5-byte varint up to 2^32-1 is valid, and so is a non-minimal one', () => {
    const wire = hex('08 00 ff ff ff ff 0f 80 80 80 80 00');
    for (const [name, enc] of Object.entries(ENCODERS)) assert.deepEqual(enc(FrameType.RESPONSE, 0, 0xffffffff), hex('08 00 ff ff ff ff 0f 00'), name);
    for (const [name, make] of Object.entries(DECODERS)) {
      assert.deepEqual(decode(make, wire).frames, [{ type: 8, flags: 0, stream: 0xffffffff, payload: Buffer.alloc(0) }], name);
    }
  });

  test('every frame type 0x01-0x0C with codec bits 0, 1, 2 decodes', () => {
    const parts: Buffer[] = [];
    const expect: Array<{ type: number; flags: number; stream: number; payload: Buffer }> = [];
    for (const type of Object.values(FrameType)) {
      for (const flags of [0, 1, 2]) {
        const payload = Buffer.from([type, flags]);
        parts.push(tsEncoder.encodeFrame(type, flags, type, payload));
        expect.push({ type, flags, stream: type, payload });
      }
    }
    for (const [name, make] of Object.entries(DECODERS)) assert.deepEqual(decode(make, Buffer.concat(parts)).frames, expect, name);
  });

  test('a payload of exactly max_frame is accepted and spans reads', () => {
    const payload = Buffer.alloc(DEFAULT_MAX_FRAME, 7);
    const wire = tsEncoder.encodeFrame(FrameType.PUSH, 2, 0, payload);
    for (const [name, make] of Object.entries(DECODERS)) {
      const r = collectFrames(make(DEFAULT_MAX_FRAME), [wire.subarray(0, 1000), wire.subarray(1000)]);
      assert.equal(r.frames.length, 1, name);
      assert.deepEqual(r.frames[0].payload, payload, name);
    }
  });

  test('stream ids beyond u32 are refused by both encoders', () => {
    for (const [name, enc] of Object.entries(ENCODERS)) {
      for (const bad of [2 ** 32, -1, 1.5]) assert.throws(() => enc(FrameType.REQUEST, 0, bad), RangeError, `${name}: ${bad}`);
    }
  });

  test('payloads are views of the read, not copies', () => {
    const wire = Buffer.concat([tsEncoder.encodeFrame(5, 0, 0, Buffer.from('abc')), tsEncoder.encodeFrame(5, 0, 0, Buffer.from('de'))]);
    for (const [name, make] of Object.entries(DECODERS)) {
      const r = collectFrames(make(DEFAULT_MAX_FRAME), [wire]);
      assert.deepEqual(
        r.frames.map((f) => [f.payload.buffer === wire.buffer, f.payload.byteOffset - wire.byteOffset, f.payload.toString()]),
        [
          [true, 4, 'abc'],
          [true, 11, 'de'],
        ],
        name,
      );
    }
  });
});

describe('protocol errors, each on every decoder', () => {
  test('unknown frame type (0x00, 0x0D, 0xFF) is PROTOCOL_ERROR', () => {
    for (const type of [0x00, 0x0d, 0xff]) assertFault(Buffer.from([type, 0, 0, 0]), DecodeFault.UNKNOWN_TYPE, 0, 0);
    // Found at the type byte, after two good frames.
    assertFault(hex('03 00 00 00 06 00 00 01 09 0d'), DecodeFault.UNKNOWN_TYPE, 9, 2);
    assert.equal(errorCodeForFault(DecodeFault.UNKNOWN_TYPE), ErrorCode.PROTOCOL_ERROR);
  });

  test('reserved flag bits 2-7 set is PROTOCOL_ERROR', () => {
    for (let bit = 2; bit < 8; bit++) assertFault(Buffer.from([FrameType.PING, 1 << bit, 0, 0]), DecodeFault.RESERVED_FLAGS, 0, 0);
    // Decided at the flags byte, before any varint arrives.
    assertFault(hex('03 00 00 00 03 10'), DecodeFault.RESERVED_FLAGS, 4, 1);
    assert.equal(errorCodeForFault(DecodeFault.RESERVED_FLAGS), ErrorCode.PROTOCOL_ERROR);
  });

  test('codec bits 3 name no codec: PROTOCOL_ERROR', () => {
    assertFault(hex('05 03 00 00'), DecodeFault.BAD_CODEC, 0, 0);
    assertFault(hex('05 07 00 00'), DecodeFault.RESERVED_FLAGS, 0, 0);
    assert.equal(errorCodeForFault(DecodeFault.BAD_CODEC), ErrorCode.PROTOCOL_ERROR);
  });

  test('a 6th varint continuation byte, or a value >= 2^32, is PROTOCOL_ERROR', () => {
    // stream: the 5th byte has its continuation bit set (a 6th would follow).
    assertFault(hex('07 00 80 80 80 80 80 01 00'), DecodeFault.VARINT_OVERFLOW, 0, 0);
    // Detected at the 5th byte: the 6th never has to arrive.
    assertFault(hex('07 00 80 80 80 80 80'), DecodeFault.VARINT_OVERFLOW, 0, 0);
    // length: 5 bytes but 2^32.
    assertFault(hex('03 00 00 00 05 00 00 80 80 80 80 10'), DecodeFault.VARINT_OVERFLOW, 4, 1);
    assert.equal(errorCodeForFault(DecodeFault.VARINT_OVERFLOW), ErrorCode.PROTOCOL_ERROR);
  });

  test('length above max_frame is FRAME_TOO_LARGE, decided on the header alone', () => {
    // 65537 = 81 80 04; no payload byte is ever sent.
    assertFault(hex('05 00 00 81 80 04'), DecodeFault.TOO_LARGE, 0, 0);
    assertFault(hex('03 00 00 00 05 00 00 0b'), DecodeFault.TOO_LARGE, 4, 1, 10);
    for (const [name, make] of Object.entries(DECODERS)) {
      const d = make(DEFAULT_MAX_FRAME);
      const out = new Uint32Array(outSizeFor(6));
      d.feed(hex('05 00 00 81 80 04'), out);
      assert.deepEqual(Array.from(out.subarray(0, 4)), [0, DecodeFault.TOO_LARGE, 0, 0], `${name}: verdict in the header's own read`);
    }
    assert.equal(errorCodeForFault(DecodeFault.TOO_LARGE), ErrorCode.FRAME_TOO_LARGE);
  });

  test('a failed decoder repeats its verdict until reset', () => {
    for (const [name, make] of Object.entries(DECODERS)) {
      const d = make(DEFAULT_MAX_FRAME);
      const out = new Uint32Array(outSizeFor(8));
      d.feed(hex('03 00 00 00 03 04'), out);
      assert.deepEqual(Array.from(out.subarray(0, 3)), [1, DecodeFault.RESERVED_FLAGS, 4], name);
      d.feed(hex('03 00 00 00'), out);
      assert.deepEqual(Array.from(out.subarray(0, 3)), [0, DecodeFault.RESERVED_FLAGS, 4], `${name}: again`);
      d.reset();
      d.feed(hex('03 00 00 00'), out);
      assert.deepEqual(Array.from(out.subarray(0, 3)), [1, 0, 0], `${name}: after reset`);
    }
  });

  test('an `out` too small for the read is refused, not silently truncated', () => {
    for (const [name, make] of Object.entries(DECODERS)) {
      const d = make(DEFAULT_MAX_FRAME);
      assert.throws(() => d.feed(hex('03 00 00 00 03 00 00 00'), new Uint32Array(8)), RangeError, name);
    }
  });
});
