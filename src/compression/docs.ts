/**
 * What compression keeps in the store (Store.getMeta/putMeta, so every engine works
 * and a shared engine shares it fleet-wide):
 *
 *   compression/index             the dictionary index: versions oldest first (JSON)
 *   compression/dict/<id>         a dictionary's bytes (empty once deleted)
 *   compression/workers           names (<node.id>.<worker>) of every sampling worker
 *   compression/samples/<name>    that worker's sample ring (binary, see sampler.ts)
 *   compression/inuse/<name>      the dictionaries its connected devices use (JSON)
 *
 * Meta has no delete: a deleted dictionary is overwritten with zero bytes.
 */
import type { Store } from '../store/store';

export type MetaStore = Pick<Store, 'getMeta' | 'putMeta'>;

export const INDEX_KEY = 'compression/index';
export const WORKERS_KEY = 'compression/workers';

export interface DictInfo {
  id: number;
  /** Dictionary size, bytes. */
  bytes: number;
  /** When it was trained (ms). */
  at: number;
  samples: number;
  /** 0 while active (offered to devices); else the index generation that retired it. */
  retired: number;
}

export interface DictIndex {
  /** Bumped on every write: in-use reports say which generation they reflect. */
  gen: number;
  /** The last dictionary id given out. */
  lastId: number;
  /** Oldest first: the last active one is the newest. */
  dicts: DictInfo[];
}

/** What one worker's connected devices use, as of index generation `gen`. */
export interface InUse {
  at: number;
  gen: number;
  ids: number[];
}

const dictKey = (id: number): string => `compression/dict/${id}`;
const samplesKey = (name: string): string => `compression/samples/${name}`;
const inUseKey = (name: string): string => `compression/inuse/${name}`;

function parseJson(raw: Buffer | null): unknown {
  if (raw === null || raw.length === 0) return null;
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    return null;
  }
}

const isId = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= 0xffffffff;

export async function readIndex(store: MetaStore): Promise<DictIndex> {
  const doc = parseJson(await store.getMeta(INDEX_KEY)) as Partial<DictIndex> | null;
  const dicts = Array.isArray(doc?.dicts) ? doc.dicts.filter((d): d is DictInfo => d !== null && typeof d === 'object' && isId(d.id)) : [];
  return { gen: typeof doc?.gen === 'number' ? doc.gen : 0, lastId: typeof doc?.lastId === 'number' ? doc.lastId : 0, dicts };
}

export function writeIndex(store: MetaStore, index: DictIndex): Promise<void> {
  return store.putMeta(INDEX_KEY, Buffer.from(JSON.stringify(index)));
}

/** A dictionary's bytes; null when unknown or deleted. */
export async function readDict(store: MetaStore, id: number): Promise<Buffer | null> {
  const b = await store.getMeta(dictKey(id));
  return b !== null && b.length > 0 ? b : null;
}

export async function dictKeyUsed(store: MetaStore, id: number): Promise<boolean> {
  return (await store.getMeta(dictKey(id))) !== null;
}

export function putDict(store: MetaStore, id: number, bytes: Uint8Array): Promise<void> {
  return store.putMeta(dictKey(id), Buffer.from(bytes));
}

export function deleteDict(store: MetaStore, id: number): Promise<void> {
  return store.putMeta(dictKey(id), Buffer.alloc(0));
}

export async function readWorkers(store: MetaStore): Promise<string[]> {
  const doc = parseJson(await store.getMeta(WORKERS_KEY));
  return Array.isArray(doc) ? doc.filter((n): n is string => typeof n === 'string') : [];
}

/** Adds `name` to the worker list (read-merge-write; a lost race is repaired on the next call). */
export async function registerWorker(store: MetaStore, name: string): Promise<void> {
  const names = await readWorkers(store);
  if (names.includes(name)) return;
  names.push(name);
  await store.putMeta(WORKERS_KEY, Buffer.from(JSON.stringify(names)));
}

export function readSamples(store: MetaStore, name: string): Promise<Buffer | null> {
  return store.getMeta(samplesKey(name));
}

export function writeSamples(store: MetaStore, name: string, ring: Buffer): Promise<void> {
  return store.putMeta(samplesKey(name), ring);
}

export async function readInUse(store: MetaStore, name: string): Promise<InUse | null> {
  const doc = parseJson(await store.getMeta(inUseKey(name))) as Partial<InUse> | null;
  if (doc === null || typeof doc.at !== 'number' || typeof doc.gen !== 'number' || !Array.isArray(doc.ids)) return null;
  return { at: doc.at, gen: doc.gen, ids: doc.ids.filter(isId) };
}

export function writeInUse(store: MetaStore, name: string, doc: InUse): Promise<void> {
  return store.putMeta(inUseKey(name), Buffer.from(JSON.stringify(doc)));
}
