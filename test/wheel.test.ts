/**
 * The timing wheel (src/gateway/wheel.ts) on a fake clock: nodes fire never early and
 * at most 1.25 ticks late, across revolutions and reschedules, and keep their deadline
 * as a small integer (no boxed double per session, docs/memory.md).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TimingWheel, type WheelNode } from '../src/gateway/wheel';

interface Node extends WheelNode {
  id: number;
  due: number;
  firedAt: number;
}

function node(id: number): Node {
  return { id, due: 0, firedAt: -1, wheelNext: null, wheelPrev: null, wheelSlot: -1, wheelDeadline: 0 };
}

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

describe('TimingWheel', () => {
  const TICK = 1000;
  const START = 1_763_700_000_123; // a Date.now()-sized clock, not tick-aligned

  test('random deadlines, some beyond one revolution, fire within [deadline, deadline + 1.25 ticks + one step]', () => {
    const r = rng(7);
    const wheel = new TimingWheel<Node>(TICK, 64, (n, now) => {
      n.firedAt = now;
    }, START);
    const nodes: Node[] = [];
    for (let i = 0; i < 2000; i++) {
      const n = node(i);
      n.due = START + Math.floor(r() * 200_000); // up to ~3 revolutions of 64 s
      wheel.schedule(n, n.due);
      nodes.push(n);
    }
    const STEP = 97;
    for (let now = START; now <= START + 210_000; now += STEP) wheel.advance(now);
    for (const n of nodes) {
      assert.ok(n.firedAt >= n.due, `node ${n.id} fired early: ${n.firedAt} < ${n.due}`);
      assert.ok(n.firedAt < n.due + 1.25 * TICK + STEP, `node ${n.id} fired late: ${n.firedAt - n.due} ms`);
    }
    assert.equal(wheel.size, 0);
  });

  test('a rescheduled node fires once, at its new deadline; a cancelled one never', () => {
    const fired: number[] = [];
    const wheel = new TimingWheel<Node>(TICK, 16, (n) => fired.push(n.id), START);
    const a = node(1);
    const b = node(2);
    wheel.schedule(a, START + 5_000);
    wheel.schedule(b, START + 5_000);
    wheel.schedule(a, START + 40_000); // more than one revolution (16 s) away
    wheel.cancel(b);
    for (let now = START; now < START + 39_000; now += 250) wheel.advance(now);
    assert.deepEqual(fired, []);
    for (let now = START + 39_000; now < START + 42_000; now += 250) wheel.advance(now);
    assert.deepEqual(fired, [1]);
  });

  test('deadlines are stored as small integers, not Date.now() values', () => {
    const wheel = new TimingWheel<Node>(TICK, 16, () => {}, START);
    const n = node(1);
    wheel.schedule(n, START + 3_600_000);
    assert.ok(Number.isInteger(n.wheelDeadline) && n.wheelDeadline < 2 ** 30, `wheelDeadline ${n.wheelDeadline}`);
  });

  test('a deadline already past fires on the next advance', () => {
    const fired: number[] = [];
    const wheel = new TimingWheel<Node>(TICK, 16, (n) => fired.push(n.id), START);
    wheel.advance(START + 10_000);
    wheel.schedule(node(9), START + 2_000);
    wheel.advance(START + 10_001);
    assert.deepEqual(fired, [9]);
  });
});
