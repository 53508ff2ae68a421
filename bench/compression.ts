/**
 * `npm run bench -- compression [--messages N] [--seed S]`: compression of push
 * payloads, as the gateway does it (native/src/compress.rs through N-API).
 *
 * A deterministic corpus (bench/lib/push-corpus.ts: JSON notifications of varied shape
 * and protobuf business messages, 100 B-2 KiB bodies, wrapped in PUSH payloads) is split
 * 80/20: dictionaries (16 KiB and 64 KiB) are trained on the first part, and every codec
 * is measured on the held-out part: identity, lz4, zstd (level 3), zstd + 16 KiB
 * dictionary, zstd + 64 KiB dictionary. Ratio = bytes before / bytes after; time per
 * message = one N-API call with a prepared CDict (best of several timed rounds),
 * compressing into a reused buffer, as Deflater does.
 *
 * Targets (messages under 1 KiB): zstd + dictionary >= 2x the ratio of zstd without
 * one; <= 5 us per message to compress. Progress goes to stderr; the last line on
 * stdout is one JSON object; the chart is bench/out/compression.svg.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type CompressionNative, compressionCodec } from '../src/compression/codec';
import { type CorpusMessage, pushCorpus } from './lib/push-corpus';

const ROUNDS = 7;
const LEVEL = 3;

function log(msg: string): void {
  process.stderr.write(`compression: ${msg}\n`);
}

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

interface Codec {
  name: string;
  compress: (src: Uint8Array, dst: Uint8Array) => number;
}

interface Result {
  ratio: number;
  ratio_under_1k: number;
  compress_us: number;
  compress_us_under_1k: number;
  /** CPU time (user + system) of the same rounds: what the call costs when other processes share the cores. */
  compress_cpu_us_under_1k: number;
  decompress_us: number;
}

/** Best wall and CPU time per message (us) of ROUNDS rounds over `msgs`. */
function timed(msgs: readonly Uint8Array[], fn: (m: Uint8Array) => void): { wall: number; cpu: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  for (const m of msgs) fn(m);
  let wall = Number.POSITIVE_INFINITY;
  let cpu = Number.POSITIVE_INFINITY;
  for (let round = 0; round < ROUNDS; round++) {
    const c = process.cpuUsage();
    const t = process.hrtime.bigint();
    for (const m of msgs) fn(m);
    const us = Number(process.hrtime.bigint() - t) / 1000 / msgs.length;
    const used = process.cpuUsage(c);
    wall = Math.min(wall, us);
    cpu = Math.min(cpu, (used.user + used.system) / msgs.length);
  }
  return { wall, cpu };
}

function timePerMessage(msgs: readonly Uint8Array[], fn: (m: Uint8Array) => void): number {
  return timed(msgs, fn).wall;
}

function measure(native: CompressionNative, c: Codec, test: readonly Uint8Array[], small: readonly Uint8Array[]): Result {
  const dst = Buffer.allocUnsafe(64 * 1024);
  const out = Buffer.allocUnsafe(64 * 1024);
  let before = 0;
  let after = 0;
  let beforeS = 0;
  let afterS = 0;
  const packed: Uint8Array[] = [];
  for (const m of test) {
    const n = c.compress(m, dst);
    before += m.length;
    after += n;
    if (m.length < 1024) {
      beforeS += m.length;
      afterS += n;
    }
    packed.push(Buffer.from(dst.subarray(0, n)));
  }
  const decompress = c.name === 'identity' ? (m: Uint8Array) => out.set(m) : c.name === 'lz4' ? (m: Uint8Array) => native.lz4DecompressInto(m, out) : (m: Uint8Array) => native.zstdDecompressInto(m, out);
  // Every decompression must give the message back.
  for (let i = 0; i < test.length; i++) {
    if (c.name === 'identity') continue;
    const n = c.name === 'lz4' ? native.lz4DecompressInto(packed[i], out) : native.zstdDecompressInto(packed[i], out);
    if (n !== test[i].length || !out.subarray(0, n).equals(test[i])) throw new Error(`${c.name}: message ${i} did not round-trip (${n})`);
  }
  const r2 = (x: number) => Math.round(x * 100) / 100;
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  const under = timed(small, (m) => c.compress(m, dst));
  return {
    ratio: r2(before / after),
    ratio_under_1k: r2(beforeS / afterS),
    compress_us: r3(timePerMessage(test, (m) => c.compress(m, dst))),
    compress_us_under_1k: r3(under.wall),
    compress_cpu_us_under_1k: r3(under.cpu),
    decompress_us: r3(timePerMessage(packed, decompress)),
  };
}

