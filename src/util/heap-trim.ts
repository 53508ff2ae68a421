/**
 * Hands free malloc memory back to the kernel after V8's major GCs. A major GC is when the
 * most native memory is freed at once: the backing stores of collected Buffers, closed raw
 * TCP sockets' handles, TLS state. glibc keeps those freed chunks resident, as holes in the
 * heap and in the threads' arenas, so a worker's RSS only ever grows with the connections
 * it once held (docs/memory.md: a second ramp of raw TCP sessions cost ~1 KB more per
 * session than the first, most of it free fragments). malloc_trim(0) releases every whole
 * free page (native/src/heap_trim.rs). It walks every free chunk, up to tens of ms on a
 * large heap, so it runs on a libuv pool thread, one at a time, at most every
 * MIN_TRIM_INTERVAL_MS: a major GC inside that gap gets its trim when the gap ends.
 * `MOOR_HEAP_TRIM=0` turns it off (to measure what it saves). With MALLOC_ARENA_MAX=1 (the
 * workers' default) the event loop's own mallocs wait while a trim holds the arena, so
 * each trim's duration is a metric (moor_heap_trim_seconds).
 */
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { nativeFunction } from '../protocol/native';

/** Major GCs come seconds apart under load; one trim per 5 s bounds the pool thread's share. */
export const MIN_TRIM_INTERVAL_MS = 5_000;

type Trim = () => Promise<boolean>;

export interface HeapTrimmer {
  /** Trims done (for tests and metrics). */
  readonly trims: () => number;
  stop(): void;
}

/**
 * Starts trimming after every major GC. A no-op (trims stays 0) without the native module,
 * off glibc, or with MOOR_HEAP_TRIM=0: nothing else depends on it.
 */
export function trimHeapAfterMajorGc(env: NodeJS.ProcessEnv = process.env, minIntervalMs = MIN_TRIM_INTERVAL_MS, onTrim: (seconds: number) => void = () => {}): HeapTrimmer {
  let done = 0;
  const off: HeapTrimmer = { trims: () => done, stop: () => {} };
  if (env.MOOR_HEAP_TRIM === '0' || process.platform !== 'linux') return off;
  const trim = nativeFunction<Trim>('mallocTrim');
  if (typeof trim === 'string') return off;

  let running = false;
  let wanted = false;
  let last = Number.NEGATIVE_INFINITY;
  let timer: NodeJS.Timeout | null = null;
  const run = (): void => {
    timer = null;
    const wait = last + minIntervalMs - performance.now();
    if (wait > 0) {
      timer = setTimeout(run, wait);
      timer.unref();
      return;
    }
    running = true;
    wanted = false;
    const start = performance.now();
    last = start;
    trim()
      .catch(() => false)
      .finally(() => {
        onTrim((performance.now() - start) / 1000);
        done++;
        running = false;
        if (wanted) request();
      });
  };
  const request = (): void => {
    if (running) wanted = true;
    else if (timer === null) run();
  };
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) return request();
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  return {
    trims: () => done,
    stop: () => {
      obs.disconnect();
      if (timer) clearTimeout(timer);
      timer = null;
      wanted = false;
    },
  };
}
