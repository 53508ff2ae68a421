/**
 * Training and installing dictionaries, and retiring old ones.
 *
 * Training gathers every worker's sample ring from the store and runs zdict in a
 * piscina thread (train-task.ts), never on the event loop. The dictionary keeps the id
 * zdict derives from its content (so two deployments never give different bytes one id:
 * a device may meet both), unless this store ever had that id: a device that still
 * holds a deleted dictionary must never meet another one under its id; then the id is
 * rehashed until free. Its bytes are stored, then it is appended to the index.
 * (Sequential ids below 65,536 would save 2 header bytes per frame, ~1%, at the price of
 * colliding across deployments.)
 *
 * Versions: the newest `dict_keep` are active (offered at HELLO); older ones are
 * retired at the index generation that pushed them out. A retired dictionary is deleted
 * only when every live worker reports (docs.ts InUse) that it has applied that
 * generation, so it no longer gives the dictionary to new sessions, and that none of
 * its connected devices still uses it.
 */
import path from 'node:path';
import { Piscina } from 'piscina';
import type { Config } from '../config/types';
import { dictIdOf, setDictId } from './codec';
import { type DictIndex, deleteDict, dictKeyUsed, type MetaStore, putDict, readIndex, readInUse, readSamples, readWorkers, writeIndex } from './docs';
import { decodeSamples } from './sampler';
import type { TrainResult, TrainTask } from './train-task';

/** zstd reserves dictionary ids below 32,768, and zdict keeps them below 2^31. */
const MIN_ID = 32_768;
const ID_SPAN = 2 ** 31 - MIN_ID;
/** Training input cap: zdict's time grows with it, and ~100x the dictionary is plenty. */
const MAX_INPUT_BYTES = 64 * 1024 * 1024;
/** A worker whose in-use report is older than this is taken for dead. */
const MIN_STALE_MS = 60_000;

export class TrainError extends Error {
  constructor(
    readonly code: 'TOO_FEW_SAMPLES' | 'TRAINING_FAILED',
    message: string,
  ) {
    super(message);
  }
}

export interface TrainOutcome {
  id: number;
  bytes: number;
  samples: number;
  held_out: number;
  /** zstd ratio (before / after) on the held-out samples, with the dictionary and without. */
  ratio_dict: number;
  ratio_plain: number;
  /** Dictionaries retired and deleted by this installation. */
  retired: number[];
  deleted: number[];
}

export interface TrainLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

type CompressionConfig = Config['compression'];

export class DictTrainer {
  private pool: Piscina | null = null;
  private running: Promise<TrainOutcome> | null = null;

  constructor(
    private readonly store: MetaStore,
    private readonly config: () => CompressionConfig,
    private readonly log: TrainLog,
    private readonly now: () => number = Date.now,
  ) {}