/**
 * Bytes of a zstd frame that are not compressed data: the frame header (magic, the
 * descriptor, window, dictionary id, content size) and each block's 3-byte header.
 * protocol.md §2 fixes the payload as one zstd frame whose header names the dictionary.
 */
function zstdFrameBytes(f: Uint8Array): number {
  const fhd = f[4];
  const single = (fhd >> 5) & 1;
  let pos = 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3] + [single, 2, 4, 8][fhd >> 6];
  let bytes = pos + ((fhd >> 2) & 1 ? 4 : 0);
  for (;;) {
    const h = f[pos] | (f[pos + 1] << 8) | (f[pos + 2] << 16);
    bytes += 3;
    pos += 3 + (((h >> 1) & 3) === 1 ? 1 : h >>> 3);
    if (h & 1) return bytes;
  }
}

interface ShapeRow {
  messages: number;
  bytes_mean: number;
  ratio_zstd: number;
  ratio_dict16k: number;
  /** ratio_dict16k / ratio_zstd: the target's measure, for this shape alone. */
  gain: number;
  /** Bytes / the randomness the generator drew (entropyBits): no codec can beat it. */
  ratio_floor: number;
}

/**
 * Where the bytes go, held-out messages under 1 KiB: the floor that the corpus's own
 * randomness sets (push-corpus.ts entropyBits), the zstd frame's fixed bytes, and the
 * dictionary's gain per message shape.
 */
function anatomy(native: CompressionNative, held: readonly CorpusMessage[], dictId: number) {
  const dst = Buffer.allocUnsafe(64 * 1024);
  const r2 = (x: number) => Math.round(x * 100) / 100;
  const rows = new Map<string, { n: number; raw: number; plain: number; dict: number; bits: number }>();
  const all = { n: 0, raw: 0, plain: 0, dict: 0, bits: 0 };
  let framePlain = 0;
  let frameDict = 0;
  for (const m of held) {
    if (m.payload.length >= 1024) continue;
    const plain = native.zstdCompressInto(m.payload, dst, 0, LEVEL);
    framePlain += zstdFrameBytes(dst.subarray(0, plain));
    const dict = native.zstdCompressInto(m.payload, dst, dictId, LEVEL);
    frameDict += zstdFrameBytes(dst.subarray(0, dict));
    let row = rows.get(m.shape);
    if (row === undefined) rows.set(m.shape, (row = { n: 0, raw: 0, plain: 0, dict: 0, bits: 0 }));
    for (const t of [row, all]) {
      t.n += 1;
      t.raw += m.payload.length;
      t.plain += plain;
      t.dict += dict;
      t.bits += m.entropyBits;
    }
  }
  const byShape: Record<string, ShapeRow> = {};
  for (const [shape, t] of [...rows].sort((a, b) => b[1].n - a[1].n)) {
    byShape[shape] = { messages: t.n, bytes_mean: Math.round(t.raw / t.n), ratio_zstd: r2(t.raw / t.plain), ratio_dict16k: r2(t.raw / t.dict), gain: r2(t.plain / t.dict), ratio_floor: r2(t.raw / (t.bits / 8)) };
  }
  return {
    /** Mean bytes per held-out message under 1 KiB: raw, the corpus's randomness, and each zstd output with its frame's fixed part. */
    bytes_per_msg_under_1k: {
      payload: r2(all.raw / all.n),
      entropy_floor: r2(all.bits / 8 / all.n),
      zstd: r2(all.plain / all.n),
      zstd_frame: r2(framePlain / all.n),
      'zstd+dict16k': r2(all.dict / all.n),
      'zstd+dict16k_frame': r2(frameDict / all.n),
    },
    ratio_floor_under_1k: r2(all.raw / (all.bits / 8)),
    by_shape_under_1k: byShape,
  };
}

