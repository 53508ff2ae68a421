/**
 * Compression in one worker's gateway (README "Compression"): negotiation at HELLO,
 * the WELCOME fields, per-frame encoding of PUSH payloads, inflating compressed device
 * frames, sampling, the dictionary table and its upkeep.
 *
 * A session keeps one small integer, `Session.cx`:
 *   bits 0-1  the codecs it may receive (ACCEPTS_LZ4, ACCEPTS_ZSTD): what the device
 *             listed in HELLO and the gateway offers
 *   bits 2-9  its dictionary's slot in the worker's DictTable (0 = none)
 * Sessions with the same cx get the same bytes, so fan-out encodes once per cx value
 * present on the worker (a "variant"), and a session subscribes to topic keys carrying
 * its cx (`topic()`); cx 0 keeps the plain keys.
 */

import { hostPort } from '../config/hosts';
import { type PushTemplate, pushPayload } from '../gateway/frames';
import type { Gateway } from '../gateway/gateway';
import type { Session } from '../gateway/session';
import { Op } from '../mesh/ops';
import { ErrorCode, FrameType } from '../protocol/constants';
import { encodeFrame, headerSize, writeHeader } from '../protocol/encoder';
import { Codec, type CompressionNative, compressionCodec, Deflater, InflateFault, Inflater, inflateFaultText } from './codec';
import { DictTable } from './dicts';
import { readDict, readIndex, readSamples, registerWorker, writeInUse, writeSamples } from './docs';
import { compressionMetrics, OutCodec, Skip } from './metrics';
import { ACCEPTS_LZ4, ACCEPTS_ZSTD, LagMonitor, LagPolicy } from './policy';
import { SampleRing } from './sampler';
import { DictTrainer, type TrainOutcome } from './train';

const SLOT_SHIFT = 2;
const ACCEPTS_MASK = 3;
/** The scheduled-training check runs at most this often. */
const SCHEDULE_TICK_MS = 60_000;
const MAX_TOPIC_KEYS = 4096;

/** The WELCOME fields compression decides. */
export interface WelcomeCompression {
  codec: number;
  dictId: number;
  dictUrl: string;
}

export class GatewayCompression {
  readonly native: CompressionNative | null;
  /** Codec bits the gateway offers (compression.codecs), 0 without the native module. */
  private readonly offered: number;
  readonly table: DictTable | null;
  readonly sampler: SampleRing;
  readonly policy: LagPolicy;
  readonly trainer: DictTrainer;
  private readonly monitor: LagMonitor;
  private readonly deflater: Deflater | null;
  private readonly inflater: Inflater | null;
  private readonly metrics = compressionMetrics();
  /** Sessions per cx value (cx 0 not counted). */
  private readonly variants = new Map<number, number>();
  /** Variant topic keys by cx and plain key, so TCP sessions share the strings. */
  private readonly topicKeys = new Map<number, Map<string, string>>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly name: string;
  private polling: Promise<void> | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private lastGen = -1;

  constructor(private readonly gw: Gateway) {
    const { config, workerIndex, store } = gw.deps;
    const log = gw.deps.log.child({ component: 'compression' });
    this.name = `${config.node.id}.${workerIndex}`;
    this.native = compressionCodec();
    const c = config.compression;
    this.offered = this.native === null ? 0 : (c.codecs.includes('lz4') ? ACCEPTS_LZ4 : 0) | (c.codecs.includes('zstd') ? ACCEPTS_ZSTD : 0);
    this.table = this.native ? new DictTable(this.native, c.zstd_level, log) : null;
    this.deflater = this.native ? new Deflater(this.native) : null;
    this.inflater = this.native ? new Inflater(this.native, config.limits.max_frame) : null;
    this.sampler = new SampleRing(c.sample_bytes, () => (this.native ? config.compression.sample_one_in : 0));
    this.policy = new LagPolicy(() => config.compression, Date.now());
    this.monitor = new LagMonitor((lag, now) => {
      if (this.policy.observe(lag, now)) {
        this.metrics.setPolicy(this.policy.state);
        log.info({ state: this.policy.state, lag_ms: Math.round(lag) }, 'compression policy changed');
      }
    });
    this.trainer = new DictTrainer(store, () => config.compression, log);
  }

  private get log() {
    return this.gw.deps.log;
  }

