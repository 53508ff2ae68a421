/**
 * Hands free malloc memory back to the kernel after V8's major GCs. A major GC is when the
 * most native memory is freed at once: the backing stores of collected Buffers, closed raw
 * TCP sockets' handles, TLS state. glibc keeps those freed chunks resident, as holes in the
 * heap, so a worker's RSS only ever grows with the connections it once held
 * (docs/memory.md, round 4: raw TCP sessions that connect after others had come and gone
 * cost ~1 KB more each). malloc_trim(0) releases every whole free page
 * (native/src/heap_trim.rs).
 *
 * A trim walks every free chunk: under 1 ms on a soak worker's heap (12,000 sessions),
 * tens of ms on hundreds of MB. It runs on a libuv pool thread, but with MALLOC_ARENA_MAX=1 (the workers' default) the
 * event loop's own mallocs wait while it holds the arena. So it waits for a calm moment:
 * the loop less than half busy over the last 100 ms (not mid-broadcast or mid-storm,
 * when the heap is churning anyway), at most 30 s; one at a time, at most every 5 s.
 * `MOOR_HEAP_TRIM=0` turns it off (to measure what it saves).
 */
import { constants, type EventLoopUtilization, PerformanceObserver, performance } from 'node:perf_hooks';
import { nativeFunction } from '../protocol/native';

/** Major GCs come seconds apart under load; one trim per 5 s bounds the pool thread's share. */
const MIN_TRIM_INTERVAL_MS = 5_000;
/** How often a wanted trim looks at the event loop. */
const CALM_CHECK_MS = 100;
/** The loop's busy share over the last check below which it counts as calm. */
const CALM_UTILIZATION = 0.5;
/** A loop that never calms down still gets its trim this long after the GC. */
const MAX_WAIT_MS = 30_000;

/** Resolves to the seconds the trim took, negative when it released nothing. */
type Trim = () => Promise<number>;

export interface HeapTrimOptions {
  env?: NodeJS.ProcessEnv;
  minIntervalMs?: number;
  /** After each trim: how long it held the heap, and whether it returned memory. */
  onTrim?: (seconds: number, released: boolean) => void;
}

export interface HeapTrimmer {
  /** Trims done (for tests). */
  readonly trims: () => number;
  stop(): void;
}

/**
 * Starts trimming after every major GC. A no-op (trims stays 0) without the native module,
 * off Linux, or with MOOR_HEAP_TRIM=0: nothing else depends on it.
 */
export function trimHeapAfterMajorGc(opts: HeapTrimOptions = {}): HeapTrimmer {
  const { env = process.env, minIntervalMs = MIN_TRIM_INTERVAL_MS, onTrim = () => {} } = opts;
  let done = 0;
  const off: HeapTrimmer = { trims: () => done, stop: () => {} };
  if (env.MOOR_HEAP_TRIM === '0' || process.platform !== 'linux') return off;
  const trim = nativeFunction<Trim>('mallocTrim');
  if (typeof trim === 'string') return off;

  let running = false;
  let wantedSince = -1; // < 0: no trim wanted
  let last = Number.NEGATIVE_INFINITY;
  let elu: EventLoopUtilization = performance.eventLoopUtilization();
  let timer: NodeJS.Timeout | null = null;

  const check = (): void => {
    const now = performance.now();
    const busy = performance.eventLoopUtilization(elu).utilization;
    elu = performance.eventLoopUtilization();
    if (running || wantedSince < 0) return;
    if (now - last < minIntervalMs) return;
    if (busy >= CALM_UTILIZATION && now - wantedSince < MAX_WAIT_MS) return;
    running = true;
    wantedSince = -1;
    last = now;
    stopChecking();
    trim().then(
      (s) => {
        running = false;
        done++;
        onTrim(Math.abs(s), s > 0);
      },
      () => {
        running = false;
      },
    );
  };
  const stopChecking = (): void => {
    if (timer) clearInterval(timer);
    timer = null;
  };
  const want = (): void => {
    if (wantedSince < 0) wantedSince = performance.now();
    if (timer) return;
    elu = performance.eventLoopUtilization();
    timer = setInterval(check, CALM_CHECK_MS);
    timer.unref();
  };
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) return want();
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  return {
    trims: () => done,
    stop: () => {
      obs.disconnect();
      stopChecking();
      wantedSince = -1;
    },
  };
}
