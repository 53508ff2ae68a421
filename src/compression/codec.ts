/**
 * The payload codecs of protocol.md §2 (flags bits 0-1), shared by the gateway, the
 * client library and the bench: lz4 (block preceded by the uncompressed size as a
 * varint) and zstd (one frame, dictionary id in its header), both from the native
 * module (native/src/compress.rs). Without the native module there is no compression:
 * `compressionCodec()` is null and everyone falls back to identity.
 */
import { FlagCodec } from '../protocol/constants';
import { loadNative, type NativeCodec } from '../protocol/native';

export const Codec = FlagCodec;
export type CodecValue = (typeof Codec)[keyof typeof Codec];
export const CODEC_NAMES = ['identity', 'lz4', 'zstd'] as const;

/** Decompression faults, as the native functions return them (negated). */
export const InflateFault = { TOO_LARGE: -1, CORRUPT: -2, UNKNOWN_DICT: -3 } as const;

export type CompressionNative = Pick<
  NativeCodec,
  | 'lz4CompressInto'
  | 'lz4DecompressInto'
  | 'zstdCompressInto'
  | 'zstdDecompressInto'
  | 'zstdFrameDictId'
  | 'zstdLoadDict'
  | 'zstdUnloadDict'
  | 'trainDictionary'
>;

let cached: CompressionNative | null | undefined;

/** The native compression functions, or null (the module is missing, stale or disabled). */
export function compressionCodec(): CompressionNative | null {
  if (cached !== undefined) return cached;
  const mod = loadNative();
  cached = mod && typeof mod.zstdCompressInto === 'function' && typeof mod.trainDictionary === 'function' ? mod : null;
  return cached;
}

/** zstd dictionary magic (little-endian 0xEC30A437) and where its id sits. */
const DICT_MAGIC = 0xec30a437;

/** The id in a zstd-format dictionary's header, or 0 when `bytes` is not one. */
export function dictIdOf(bytes: Uint8Array): number {
  if (bytes.length < 8) return 0;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return v.getUint32(0, true) === DICT_MAGIC ? v.getUint32(4, true) : 0;
}

/** Rewrites a dictionary's id in place (zstd reserves ids below 32,768 for a registry). */
export function setDictId(bytes: Uint8Array, id: number): void {
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(4, id >>> 0, true);
}

/**
 * One thread's compressor: compresses into a reusable scratch buffer, so the only
 * allocation per payload is the frame the caller builds from it.
 */
export class Deflater {
  private scratch = Buffer.allocUnsafe(4096);

  constructor(private readonly native: CompressionNative) {}

  /**
   * Compresses `src` with `codec`; returns the length written to `out` (valid until the
   * next call), or 0 when the result would not be smaller than `src`.
   */
  deflate(codec: CodecValue, src: Uint8Array, dictId: number, level: number): number {
    if (src.length < 2) return 0;
    if (this.scratch.length < src.length) this.scratch = Buffer.allocUnsafe(Math.max(src.length, 2 * this.scratch.length));
    // A destination one byte shorter than src: compressing into it succeeds only when it pays.
    const dst = this.scratch.subarray(0, src.length - 1);
    if (codec === Codec.LZ4) return this.native.lz4CompressInto(src, dst);
    if (codec === Codec.ZSTD) return this.native.zstdCompressInto(src, dst, dictId, level);
    return 0;
  }

  get out(): Buffer {
    return this.scratch;
  }
}

/**
 * Decompresses with a bound: the output buffer is `maxOut` bytes, and a payload that
 * declares or produces more is refused (a zip-bomb guard) before it is written.
 */
export class Inflater {
  private scratch: Buffer | null = null;

  constructor(
    private readonly native: CompressionNative,
    private readonly maxOut: number,
  ) {}

  /**
   * The decompressed payload as a view of a reused buffer (valid until the next call),
   * or an InflateFault.
   */
  inflate(codec: number, src: Uint8Array): Buffer | number {
    this.scratch ??= Buffer.allocUnsafe(this.maxOut);
    const n = codec === Codec.LZ4 ? this.native.lz4DecompressInto(src, this.scratch) : codec === Codec.ZSTD ? this.native.zstdDecompressInto(src, this.scratch) : InflateFault.CORRUPT;
    return n < 0 ? n : this.scratch.subarray(0, n);
  }
}

export function inflateFaultText(fault: number, codec: number, src: Uint8Array, native: CompressionNative | null): string {
  const name = CODEC_NAMES[codec] ?? `codec ${codec}`;
  if (fault === InflateFault.TOO_LARGE) return `${name} payload decompresses past max_frame`;
  if (fault === InflateFault.UNKNOWN_DICT) return `zstd frame names dictionary ${native?.zstdFrameDictId(src) ?? '?'}, which is not held here`;
  return `corrupt ${name} payload`;
}
