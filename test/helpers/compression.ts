/** Compression helpers for tests against a real gateway: samples, training, decoding PUSH frames. */
import assert from 'node:assert/strict';
import { pushCorpus } from '../../bench/lib/push-corpus';
import type { RawConnection, RawFrame } from '../../src/client/raw';
import { Codec, compressionCodec, dictIdOf } from '../../src/compression/codec';
import { FrameType } from '../../src/protocol/constants';
import { moor } from '../../src/protocol/generated/moor';
import type { Gateway } from './gateway';

export const native = (() => {
  const n = compressionCodec();
  if (n === null) throw new Error('compression tests need the native module (npm run build:native)');
  return n;
})();

/** Push bodies like real traffic (bench/lib/push-corpus.ts). */
export const BODIES = pushCorpus(600, 11).map((m) => Buffer.from(m.body));

/** Gateway flags for fast dictionary upkeep in tests. */
export const COMPRESSION_ARGS = [
  '--compression.sample_one_in=1',
  '--compression.dict_min_samples=50',
  '--compression.dict_poll_ms=200',
  // A minute: training must gather every worker's samples itself (Op.SAMPLES), not wait for timers.
  '--compression.sample_flush_ms=60000',
  '--compression.min_bytes=32',
  // No lag back-off: a loaded test machine must not turn compression off under a test.
  '--compression.lag_ms=60000',
];

/** Broadcasts `n` corpus bodies: every worker samples each one. */
export async function feedSamples(gw: Gateway, n: number, from = 0): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await gw.api('POST', '/v1/push', { all: true, body_b64: BODIES[(from + i) % BODIES.length].toString('base64') });
    assert.equal(r.status, 202, JSON.stringify(r.body));
  }
}

export interface Trained {
  id: number;
  bytes: Buffer;
}

/** POST /v1/dicts (every worker flushes its samples first); the new dictionary, loaded here too. */
export async function train(gw: Gateway): Promise<Trained> {
  const r = await gw.api('POST', '/v1/dicts', {});
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const bytes = Buffer.from(await (await fetch(r.body.url as string)).arrayBuffer());
  assert.equal(dictIdOf(bytes), r.body.id);
  native.zstdLoadDict(bytes, 3);
  return { id: r.body.id as number, bytes };
}

/** Waits until every worker has applied the newest index (poll interval 200 ms). */
export function settle(ms = 600): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The payload of any frame, decompressed as its flags say (dictionaries must be loaded here). */
export function plain(f: RawFrame): Buffer {
  const codec = f.flags & 3;
  if (codec === Codec.IDENTITY) return Buffer.from(f.payload);
  const out = Buffer.allocUnsafe(1 << 20);
  const n = codec === Codec.LZ4 ? native.lz4DecompressInto(f.payload, out) : native.zstdDecompressInto(f.payload, out);
  assert.ok(n >= 0, `frame does not decompress (fault ${n})`);
  return Buffer.from(out.subarray(0, n));
}

/** The next frame must be a PUSH: its codec, the dictionary its header names, and the Push. */
export async function nextPush(conn: RawConnection, timeoutMs = 3000): Promise<{ codec: number; dictId: number; push: moor.v1.Push }> {
  const f = await conn.nextFrame(timeoutMs);
  if (f.type !== FrameType.PUSH) {
    const detail = f.type === FrameType.ERROR ? JSON.stringify(moor.v1.Error.decode(f.payload)) : '';
    throw new Error(`expected PUSH, got type ${f.type} ${detail}`);
  }
  const codec = f.flags & 3;
  return { codec, dictId: codec === Codec.ZSTD ? native.zstdFrameDictId(f.payload) : 0, push: moor.v1.Push.decode(plain(f)) };
}

/** A payload compressed as a device would send it. */
export function deflate(codec: number, payload: Uint8Array, dictId = 0): Buffer {
  const dst = Buffer.allocUnsafe(payload.length + 1024);
  const n = codec === Codec.LZ4 ? native.lz4CompressInto(payload, dst) : native.zstdCompressInto(payload, dst, dictId, 3);
  assert.ok(n > 0);
  return Buffer.from(dst.subarray(0, n));
}
