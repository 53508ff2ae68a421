/**
 * The client side of compression (protocol.md §2, §5): which codecs and dictionaries
 * HELLO offers, decompressing frames from the gateway (bounded by max_frame), and
 * fetching the newer dictionary WELCOME.dict_url names, for the next session.
 * lz4 and zstd need the native module; without it only identity is offered.
 */
import { Codec, type CompressionNative, compressionCodec, dictIdOf, InflateFault, inflateFaultText } from '../compression/codec';
import { MoorClientError } from './errors';

/** Dictionaries are prepared at this zstd level (it only matters for compressing). */
const DICT_LEVEL = 3;
const FETCH_TIMEOUT_MS = 30_000;

export interface ClientCompressionOptions {
  codecs: number[];
  dictionaries: Uint8Array[];
  fetchDictionaries: boolean;
  onDictionary: ((id: number, bytes: Uint8Array) => void | Promise<void>) | null;
  /** Ids listed in HELLO beyond the held ones (raw use). */
  extraIds: number[];
}

export class ClientCompression {
  private readonly native: CompressionNative | null;
  /** Held dictionaries by id, newest last. */
  private readonly held = new Map<number, Uint8Array>();
  private readonly fetching = new Set<string>();
  private scratch: Buffer | null = null;

  constructor(private readonly o: ClientCompressionOptions) {
    this.native = compressionCodec();
    if (this.native === null && o.codecs.some((c) => c !== Codec.IDENTITY)) throw new TypeError('lz4 and zstd need the native module (npm run build:native)');
    for (const d of o.dictionaries) this.add(d);
  }

  /** HELLO.dict_ids: every held dictionary (newest first), plus the extra ids. */
  dictIds(): number[] {
    const ids = [...this.held.keys()].reverse();
    for (const id of this.o.extraIds) if (!ids.includes(id)) ids.push(id);
    return ids;
  }

  /** Ids of the dictionaries held (fetched ones included). */
  get heldIds(): number[] {
    return [...this.held.keys()];
  }

  /** Adds a dictionary's bytes; returns its id. */
  add(bytes: Uint8Array): number {
    const id = dictIdOf(bytes);
    if (id === 0) throw new TypeError('not a zstd dictionary (no magic or id 0)');
    if (this.held.has(id)) return id;
    if (this.native) this.native.zstdLoadDict(bytes, DICT_LEVEL);
    this.held.set(id, bytes);
    return id;
  }

  /** The plain payload of a compressed frame (a copy), or the reason it is bad. */
  inflate(flags: number, payload: Uint8Array, maxFrame: number): Buffer | string {
    const codec = flags & 3;
    if (this.native === null || !this.o.codecs.includes(codec)) return `a ${codec === Codec.LZ4 ? 'lz4' : 'zstd'} frame, but that codec was not offered`;
    if (this.scratch === null || this.scratch.length !== maxFrame) this.scratch = Buffer.allocUnsafe(maxFrame);
    const n = codec === Codec.LZ4 ? this.native.lz4DecompressInto(payload, this.scratch) : this.native.zstdDecompressInto(payload, this.scratch);
    if (n >= 0) return Buffer.from(this.scratch.subarray(0, n));
    return inflateFaultText(n, codec, payload, this.native) + (n === InflateFault.UNKNOWN_DICT ? ' (the gateway used a dictionary this client does not hold)' : '');
  }

  /** WELCOME: fetch the dictionary dict_url names, if any and new; errors go to `onError`. */
  welcome(dictUrl: string, onError: (e: Error) => void): void {
    if (!this.o.fetchDictionaries || dictUrl === '' || this.fetching.has(dictUrl) || !this.o.codecs.includes(Codec.ZSTD)) return;
    const named = Number(/\/(\d+)$/.exec(dictUrl)?.[1] ?? 0);
    if (named > 0 && this.held.has(named)) return;
    this.fetching.add(dictUrl);
    this.fetch(dictUrl, named)
      .catch((e: Error) => onError(new MoorClientError('DICTIONARY', `dictionary ${dictUrl} not fetched: ${e.message}`)))
      .finally(() => this.fetching.delete(dictUrl));
  }

  private async fetch(url: string, named: number): Promise<void> {
    const res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const id = dictIdOf(bytes);
    if (id === 0 || (named > 0 && id !== named)) throw new Error(`the answer is not zstd dictionary ${named || '(any)'}`);
    this.add(bytes);
    await this.o.onDictionary?.(id, bytes);
  }
}
