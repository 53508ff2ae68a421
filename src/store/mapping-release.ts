/**
 * Keeps the store file out of each worker's RSS. lmdb reads through a shared, read-only
 * map of `data.mdb`; every page a worker's reads or write transactions touched stays
 * mapped, so with N workers the same file pages counted N times in the sum of their RSS
 * (the soak bench measured ~450 bytes per WebSocket session at 5 workers, docs/memory.md).
 * The pages are page cache either way: counted once for the machine, reclaimable when
 * clean. Every interval (10 s; `MOOR_STORE_RELEASE_MS`) each worker drops its page-table entries for the file
 * (native/src/mappings.rs, madvise MADV_DONTNEED); the next read of a page is a minor fault.
 */
import { realpathSync } from 'node:fs';
import { nativeFunction } from '../protocol/native';

/** Often enough that RSS tracks the process's own memory; a release costs well under 1 ms. */
export const DEFAULT_RELEASE_INTERVAL_MS = 10_000;

/**
 * `MOOR_STORE_RELEASE_MS` (100 ms to 1 h) overrides the interval: benches that read RSS
 * set it short so a reading need not wait 10 s. Anything else falls back to the default.
 */
export function releaseIntervalMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.MOOR_STORE_RELEASE_MS);
  return Number.isInteger(v) && v >= 100 && v <= 3_600_000 ? v : DEFAULT_RELEASE_INTERVAL_MS;
}

type Release = (path: string) => number;

/**
 * Starts releasing `file`'s mapped pages every `everyMs`; returns the stop function.
 * A no-op without the native module (the store still works; RSS just counts the file).
 */
export function releaseMappingEvery(file: string, everyMs = releaseIntervalMs()): () => void {
  const release = nativeFunction<Release>('releaseFileMapping');
  if (typeof release === 'string' || process.platform !== 'linux') return () => {};
  let real: string | null = null;
  const tick = (): void => {
    try {
      real ??= realpathSync(file); // /proc/self/maps names the file by its real path
      release(real);
    } catch {
      // Not created yet, or removed under us: nothing mapped to release.
    }
  };
  const timer = setInterval(tick, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
