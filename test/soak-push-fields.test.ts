/**
 * The soak client's lean PUSH reader (bench/soak/push-fields.ts) against protobufjs:
 * the same seq and body for any Push, and for every prefix of one, either the same
 * answer as protobufjs or null where protobufjs refuses it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { pushFields } from '../bench/soak/push-fields';
import { moor } from '../src/protocol/generated/moor';

const arbPush = fc.record({
  seq: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2 ** 32 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
  id: fc.string(),
  topic: fc.string({ unit: 'binary' }),
  body: fc.uint8Array({ maxLength: 300 }),
  priority: fc.integer({ min: 0, max: 2 }),
  expiresAtMs: fc.nat(),
  sentAtMs: fc.nat(),
});

function protobufjs(p: Buffer): { seq: number; body: Buffer } | null {
  try {
    const m = moor.v1.Push.decode(p);
    return { seq: Number(m.seq), body: Buffer.from(m.body) };
  } catch {
    return null;
  }
}

describe('soak client PUSH reader', () => {
  it('reads seq and body as protobufjs does, for any Push', () => {
    fc.assert(
      fc.property(arbPush, (push) => {
        const bytes = Buffer.from(moor.v1.Push.encode(push).finish());
        const r = pushFields(bytes);
        assert.ok(r);
        assert.equal(r.seq, push.seq);
        assert.deepEqual(Buffer.from(r.body), Buffer.from(push.body));
      }),
      { numRuns: 500 },
    );
  });

  it('on every prefix of a Push: the same answer as protobufjs, or null where it refuses', () => {
    fc.assert(
      fc.property(arbPush, (push) => {
        const bytes = Buffer.from(moor.v1.Push.encode(push).finish());
        for (let n = 0; n <= bytes.length; n++) {
          const cut = bytes.subarray(0, n);
          const want = protobufjs(cut);
          const got = pushFields(cut);
          if (want === null) assert.equal(got, null, `prefix ${n} of ${bytes.length}`);
          else assert.deepEqual(got && { seq: got.seq, body: Buffer.from(got.body) }, want, `prefix ${n} of ${bytes.length}`);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('refuses an unknown wire type and a varint longer than 10 bytes', () => {
    assert.equal(pushFields(Buffer.from([0x0b])), null); // field 1, wire type 3 (group)
    assert.equal(pushFields(Buffer.from([0x08, ...Array(11).fill(0x80), 0x01])), null);
  });
});