function chart(results: Record<string, Result>): string {
  const names = Object.keys(results);
  const W = 860;
  const H = 360;
  const panel = (x0: number, title: string, values: number[], fmt: (v: number) => string, line?: { at: number; label: string }): string[] => {
    const pw = 380;
    const top = 50;
    const ph = 240;
    const max = Math.max(...values, line?.at ?? 0) * 1.15;
    const bw = pw / names.length;
    const out = [`<text x="${x0 + pw / 2}" y="30" text-anchor="middle" font-weight="bold">${title}</text>`, `<line x1="${x0}" y1="${top + ph}" x2="${x0 + pw}" y2="${top + ph}" stroke="#333"/>`];
    values.forEach((v, i) => {
      const h = (v / max) * ph;
      const x = x0 + i * bw + 6;
      const color = names[i].includes('dict') ? '#2e7d32' : names[i] === 'identity' ? '#9e9e9e' : '#1565c0';
      out.push(`<rect x="${x}" y="${top + ph - h}" width="${bw - 12}" height="${h}" fill="${color}"/>`);
      out.push(`<text x="${x + (bw - 12) / 2}" y="${top + ph - h - 4}" text-anchor="middle">${fmt(v)}</text>`);
      out.push(`<text x="${x + (bw - 12) / 2}" y="${top + ph + 16}" text-anchor="middle" font-size="11">${names[i]}</text>`);
    });
    if (line) {
      const y = top + ph - (line.at / max) * ph;
      out.push(`<line x1="${x0}" y1="${y}" x2="${x0 + pw}" y2="${y}" stroke="#c62828" stroke-dasharray="5,4"/>`, `<text x="${x0 + pw}" y="${y - 4}" text-anchor="end" fill="#c62828" font-size="11">${line.label}</text>`);
    }
    return out;
  };
  const ratios = names.map((n) => results[n].ratio_under_1k);
  const times = names.map((n) => results[n].compress_us_under_1k);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    '<rect width="100%" height="100%" fill="white"/>',
    ...panel(30, 'Ratio, held-out messages &lt; 1 KiB (higher is better)', ratios, (v) => `${v.toFixed(2)}x`, { at: 2 * results.zstd.ratio_under_1k, label: '2x zstd' }),
    ...panel(460, 'Compress, µs per message &lt; 1 KiB (lower is better)', times, (v) => v.toFixed(2), { at: 5, label: '5 us target' }),
    `<text x="${W / 2}" y="${H - 12}" text-anchor="middle" font-size="11" fill="#555">moor bench compression: zstd level ${LEVEL}, one N-API call per message with a prepared CDict; ${os.cpus()[0]?.model ?? ''}</text>`,
    '</svg>',
  ].join('\n');
}

