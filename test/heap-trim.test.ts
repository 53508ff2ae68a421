/**
 * After a major GC the worker hands free malloc pages back to the kernel
 * (src/util/heap-trim.ts, native/src/heap_trim.rs), at most once per interval, and not at
 * all with MOOR_HEAP_TRIM=0.
 */
import * as assert from 'node:assert/strict';
import { Session } from 'node:inspector';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type HeapTrimmer, type HeapTrimOptions, trimHeapAfterMajorGc } from '../src/util/heap-trim';
import { until } from './helpers/until';

/** The tests' environment, not the process's: MOOR_HEAP_TRIM=0 in it must not skip them. */
const env = {};

const onGlibc = process.platform === 'linux' && Boolean((process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime);

/** A full GC, as `--expose-gc`'s gc() would do, without the flag. */
async function fullGc(): Promise<void> {
  const s = new Session();
  s.connect();
  try {
    await new Promise<void>((resolve, reject) => s.post('HeapProfiler.collectGarbage', (err) => (err ? reject(err) : resolve())));
  } finally {
    s.disconnect();
  }
}

const rss = (): number => process.memoryUsage.rss();

/** Runs `fn` with a trimmer started with `opts`, stopped afterwards whatever happens. */
async function withTrimmer(opts: HeapTrimOptions, fn: (t: HeapTrimmer) => Promise<void>): Promise<void> {
  const trimmer = trimHeapAfterMajorGc(opts);
  try {
    await fn(trimmer);
  } finally {
    trimmer.stop();
  }
}

it('a major GC is followed by a trim that hands the freed heap pages back', { skip: !onGlibc }, async () => {
  // 64 MB of 1 KB buffers (each its own malloc chunk); every 16th stays, so the freed
  // ones leave holes of whole pages that glibc would otherwise keep resident.
  let bufs: Buffer[] = Array.from({ length: 64_000 }, () => Buffer.allocUnsafeSlow(1000).fill(1));
  bufs = bufs.filter((_, i) => i % 16 === 0);
  await fullGc(); // frees them; what glibc keeps of them stays resident
  await sleep(100);
  const held = rss();
  const trims: Array<{ s: number; released: boolean }> = [];
  await withTrimmer({ env, minIntervalMs: 300, onTrim: (s, released) => trims.push({ s, released }) }, async (trimmer) => {
    await fullGc(); // nothing left to collect: only the trim can lower RSS now
    await until(() => trimmer.trims() > 0, 2000, 'a trim after the GC', 10);
    const freed = held - rss();
    assert.ok(freed > 30e6, `RSS fell by ${(freed / 1e6).toFixed(1)} MB of the ~60 MB freed`);
    assert.equal(bufs.length, 4000);
    assert.equal(trims.length, 1);
    assert.ok(trims[0].released && trims[0].s > 0 && trims[0].s < 1, JSON.stringify(trims));
  });
});

it('trims at most once per interval: a GC inside it gets its trim when it ends', { skip: !onGlibc }, async () => {
  await withTrimmer({ env, minIntervalMs: 600 }, async (trimmer) => {
    await fullGc();
    await until(() => trimmer.trims() === 1, 2000, 'the first GC to be trimmed at once', 10);
    await fullGc();
    await sleep(150);
    assert.equal(trimmer.trims(), 1, 'not again within the interval');
    await until(() => trimmer.trims() === 2, 2000, 'a trim once the interval has passed', 10);
  });
});

it('waits while the event loop is busy (a broadcast, a storm) and trims once it calms down', { skip: !onGlibc }, async () => {
  await withTrimmer({ env, minIntervalMs: 0 }, async (trimmer) => {
    await fullGc();
    // Busy: 40 ms of work at a time, back to back, for 1.5 s.
    const end = Date.now() + 1500;
    await new Promise<void>((resolve) => {
      const spin = (): void => {
        const until = Date.now() + 40;
        while (Date.now() < until);
        if (Date.now() < end) setImmediate(spin);
        else resolve();
      };
      spin();
    });
    assert.equal(trimmer.trims(), 0, 'no trim while the loop was busy');
    await until(() => trimmer.trims() === 1, 2000, 'the trim once the loop is calm', 10);
  });
});

it('MOOR_HEAP_TRIM=0 turns it off', async () => {
  await withTrimmer({ env: { MOOR_HEAP_TRIM: '0' }, minIntervalMs: 10 }, async (trimmer) => {
    await fullGc();
    await sleep(200);
    assert.equal(trimmer.trims(), 0);
  });
});