  /** Loads the dictionaries and this worker's samples; starts the upkeep timers. */
  async start(): Promise<void> {
    const { store, config, workerIndex } = this.gw.deps;
    const c = config.compression;
    if (this.native === null) return;
    try {
      await registerWorker(store, this.name);
      this.sampler.load(await readSamples(store, this.name));
      await this.poll();
    } catch (err) {
      this.log.warn({ err }, 'compression: dictionaries not loaded from the store; starting without');
    }
    const every = (ms: number, fn: () => unknown): void => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(c.dict_poll_ms, () => void this.poll());
    every(c.sample_flush_ms, () => void this.flushSamples());
    if (workerIndex === 0) every(Math.min(SCHEDULE_TICK_MS, c.dict_poll_ms), () => void this.upkeep());
    this.monitor.start();
  }

  stop(): void {
    for (const t of this.timers.splice(0)) clearInterval(t);
    this.monitor.stop();
    this.trainer.close();
    void this.flushSamples();
  }

  // ---- sessions ----

  /** HELLO: what the session may receive (Session.cx). Called before the token is verified. */
  hello(s: Session, codecs: readonly number[], dictIds: readonly number[]): void {
    let accepts = 0;
    for (const c of codecs) accepts |= c === Codec.LZ4 ? ACCEPTS_LZ4 : c === Codec.ZSTD ? ACCEPTS_ZSTD : 0;
    accepts &= this.offered;
    let slot = 0;
    if (accepts & ACCEPTS_ZSTD && this.table) {
      const e = this.table.negotiate(dictIds);
      if (e) {
        slot = e.slot;
        this.table.acquire(slot);
      }
    }
    const cx = accepts | (slot << SLOT_SHIFT);
    s.cx = cx;
    if (cx !== 0) this.variants.set(cx, (this.variants.get(cx) ?? 0) + 1);
  }

  /** WELCOME: codec, dict_id (the newest both sides hold) and dict_url (the newest the device lacks). */
  welcome(s: Session, dictIds: readonly number[]): WelcomeCompression {
    const accepts = s.cx & ACCEPTS_MASK;
    if (!(accepts & ACCEPTS_ZSTD) || this.table === null) return { codec: accepts & ACCEPTS_LZ4 ? Codec.LZ4 : Codec.IDENTITY, dictId: 0, dictUrl: '' };
    const e = this.table.slot(s.cx >> SLOT_SHIFT);
    const newest = this.table.newest;
    this.metrics.negotiated.inc(e === null ? 'none' : e === newest ? 'newest' : 'older');
    const lacks = newest !== null && !dictIds.includes(newest.id);
    return { codec: Codec.ZSTD, dictId: e?.id ?? 0, dictUrl: lacks ? this.dictUrl(newest.id) : '' };
  }

  closed(s: Session): void {
    const cx = s.cx;
    if (cx === 0) return;
    s.cx = 0;
    const n = (this.variants.get(cx) ?? 1) - 1;
    if (n > 0) this.variants.set(cx, n);
    else this.variants.delete(cx);
    if (cx >> SLOT_SHIFT) this.table?.release(cx >> SLOT_SHIFT);
  }

  /** The topic key a session subscribes to: the plain key for cx 0, else one per variant (strings shared). */
  topic(key: string, s: Session): string {
    if (s.cx === 0) return key;
    let byKey = this.topicKeys.get(s.cx);
    if (byKey === undefined) this.topicKeys.set(s.cx, (byKey = new Map()));
    let k = byKey.get(key);
    if (k === undefined) {
      if (byKey.size >= MAX_TOPIC_KEYS) byKey.clear();
      byKey.set(key, (k = variantKey(key, s.cx)));
    }
    return k;
  }

  dictUrl(id: number): string {
    const { config } = this.gw.deps;
    const base = config.compression.dict_url_base || `${config.tls.cert ? 'https' : 'http'}://${hostPort(config.node.advertise, config.ws.port)}`;
    return `${base.replace(/\/+$/, '')}/v1/dicts/${id}`;
  }

  // ---- frames to devices ----

  /**
   * A push the API accepted here, as a training sample (one in sample_one_in): its PUSH
   * payload as devices get it. Offered once per push by the worker whose API took it,
   * not by each worker that delivers it: a push reaching devices on W workers was W
   * near-identical samples.
   */
  sample(seq: number, t: () => PushTemplate): void {
    this.sampler.offer(() => pushPayload(seq, t()));
  }

  /** A PUSH frame for `s` (replay, SYNC and live delivery to one device). */
  pushFrame(s: Session, seq: number, t: PushTemplate): Buffer {
    return this.encode(s.cx, pushPayload(seq, t));
  }

