/** The soak clients' receive coalescing (bench/soak/coalesce.ts), on a fake clock. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type CoalescerClock, RATE_WINDOW_MS, ReceiveCoalescer, TRICKLE_BATCH, TRICKLE_READS_PER_MS } from '../bench/soak/coalesce';

/** A loop on a fake clock: each iteration reads `reads` sockets, then the clock moves `gapMs` (plus any nap). */
function run(napUs: number, iterations: number, reads: number, gapMs: number): { naps: number; napped: number[]; elapsed: number } {
  let t = 0;
  let pending: (() => void) | null = null;
  const napped: number[] = [];
  const clock: CoalescerClock = {
    now: () => t,
    afterIo: (fn) => {
      assert.equal(pending, null, 'one end-of-iteration callback per loop iteration');
      pending = fn;
    },
    nap: (ms) => {
      napped.push(ms);
      t += ms;
    },
  };
  const c = new ReceiveCoalescer(napUs, clock);
  for (let i = 0; i < iterations; i++) {
    for (let k = 0; k < reads; k++) c.read();
    const fn = pending as (() => void) | null;
    pending = null;
    fn?.();
    t += gapMs;
  }
  return { naps: c.naps, napped, elapsed: t };
}

describe('soak client receive coalescing', () => {
  test('a trickle of small batches above the rate naps napUs once the first window is measured', () => {
    // 2 reads every 0.1 ms = 20 reads per ms, well above the threshold.
    const r = run(1000, 1000, 2, 0.1);
    assert.ok(r.naps > 0);
    assert.ok(r.napped.every((ms) => ms === 1), 'each nap is napUs / 1000 ms');
    // No nap before the rate is known (the first window).
    assert.ok(r.naps < 1000);
  });

  test('quiet traffic (under the rate) never naps', () => {
    const rate = TRICKLE_READS_PER_MS / 2;
    assert.equal(run(1000, 2000, 1, 1 / rate).naps, 0);
  });

  test('large batches never nap, whatever the rate', () => {
    assert.equal(run(1000, 500, TRICKLE_BATCH, 0.05).naps, 0);
  });

  test('napUs 0 never naps', () => {
    assert.equal(run(0, 1000, 2, 0.1).naps, 0);
  });

  test('naps turn a trickle into batches: the loop wakes far less often for the same reads', () => {
    // A sender at 20 reads per ms. Without naps: one iteration per read.
    // With naps, what arrived during a nap is read in the next iteration.
    const perMs = 20;
    const totalMs = 200;
    let t = 0;
    let arrived = 0;
    let read = 0;
    let wakes = 0;
    let pending: (() => void) | null = null;
    const c = new ReceiveCoalescer(1000, {
      now: () => t,
      afterIo: (fn) => {
        pending = fn;
      },
      nap: (ms) => {
        t += ms;
      },
    });
    while (t < totalMs) {
      arrived = Math.floor(t * perMs);
      const batch = arrived - read;
      if (batch > 0) {
        wakes++;
        for (let k = 0; k < batch; k++) c.read();
        read += batch;
        const fn = pending as (() => void) | null;
        pending = null;
        fn?.();
      }
      t += 1 / perMs;
    }
    assert.ok(read >= (totalMs - 1) * perMs, 'every message read');
    assert.ok(wakes < read / 4, `${wakes} wake-ups for ${read} reads`);
    assert.ok(c.naps > (totalMs - RATE_WINDOW_MS) / 2 / 1, `${c.naps} naps`);
  });
});