function main(): void {
  const native = compressionCodec();
  if (native === null) throw new Error('the native module is not built (npm run build:native)');
  const total = arg('messages', 20_000);
  const corpus = pushCorpus(total, arg('seed', 1));
  const split = Math.floor(total * 0.8);
  const train = corpus.slice(0, split).map((m) => m.payload);
  const test = corpus.slice(split).map((m) => m.payload);
  const small = test.filter((m) => m.length < 1024);
  const bodyBytes = corpus.map((m) => m.body.length);
  log(`${total} messages (${corpus.filter((m) => m.kind === 'json').length} JSON, ${corpus.filter((m) => m.kind === 'proto').length} protobuf), bodies ${Math.min(...bodyBytes)}-${Math.max(...bodyBytes)} B; training on ${train.length}, measuring ${test.length} held out (${small.length} under 1 KiB)`);
  const samples = Buffer.concat(train);
  const sizes = Uint32Array.from(train, (m) => m.length);
  const trainMs: Record<string, number> = {};
  const dicts: Record<string, number> = {};
  for (const [label, size] of [
    ['16k', 16 * 1024],
    ['64k', 64 * 1024],
  ] as const) {
    const t = performance.now();
    const dict = native.trainDictionary(samples, sizes, size);
    trainMs[label] = Math.round(performance.now() - t);
    dicts[label] = native.zstdLoadDict(dict, LEVEL);
    log(`dictionary ${label}: ${dict.length} B, id ${dicts[label]}, trained in ${trainMs[label]} ms`);
  }
  const codecs: Codec[] = [
    {
      name: 'identity',
      compress: (src, dst) => {
        dst.set(src);
        return src.length;
      },
    },
    { name: 'lz4', compress: (src, dst) => native.lz4CompressInto(src, dst) },
    { name: 'zstd', compress: (src, dst) => native.zstdCompressInto(src, dst, 0, LEVEL) },
    { name: 'zstd+dict16k', compress: (src, dst) => native.zstdCompressInto(src, dst, dicts['16k'], LEVEL) },
    { name: 'zstd+dict64k', compress: (src, dst) => native.zstdCompressInto(src, dst, dicts['64k'], LEVEL) },
  ];
  const results: Record<string, Result> = {};
  for (const c of codecs) {
    results[c.name] = measure(native, c, test, small);
    log(`${c.name.padEnd(13)} ${JSON.stringify(results[c.name])}`);
  }
  // The same with the bodies alone (no PUSH envelope: push id, times, seq are ~25 B of entropy each).
  const bodies: Record<string, number> = {};
  {
    const tb = corpus.slice(0, split).map((m) => m.body);
    const hb = corpus.slice(split).map((m) => m.body).filter((b) => b.length < 1024);
    const dst = Buffer.allocUnsafe(64 * 1024);
    const ratio = (f: (b: Uint8Array) => number) => Math.round((hb.reduce((n, b) => n + b.length, 0) / hb.reduce((n, b) => n + f(b), 0)) * 100) / 100;
    bodies.zstd = ratio((b) => native.zstdCompressInto(b, dst, 0, LEVEL));
    for (const [label, size] of [
      ['zstd+dict16k', 16 * 1024],
      ['zstd+dict64k', 64 * 1024],
    ] as const) {
      const dict = native.trainDictionary(Buffer.concat(tb), Uint32Array.from(tb, (b) => b.length), size);
      const id = native.zstdLoadDict(dict, LEVEL);
      bodies[label] = ratio((b) => native.zstdCompressInto(b, dst, id, LEVEL));
    }
    log(`bodies alone, ratio under 1 KiB: ${JSON.stringify(bodies)}`);
  }
  const where = anatomy(native, corpus.slice(split), dicts['16k']);
  log(`bytes per message under 1 KiB: ${JSON.stringify(where.bytes_per_msg_under_1k)}`);
  for (const [shape, row] of Object.entries(where.by_shape_under_1k)) log(`  ${shape.padEnd(13)} ${JSON.stringify(row)}`);
  // What one N-API crossing costs here: a native call that only reads a frame header.
  const crossing = Math.round(timePerMessage(small, (m) => native.zstdFrameDictId(m)) * 1000) / 1000;
  const target = (name: string) => {
    const gain = Math.round((results[name].ratio_under_1k / results.zstd.ratio_under_1k) * 100) / 100;
    const us = results[name].compress_us_under_1k;
    const cpu = results[name].compress_cpu_us_under_1k;
    return { ratio_vs_zstd_under_1k: gain, ratio_met: gain >= 2, compress_us_under_1k: us, compress_cpu_us_under_1k: cpu, compress_us_met: us <= 5 };
  };
  const out = path.resolve(__dirname, '..', '..', 'bench', 'out');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, 'compression.svg'), chart(results));
  log(`chart: ${path.join(out, 'compression.svg')}`);
  const result = {
    bench: 'compression',
    messages: { total, train: train.length, test: test.length, under_1k: small.length, payload_bytes_mean: Math.round(test.reduce((n, m) => n + m.length, 0) / test.length) },
    zstd_level: LEVEL,
    train_ms: trainMs,
    codecs: results,
    bodies_ratio_under_1k: bodies,
    ...where,
    napi_crossing_us: crossing,
    // Messages under 1 KiB: zstd + dictionary >= 2x the ratio of zstd alone, <= 5 us to compress.
    targets: { 'zstd+dict16k': target('zstd+dict16k'), 'zstd+dict64k': target('zstd+dict64k') },
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '', loadavg_1m: Math.round(os.loadavg()[0] * 100) / 100, node: process.version },
    chart: 'bench/out/compression.svg',
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main();
