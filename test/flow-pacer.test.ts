/**
 * Push pacing per (unit, API key) (src/flow/pacer.ts) on a fake clock: under a key's
 * limit pushes go at once; over it they are queued and paced out, never dropped;
 * 429 only when the queue is full; keys and units do not share budgets.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PushPacer, QueueFullError, RELEASE_TICK_MS, type Ticket } from '../src/flow/pacer';
import type { Unit } from '../src/flow/units';

/** A clock whose timers fire only when advanced. */
class FakeClock {
  t = 0;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private nextId = 1;
  now = (): number => this.t;
  setTimer = (fn: () => void, ms: number): unknown => {
    const id = this.nextId++;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  };
  clearTimer = (id: unknown): void => {
    this.timers = this.timers.filter((x) => x.id !== id);
  };
  /** Moves time forward in steps, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let guard = 0; guard < 1_000_000; guard++) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
  get pending(): number {
    return this.timers.length;
  }
}

const unit = (over: Partial<Unit> = {}): Unit => ({ name: 'default', rate: 10, burst: 5, queue: 100, queue_bytes: 1 << 20, ...over });

function setup(u: Unit = unit()) {
  const clock = new FakeClock();
  const released: string[] = [];
  const depth = new Map<string, number>();
  const pacer = new PushPacer(clock, {
    released: () => {},
    queued: (name, d) => depth.set(name, (depth.get(name) ?? 0) + d),
  }, () => 0);
  /** Sends push `id` as the API does: admit, then run now or enqueue. */
  const push = (id: string, key = 'k', opts: { lane?: number; cost?: number; bytes?: number; unit?: Unit } = {}): 'now' | 'queued' => {
    const t = pacer.admit(opts.unit ?? u, key, opts.lane ?? 1, opts.cost ?? 1, opts.bytes ?? 100);
    if (t === null) {
      released.push(id);
      return 'now';
    }
    pacer.enqueue(t, () => released.push(id));
    return 'queued';
  };
  return { clock, pacer, released, push, depth };
}