  /** Frames of one transient push to many devices: one encode per cx value met. */
  transient(t: PushTemplate): (s: Session) => Buffer {
    let payload: Uint8Array | null = null;
    const memo = new Map<number, Buffer>();
    return (s) => {
      let f = memo.get(s.cx);
      if (f === undefined) {
        payload ??= pushPayload(0, t);
        f = this.encode(s.cx, payload);
        memo.set(s.cx, f);
      }
      return f;
    };
  }

  /** Topic fan-out: [topic key, frame] for the plain key and every variant on this worker. */
  fanout(key: string, t: PushTemplate): Array<[string, Buffer]> {
    const payload = pushPayload(0, t);
    const plain = encodeFrame(FrameType.PUSH, 0, 0, payload);
    const out: Array<[string, Buffer]> = [[key, plain]];
    const byEncoding = new Map<number, Buffer>();
    for (const cx of this.variants.keys()) {
      const e = this.encoding(cx, payload.length);
      let f = byEncoding.get(e);
      if (f === undefined) {
        f = e === 0 ? plain : this.encode(cx, payload);
        byEncoding.set(e, f);
      }
      out.push([variantKey(key, cx), f]);
    }
    return out;
  }

  /** What `encode(cx, ·)` would do with a payload of `length` bytes, as a number (0 = identity). */
  private encoding(cx: number, length: number): number {
    const codec = this.policy.codecFor(cx & ACCEPTS_MASK, length, this.gw.deps.config.compression.min_bytes);
    if (codec <= 0) return 0;
    return codec === Codec.ZSTD ? codec | (cx & ~ACCEPTS_MASK) : codec;
  }

  /** A PUSH frame of `payload` for sessions of value `cx`, compressed when the policy says and it pays. */
  private encode(cx: number, payload: Uint8Array): Buffer {
    const accepts = cx & ACCEPTS_MASK;
    if (accepts === 0 || this.deflater === null) return encodeFrame(FrameType.PUSH, 0, 0, payload);
    const c = this.gw.deps.config.compression;
    const codec = this.policy.codecFor(accepts, payload.length, c.min_bytes);
    if (codec <= 0) {
      this.metrics.skipped.values[codec === -1 ? Skip.BACK_OFF : Skip.SMALL] += 1;
      this.metrics.encoded(OutCodec.IDENTITY, payload.length, payload.length);
      return encodeFrame(FrameType.PUSH, 0, 0, payload);
    }
    const dict = codec === Codec.ZSTD ? (this.table?.slot(cx >> SLOT_SHIFT) ?? null) : null;
    let n = 0;
    try {
      n = this.deflater.deflate(codec as 1 | 2, payload, dict?.id ?? 0, c.zstd_level);
    } catch (err) {
      this.log.warn({ err }, 'compression failed; sent uncompressed');
    }
    if (n === 0) {
      this.metrics.skipped.values[Skip.NOT_SMALLER] += 1;
      this.metrics.encoded(OutCodec.IDENTITY, payload.length, payload.length);
      return encodeFrame(FrameType.PUSH, 0, 0, payload);
    }
    this.metrics.encoded(codec === Codec.LZ4 ? OutCodec.LZ4 : dict ? OutCodec.ZSTD_DICT : OutCodec.ZSTD, payload.length, n);
    const out = Buffer.allocUnsafe(headerSize(0, n) + n);
    const p = writeHeader(out, 0, FrameType.PUSH, codec, 0, n);
    this.deflater.out.copy(out, p, 0, n);
    return out;
  }

  // ---- frames from devices ----

  /**
   * The plain payload of a compressed device frame (a view valid until the next call),
   * or null after failing the session: a codec it did not negotiate is UNSUPPORTED, a
   * payload that would decompress past max_frame FRAME_TOO_LARGE, a corrupt one
   * PROTOCOL_ERROR.
   */
  inflate(s: Session, flags: number, payload: Buffer): Buffer | null {
    const codec = flags & ACCEPTS_MASK;
    const bit = codec === Codec.LZ4 ? ACCEPTS_LZ4 : ACCEPTS_ZSTD;
    if (this.inflater === null || !(s.cx & bit)) {
      this.gw.fail(s, ErrorCode.UNSUPPORTED, 'compressed frames need a codec negotiated in WELCOME');
      return null;
    }
    const r = this.inflater.inflate(codec, payload);
    if (typeof r !== 'number') {
      this.metrics.inflated.inc('ok');
      return r;
    }
    this.metrics.inflated.inc(r === InflateFault.TOO_LARGE ? 'too_large' : r === InflateFault.UNKNOWN_DICT ? 'unknown_dict' : 'corrupt');
    this.gw.fail(s, r === InflateFault.TOO_LARGE ? ErrorCode.FRAME_TOO_LARGE : ErrorCode.PROTOCOL_ERROR, inflateFaultText(r, codec, payload, this.native));
    return null;
  }