  /** Trains and installs one dictionary; a call during a training shares its outcome. */
  train(maxBytes?: number): Promise<TrainOutcome> {
    this.running ??= this.run(maxBytes ?? this.config().dict_bytes).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async run(maxBytes: number): Promise<TrainOutcome> {
    const c = this.config();
    const samples = await this.gather(maxBytes);
    if (samples.length < c.dict_min_samples) {
      throw new TrainError('TOO_FEW_SAMPLES', `${samples.length} samples collected; training needs at least ${c.dict_min_samples} (compression.dict_min_samples)`);
    }
    const sizes = Uint32Array.from(samples, (s) => s.length);
    const task: TrainTask = { samples: Buffer.concat(samples), sizes, maxSize: maxBytes, level: c.zstd_level };
    this.pool ??= new Piscina({ filename: path.join(__dirname, 'train-task.js'), minThreads: 0, maxThreads: 1, idleTimeout: 30_000 });
    let r: TrainResult;
    try {
      r = (await this.pool.run(task, { name: 'train' })) as TrainResult;
    } catch (err) {
      throw new TrainError('TRAINING_FAILED', `zdict could not train on ${samples.length} samples: ${(err as Error).message}`);
    }
    const dict = Buffer.from(r.dict);
    const outcome = await this.install(dict, r.trained + r.heldOut);
    const result: TrainOutcome = {
      ...outcome,
      held_out: r.heldOut,
      ratio_dict: round(r.before / Math.max(1, r.withDict)),
      ratio_plain: round(r.before / Math.max(1, r.without)),
    };
    this.log.info({ ...result }, 'dictionary trained');
    return result;
  }

  /** Every worker's samples, evenly thinned to the input cap. */
  private async gather(maxBytes: number): Promise<Buffer[]> {
    const names = await readWorkers(this.store);
    const all: Buffer[] = [];
    for (const name of names) all.push(...decodeSamples(await readSamples(this.store, name)));
    const total = all.reduce((n, s) => n + s.length, 0);
    const cap = Math.min(MAX_INPUT_BYTES, Math.max(8 * 1024 * 1024, 200 * maxBytes));
    if (total <= cap) return all;
    const keep = cap / total;
    return all.filter((_, i) => Math.floor((i + 1) * keep) > Math.floor(i * keep));
  }

  /** Stores `dict` under a fresh id and appends it to the index (retiring and deleting old versions). */
  async install(dict: Buffer, samples: number): Promise<Omit<TrainOutcome, 'held_out' | 'ratio_dict' | 'ratio_plain'>> {
    let id = dictIdOf(dict);
    if (id === 0) throw new TrainError('TRAINING_FAILED', 'zdict returned no zstd dictionary');
    const index = await readIndex(this.store);
    // Never reuse an id: deleted dictionaries leave an empty value behind.
    while (index.dicts.some((d) => d.id === id) || (await dictKeyUsed(this.store, id))) id = MIN_ID + ((Math.imul(id, 2_654_435_761) >>> 0) % ID_SPAN);
    setDictId(dict, id);
    await putDict(this.store, id, dict);
    const deleted = await this.deletable(index);
    const next: DictIndex = { gen: index.gen + 1, lastId: id, dicts: index.dicts.filter((d) => !deleted.includes(d.id)) };
    next.dicts.push({ id, bytes: dict.length, at: this.now(), samples, retired: 0 });
    const retired = retireBeyond(next, this.config().dict_keep);
    await writeIndex(this.store, next);
    for (const d of deleted) await deleteDict(this.store, d);
    return { id, bytes: dict.length, samples, retired, deleted };
  }

  /** Deletes retired dictionaries no live worker may still use; returns their ids. */
  async collect(): Promise<number[]> {
    const index = await readIndex(this.store);
    const deleted = await this.deletable(index);
    if (deleted.length === 0) return deleted;
    // Re-read: the window for a concurrent index write stays a few milliseconds.
    const fresh = await readIndex(this.store);
    await writeIndex(this.store, { ...fresh, gen: fresh.gen + 1, dicts: fresh.dicts.filter((d) => !deleted.includes(d.id)) });
    for (const d of deleted) await deleteDict(this.store, d);
    this.log.info({ deleted }, 'retired dictionaries deleted (no connected device uses them)');
    return deleted;
  }

  private async deletable(index: DictIndex): Promise<number[]> {
    const retired = index.dicts.filter((d) => d.retired !== 0);
    if (retired.length === 0) return [];
    const staleMs = Math.max(MIN_STALE_MS, 10 * this.config().dict_poll_ms);
    const now = this.now();
    const reports = (await Promise.all((await readWorkers(this.store)).map((n) => readInUse(this.store, n)))).filter((r) => r !== null && now - r.at < staleMs);
    return retired.filter((d) => reports.every((r) => r !== null && r.gen >= d.retired && !r.ids.includes(d.id))).map((d) => d.id);
  }

  close(): void {
    void this.pool?.destroy();
    this.pool = null;
  }
}

/** Retires active dictionaries beyond the newest `keep` at `index.gen`; returns their ids. */
export function retireBeyond(index: DictIndex, keep: number): number[] {
  const out: number[] = [];
  let active = 0;
  for (let i = index.dicts.length - 1; i >= 0; i--) {
    const d = index.dicts[i];
    if (d.retired !== 0) continue;
    if (++active > keep) {
      d.retired = index.gen;
      out.push(d.id);
    }
  }
  return out;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
