/** The soak clients' receive coalescing (bench/soak/coalesce.ts), on a fake clock. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type CoalescerClock, RATE_WINDOW_MS, ReceiveCoalescer, TRICKLE_BATCH, TRICKLE_READS_PER_MS } from '../bench/soak/coalesce';

/** A fake event loop: `iterate(reads)` is one loop iteration reading `reads` sockets. */
function fakeLoop(napUs: number) {
  const loop = { t: 0, napped: [] as number[], wakes: 0 };
  let pending: (() => void) | null = null;
  const clock: CoalescerClock = {
    now: () => loop.t,
    afterIo: (fn) => {
      assert.equal(pending, null, 'one end-of-iteration callback per loop iteration');
      pending = fn;
    },
    nap: (ms) => {
      loop.napped.push(ms);
      loop.t += ms;
    },
  };
  const c = new ReceiveCoalescer(napUs, clock);
  const iterate = (reads: number): void => {
    loop.wakes++;
    for (let k = 0; k < reads; k++) c.read();
    const fn = pending as (() => void) | null;
    pending = null;
    fn?.();
  };
  return { loop, c, iterate };
}

/** `iterations` loop iterations of `reads` reads each, `gapMs` apart (naps move the clock too). */
function steady(napUs: number, iterations: number, reads: number, gapMs: number) {
  const f = fakeLoop(napUs);
  for (let i = 0; i < iterations; i++) {
    f.iterate(reads);
    f.loop.t += gapMs;
  }
  return { naps: f.c.naps, napped: f.loop.napped };
}

describe('soak client receive coalescing', () => {
  test('a trickle of small batches above the rate naps napUs once the first window is measured', () => {
    // 2 reads every 0.1 ms = 20 reads per ms, well above the threshold.
    const r = steady(1000, 1000, 2, 0.1);
    assert.ok(r.naps > 0 && r.naps < 1000, `${r.naps} naps: none before the rate is known (the first window)`);
    assert.ok(r.napped.every((ms) => ms === 1), 'each nap is napUs / 1000 ms');
  });

  test('quiet traffic (under the rate) never naps', () => {
    const rate = TRICKLE_READS_PER_MS / 2;
    assert.equal(steady(1000, 2000, 1, 1 / rate).naps, 0);
  });

  test('large batches never nap, whatever the rate', () => {
    assert.equal(steady(1000, 500, TRICKLE_BATCH, 0.05).naps, 0);
  });

  test('napUs 0 never naps', () => {
    assert.equal(steady(0, 1000, 2, 0.1).naps, 0);
  });

  test('naps turn a trickle into batches: the loop wakes far less often for the same reads', () => {
    // A sender at 20 messages per ms; the loop wakes whenever something is unread.
    const perMs = 20;
    const totalMs = 200;
    const f = fakeLoop(1000);
    let read = 0;
    while (f.loop.t < totalMs) {
      const batch = Math.floor(f.loop.t * perMs) - read;
      if (batch > 0) {
        f.iterate(batch);
        read += batch;
      }
      f.loop.t += 1 / perMs;
    }
    assert.ok(read >= (totalMs - 1) * perMs, 'every message read');
    assert.ok(f.loop.wakes < read / 4, `${f.loop.wakes} wake-ups for ${read} reads`);
    assert.ok(f.c.naps > (totalMs - RATE_WINDOW_MS) / 2, `${f.c.naps} naps`);
  });
});