describe('push pacer', () => {
  test('under the limit: at once', () => {
    const p = setup();
    for (let i = 0; i < 5; i++) assert.equal(p.push(`p${i}`), 'now');
    assert.equal(p.clock.pending, 0, 'no timer for a flow that never queued');
  });

  test('over the limit: queued and paced out at the rate, none dropped, in order', () => {
    const p = setup();
    const ids = Array.from({ length: 50 }, (_, i) => `p${i}`);
    const how = ids.map((id) => p.push(id));
    assert.deepEqual(how.slice(0, 5), Array(5).fill('now'));
    assert.ok(how.slice(5).every((h) => h === 'queued'));
    assert.equal(p.released.length, 5);
    // 45 queued at 10/s: 4.5 s. After 2 s about 20 more have gone.
    p.clock.advance(2_000);
    assert.ok(p.released.length >= 24 && p.released.length <= 26, `after 2 s: ${p.released.length}`);
    p.clock.advance(3_000);
    assert.deepEqual(p.released, ids, 'all of them, in order');
    assert.equal(p.pacer.waiting('default', 'k'), 0);
    assert.equal(p.depth.get('default'), 0);
    assert.equal(p.clock.pending, 0, 'the flow stops ticking once empty');
  });

  test('the release rate holds over a long run (no drift from tick rounding)', () => {
    const p = setup(unit({ rate: 333, burst: 1, queue: 100_000 }));
    for (let i = 0; i < 5000; i++) p.push(`p${i}`);
    p.clock.advance(10_000);
    const n = p.released.length;
    assert.ok(n >= 3300 && n <= 3340, `333/s for 10 s released ${n}`);
  });

  test('once a key queues, later pushes queue behind it even when tokens are back', () => {
    const p = setup(unit({ rate: 10, burst: 1 }));
    p.push('a');
    assert.equal(p.push('b'), 'queued');
    p.clock.advance(RELEASE_TICK_MS);
    // The bucket is positive again, but c must not overtake b.
    assert.equal(p.push('c'), 'queued');
    assert.deepEqual(p.released, ['a']);
    p.clock.advance(200);
    assert.deepEqual(p.released, ['a', 'b', 'c']);
  });

  test('within a key: high before normal before bulk, FIFO within each', () => {
    const p = setup(unit({ rate: 10, burst: 1 }));
    p.push('first');
    p.push('bulk1', 'k', { lane: 2 });
    p.push('norm1', 'k', { lane: 1 });
    p.push('high1', 'k', { lane: 0 });
    p.push('bulk2', 'k', { lane: 2 });
    p.push('high2', 'k', { lane: 0 });
    p.clock.advance(10_000);
    assert.deepEqual(p.released, ['first', 'high1', 'high2', 'norm1', 'bulk1', 'bulk2']);
  });

  test('queue full (count): 429 with a retry of at least 1 s; nothing queued is lost', () => {
    const p = setup(unit({ rate: 10, burst: 5, queue: 20 }));
    let rejected = 0;
    let retry = 0;
    for (let i = 0; i < 40; i++) {
      try {
        p.push(`p${i}`);
      } catch (err) {
        assert.ok(err instanceof QueueFullError);
        rejected++;
        retry = err.retryAfterMs;
      }
    }
    assert.equal(rejected, 15, '5 at once, 20 queued, 15 refused');
    assert.ok(retry >= 1000, `retry ${retry}`);
    p.clock.advance(10_000);
    assert.equal(p.released.length, 25);
    assert.equal(p.push('later'), 'now', 'the queue drained');
  });

  test('refusal: known before a push is read, exactly when admit would refuse any push; it changes nothing', () => {
    const u = unit({ rate: 10, burst: 5, queue: 3 });
    const p = setup(u);
    assert.equal(p.pacer.refusal(u, 'k'), null, 'a key never seen');
    for (let i = 0; i < 5; i++) p.push(`now${i}`);
    assert.equal(p.pacer.refusal(u, 'k'), null, 'tokens gone, but the queue has room');
    for (let i = 0; i < 3; i++) assert.equal(p.push(`q${i}`), 'queued');
    const r = p.pacer.refusal(u, 'k');
    assert.ok(r instanceof QueueFullError && r.retryAfterMs >= 1000);
    assert.equal(p.pacer.refusal(u, 'k')?.message, r.message, 'asking twice is the same');
    assert.equal(p.pacer.waiting('default', 'k'), 3, 'nothing reserved or taken');
    assert.throws(() => p.push('over'), QueueFullError);
    assert.equal(p.pacer.refusal(u, 'other'), null, 'another key is not refused');
    p.clock.advance(100);
    assert.equal(p.pacer.refusal(u, 'k'), null, 'a slot freed up');
    assert.equal(p.push('in'), 'queued');
    // queue = 0: refused only while the bucket is empty
    const z = unit({ name: 'z', rate: 10, burst: 1, queue: 0 });
    assert.equal(p.push('z1', 'k', { unit: z }), 'now');
    assert.ok(p.pacer.refusal(z, 'k') instanceof QueueFullError);
    p.clock.advance(100);
    assert.equal(p.pacer.refusal(z, 'k'), null);
  });

  test('queue full (bytes)', () => {
    const p = setup(unit({ burst: 1, queue: 1000, queue_bytes: 1000 }));
    p.push('a');
    assert.equal(p.push('b', 'k', { bytes: 600 }), 'queued');
    assert.throws(() => p.push('c', 'k', { bytes: 600 }), QueueFullError);
    assert.equal(p.push('d', 'k', { bytes: 400 }), 'queued', 'a smaller one still fits');
  });

  test('a flood on one key leaves another key and another unit untouched', () => {
    const p = setup(unit({ rate: 10, burst: 5, queue: 50 }));
    for (let i = 0; i < 200; i++) {
      try {
        p.push(`flood${i}`, 'flooder');
      } catch {}
    }
    assert.equal(p.push('calm', 'other'), 'now');
    assert.equal(p.push('vip', 'flooder', { unit: unit({ name: 'vip', rate: 100, burst: 100 }) }), 'now', 'the same key in another unit');
  });

  test('a push to many devices costs one token each and may go into debt', () => {
    const p = setup(unit({ rate: 100, burst: 10 }));
    assert.equal(p.push('big', 'k', { cost: 1000 }), 'now', 'bigger than the burst, but never stuck');
    assert.equal(p.push('next', 'k'), 'queued');
    p.clock.advance(9_000);
    assert.deepEqual(p.released, ['big']);
    p.clock.advance(1_100);
    assert.deepEqual(p.released, ['big', 'next'], 'after the debt is paid (~9.9 s)');
  });

  test('a reserved slot holds order until its store write lands; cancel frees it', () => {
    const p = setup(unit({ rate: 10, burst: 1, queue: 2 }));
    p.push('a');
    const t1 = p.pacer.admit(unit({ rate: 10, burst: 1, queue: 2 }), 'k', 1, 1, 10) as Ticket;
    assert.ok(t1);
    assert.equal(p.push('b'), 'queued');
    assert.throws(() => p.push('c'), QueueFullError);
    p.pacer.cancel(t1);
    assert.equal(p.push('c'), 'queued');
    p.clock.advance(1_000);
    assert.deepEqual(p.released, ['a', 'b', 'c']);
    p.pacer.cancel(t1);
    assert.equal(p.pacer.waiting('default', 'k'), 0, 'a second cancel is a no-op');
  });

  test('stop clears the timers', () => {
    const p = setup(unit({ burst: 1 }));
    p.push('a');
    p.push('b');
    assert.equal(p.clock.pending, 1);
    p.pacer.stop();
    assert.equal(p.clock.pending, 0);
  });
});
