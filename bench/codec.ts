/**
 * `npm run bench -- codec`: frame codec throughput, native (Rust) vs TypeScript.
 *
 * (a) 1 MiB of mixed frames (4-600 byte payloads) fed in 16 KiB reads, and encoded
 *     one batch per read; (b) single 4-byte PINGs, one call each. Also sweeps the read
 *     size to show where native starts to win (NATIVE_MIN_BYTES in codec.ts).
 * Progress goes to stderr; the last line on stdout is one JSON object.
 */
import { createDecoder, type DecoderKind, type FrameDecoderLike, IN_SPILL, NATIVE_MIN_BYTES, OUT_HEADER, outSizeFor } from '../src/protocol/codec';
import { FrameType } from '../src/protocol/constants';
import * as tsEncoder from '../src/protocol/encoder';
import { loadNative, type NativeCodec } from '../src/protocol/native';

const READ = 16 * 1024;
const ROUNDS = 5;
const ROUND_MS = 150;

function log(msg: string): void {
  process.stderr.write(`codec: ${msg}\n`);
}

/** Deterministic PRNG (mulberry32) so every run measures the same stream. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

interface Frames {
  headers: Uint32Array;
  payloads: Buffer[];
  bytes: Buffer;
}

function mixedFrames(total: number): Frames {
  const r = rng(42);
  const specs: tsEncoder.FrameSpec[] = [];
  let size = 0;
  while (size < total) {
    const payload = Buffer.alloc(4 + Math.floor(r() * 597), Math.floor(r() * 256));
    const type = 1 + Math.floor(r() * 12);
    const spec = { type, flags: Math.floor(r() * 3), stream: type === FrameType.REQUEST ? 1 + Math.floor(r() * 100_000) : 0, payload };
    specs.push(spec);
    size += tsEncoder.headerSize(spec.stream, payload.length) + payload.length;
  }
  const headers = new Uint32Array(3 * specs.length);
  for (const [i, s] of specs.entries()) headers.set([s.type, s.flags ?? 0, s.stream ?? 0], 3 * i);
  return { headers, payloads: specs.map((s) => s.payload as Buffer), bytes: tsEncoder.encodeFrames(specs) };
}

/** Best time per call of `fn` (which does `ops` operations) in ns: best of ROUNDS timed rounds. */
function measure(fn: () => void): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  for (let i = 0; i < 3; i++) fn();
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < ROUNDS; round++) {
    let calls = 0;
    const t0 = process.hrtime.bigint();
    let dt = 0;
    do {
      fn();
      calls++;
      dt = Number(process.hrtime.bigint() - t0);
    } while (dt < ROUND_MS * 1e6);
    best = Math.min(best, dt / calls);
  }
  return best;
}