  // ---- dictionaries ----

  /** A dictionary's bytes for GET /v1/dicts/{id}: held ones from memory, else from the store. */
  async dictBytes(id: number): Promise<Buffer | null> {
    return this.table?.get(id)?.bytes ?? readDict(this.gw.deps.store, id);
  }

  /** Trains and installs a dictionary (API, CLI, schedule), then applies it here at once. */
  async train(maxBytes?: number): Promise<TrainOutcome & { url: string }> {
    // Every worker's samples so far, not only those its last timed flush wrote. A worker
    // that does not answer trains without its newest samples rather than failing the call.
    const { workerCount, workerIndex, fleet } = this.gw.deps;
    const others = (op: number) =>
      Promise.all(Array.from({ length: workerCount }, (_, w) => (w === workerIndex ? null : this.gw.mesh.request(w, op, {}).catch(() => null))));
    await Promise.all([this.flushSamples(), others(Op.SAMPLES)]);
    let out: TrainOutcome;
    try {
      out = await this.trainer.train(maxBytes);
    } catch (err) {
      this.metrics.trainings.inc((err as { code?: string }).code === 'TOO_FEW_SAMPLES' ? 'too_few_samples' : 'failed');
      throw err;
    }
    this.metrics.trainings.inc('ok');
    await this.poll();
    // The other workers hold it before the answer names it (a device given its URL may use
    // it on any worker); other nodes re-read the index when the bus tells them.
    await others(Op.DICTS);
    await fleet?.dictsChanged().catch((err) => this.log.warn({ err }, 'compression: other nodes not told of the new dictionary; they find it at their next poll'));
    return { ...out, url: this.dictUrl(out.id) };
  }

  /** Re-reads the index (applying a new generation) and reports the dictionaries in use. */
  poll(): Promise<void> {
    this.polling ??= this.pollOnce()
      .catch((err) => this.log.warn({ err }, 'compression: dictionary index not refreshed'))
      .finally(() => {
        this.polling = null;
      });
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    const { store } = this.gw.deps;
    if (this.table === null) return;
    const index = await readIndex(store);
    if (index.gen !== this.lastGen) {
      await this.table.apply(index, (id) => readDict(store, id));
      this.lastGen = index.gen;
      this.metrics.dicts.set(this.table.size);
    }
    // Every poll, not only at start: two workers registering at once can each write a list
    // without the other, and worker 0 deletes a retired dictionary that no *listed* worker
    // reports in use. Re-registering repairs a lost entry within one poll.
    await registerWorker(store, this.name);
    await writeInUse(store, this.name, { at: Date.now(), gen: this.table.gen, ids: this.table.inUse() });
  }

  /**
   * Writes this worker's samples to the store if any changed (timer, stop, and before a
   * training). Chained, so that a caller also waits for a write already under way: a
   * training must not read the store before a timed flush that began earlier has landed.
   */
  flushSamples(): Promise<void> {
    this.flushing = this.flushing.then(() => this.flushOnce());
    return this.flushing;
  }

  private async flushOnce(): Promise<void> {
    if (!this.sampler.dirty) return;
    try {
      await writeSamples(this.gw.deps.store, this.name, this.sampler.serialize());
    } catch (err) {
      this.sampler.dirty = true;
      this.log.warn({ err }, 'compression: samples not written to the store');
    }
  }

  /** Worker 0: deletes retired dictionaries nobody uses; trains when the schedule says. */
  private async upkeep(): Promise<void> {
    try {
      await this.trainer.collect();
      const every = this.gw.deps.config.compression.train_interval_ms;
      if (every <= 0) return;
      const index = await readIndex(this.gw.deps.store);
      const newest = index.dicts.at(-1);
      if (newest && Date.now() - newest.at < every) return;
      await this.train();
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'TOO_FEW_SAMPLES') this.log.info({ reason: (err as Error).message }, 'scheduled training skipped');
      else this.log.warn({ err }, 'compression upkeep failed');
    }
  }
}

export function variantKey(key: string, cx: number): string {
  // Plain keys start with 't:' or are '*': a 'z' prefix cannot collide with them.
  return cx === 0 ? key : `z${cx}:${key}`;
}