function chunks(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

/** Decode the whole stream once with a fresh decoder, taking spills as a consumer would. */
function decodeAll(kind: DecoderKind, reads: Buffer[], out: Uint32Array): number {
  const d: FrameDecoderLike = createDecoder(65_536, kind);
  let frames = 0;
  for (const c of reads) {
    d.feed(c, out);
    const n = out[0];
    if (n > 0 && out[OUT_HEADER + 3] === IN_SPILL) d.takeSpill();
    frames += n;
    if (out[1] !== 0) throw new Error(`${kind}: unexpected fault ${out[1]}`);
  }
  return frames;
}

function decodeMBps(kind: DecoderKind, data: Frames, readSize: number, expect: number): number {
  const reads = chunks(data.bytes, readSize);
  const out = new Uint32Array(outSizeFor(readSize));
  const got = decodeAll(kind, reads, out);
  if (got !== expect) throw new Error(`${kind}: decoded ${got} frames, expected ${expect}`);
  const ns = measure(() => decodeAll(kind, reads, out));
  return (data.bytes.length / ns) * 1e3; // bytes/ns -> MB/s
}

/** Batches of frames as one 16 KiB read's worth, for the batch encoders. */
function batches(data: Frames): Array<{ specs: tsEncoder.FrameSpec[]; headers: Uint32Array; payloads: Buffer[] }> {
  const all: Array<{ specs: tsEncoder.FrameSpec[]; headers: Uint32Array; payloads: Buffer[] }> = [];
  let start = 0;
  let bytes = 0;
  const n = data.payloads.length;
  for (let i = 0; i < n; i++) {
    bytes += data.payloads[i].length + 4;
    if (bytes >= READ || i === n - 1) {
      const headers = data.headers.subarray(3 * start, 3 * (i + 1));
      const payloads = data.payloads.slice(start, i + 1);
      const specs = payloads.map((payload, k) => ({ type: headers[3 * k], flags: headers[3 * k + 1], stream: headers[3 * k + 2], payload }));
      all.push({ specs, headers, payloads });
      start = i + 1;
      bytes = 0;
    }
  }
  return all;
}

function pingDecodeNs(kind: DecoderKind): number {
  const d = createDecoder(65_536, kind);
  const ping = Buffer.from([FrameType.PING, 0, 0, 0]);
  const out = new Uint32Array(outSizeFor(ping.length));
  const per = 1000;
  return (
    measure(() => {
      for (let i = 0; i < per; i++) d.feed(ping, out);
    }) / per
  );
}

function main(): void {
  const native: NativeCodec | null = loadNative();
  if (native === null) {
    log('the native module is not built (npm run build:native): nothing to compare');
    process.exit(1);
  }
  const data = mixedFrames(1 << 20);
  const frames = data.payloads.length;
  const expected = tsEncoder.encodeFrames(data.payloads.map((payload, i) => ({ type: data.headers[3 * i], flags: data.headers[3 * i + 1], stream: data.headers[3 * i + 2], payload })));
  if (!native.encodeFrames(data.headers, data.payloads).equals(expected)) throw new Error('native and TS encoders disagree');
  log(`${frames} frames, ${data.bytes.length} bytes, ${READ}-byte reads`);

  const result: Record<string, number | string> = { bench: 'codec' };
  for (const kind of ['native', 'ts', 'hybrid'] as const) {
    const mbps = decodeMBps(kind, data, READ, frames);
    result[`${kind}_decode_MBps`] = Math.round(mbps);
    log(`decode ${kind}: ${mbps.toFixed(0)} MB/s`);
  }

  const bs = batches(data);
  const nativeNs = measure(() => {
    for (const b of bs) native.encodeFrames(b.headers, b.payloads);
  });
  const tsNs = measure(() => {
    for (const b of bs) tsEncoder.encodeFrames(b.specs);
  });
  result.native_encode_Mfps = Number(((frames / nativeNs) * 1e3).toFixed(2));
  result.ts_encode_Mfps = Number(((frames / tsNs) * 1e3).toFixed(2));
  log(`encode (${bs.length} batches, one per read): native ${result.native_encode_Mfps} Mframes/s, ts ${result.ts_encode_Mfps} Mframes/s`);

  for (const kind of ['native', 'ts', 'hybrid'] as const) {
    const ns = pingDecodeNs(kind);
    result[`ping_${kind}_ns`] = Math.round(ns);
    log(`one PING per feed, ${kind}: ${ns.toFixed(0)} ns`);
  }
  const per = 1000;
  const encNative = measure(() => {
    for (let i = 0; i < per; i++) native.encodeFrame(FrameType.PONG, 0, 0);
  });
  const encTs = measure(() => {
    for (let i = 0; i < per; i++) tsEncoder.encodeFrame(FrameType.PONG, 0, 0);
  });
  result.pong_encode_native_ns = Math.round(encNative / per);
  result.pong_encode_ts_ns = Math.round(encTs / per);
  log(`one PONG encoded: native ${result.pong_encode_native_ns} ns, ts ${result.pong_encode_ts_ns} ns`);

  // Where does native start to win? (NATIVE_MIN_BYTES routes below it to TypeScript.)
  let crossover = 0;
  for (const size of [64, 256, 512, 1024, 2048, 4096]) {
    const n = decodeMBps('native', data, size, frames);
    const t = decodeMBps('ts', data, size, frames);
    log(`reads of ${size} B: native ${n.toFixed(0)} MB/s, ts ${t.toFixed(0)} MB/s`);
    if (crossover === 0 && n >= t) crossover = size;
  }
  result.crossover_read_bytes = crossover;
  result.native_min_bytes = NATIVE_MIN_BYTES;
  result.native_vs_ts_decode = Number(((result.native_decode_MBps as number) / (result.ts_decode_MBps as number)).toFixed(2));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main();
