/**
 * Priority lanes (src/flow/lanes.ts) and their jobs (src/flow/jobs.ts), with the
 * scheduler's turns driven by hand: lane ordering, weighted shares, slicing, and the
 * bound on how long a high-priority push waits behind a broadcast.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BroadcastJob, DeviceJob, FanoutJob, type JobGateway, shardTopic, TOPIC_SHARDS } from '../src/flow/jobs';
import { Lane, type LaneConfig, type LaneJob, LaneScheduler, laneOfFanout, laneOfPriority } from '../src/flow/lanes';
import type { Session } from '../src/gateway/session';
import { SendResult, SessionState } from '../src/gateway/session';

/** A scheduler whose deferred turns run only when the test says so; time moves by 1 per write. */
function harness(cfg: Partial<LaneConfig> = {}) {
  const config: LaneConfig = { weight_high: 8, weight_normal: 4, weight_bulk: 1, turn_sends: 100, ...cfg };
  let pending: (() => void) | null = null;
  const clock = { t: 0 };
  const log: string[] = [];
  const sched = new LaneScheduler(
    () => config,
    () => clock.t,
    (fn) => {
      pending = fn;
    },
  );
  const step = (): boolean => {
    const fn = pending;
    pending = null;
    if (fn) fn();
    return fn !== null;
  };
  /** A job of `n` writes that logs `name` once per write. */
  const job = (name: string, n: number): LaneJob => {
    let left = n;
    return {
      get done() {
        return left === 0;
      },
      run(budget: number): number {
        const k = Math.min(budget, left);
        for (let i = 0; i < k; i++) log.push(name);
        left -= k;
        clock.t += k;
        return k;
      },
    };
  };
  return { sched, step, job, log, clock, config };
}

describe('lanes', () => {
  test('priority maps to lanes; fan-outs never take the high lane', () => {
    assert.deepEqual([laneOfPriority(1), laneOfPriority(0), laneOfPriority(2)], [Lane.HIGH, Lane.NORMAL, Lane.BULK]);
    assert.deepEqual([laneOfFanout(1), laneOfFanout(0), laneOfFanout(2)], [Lane.NORMAL, Lane.BULK, Lane.BULK]);
  });

  test('within a turn: high, then normal, then bulk, whatever the order they came in', () => {
    const h = harness();
    h.sched.add(Lane.BULK, h.job('b', 1));
    h.sched.add(Lane.NORMAL, h.job('n', 1));
    h.sched.add(Lane.HIGH, h.job('h', 1));
    assert.equal(h.step(), true);
    assert.deepEqual(h.log, ['h', 'n', 'b']);
    assert.equal(h.step(), false, 'nothing left: no further turn');
  });

  test('FIFO within a lane', () => {
    const h = harness();
    for (const n of ['a', 'b', 'c']) h.sched.add(Lane.NORMAL, h.job(n, 2));
    h.step();
    assert.deepEqual(h.log, ['a', 'a', 'b', 'b', 'c', 'c']);
  });

  test('weighted shares when every lane is busy (8:4:1)', () => {
    const h = harness({ turn_sends: 130 });
    h.sched.add(Lane.NORMAL, h.job('n', 100_000));
    h.sched.add(Lane.BULK, h.job('b', 100_000));
    h.sched.add(Lane.HIGH, h.job('h', 100_000));
    // The high job found its lane empty and ran one turn's worth at once; then the turns.
    assert.equal(h.log.length, 130);
    h.log.length = 0;
    for (let i = 0; i < 100; i++) h.step();
    const count = (x: string) => h.log.filter((l) => l === x).length;
    assert.equal(h.log.length, 13_000, 'each turn does turn_sends writes');
    assert.equal(count('h'), 8000);
    assert.equal(count('n'), 4000);
    assert.equal(count('b'), 1000);
  });

  test('work-conserving: an idle lane leaves its share to the others', () => {
    const h = harness({ turn_sends: 100 });
    h.sched.add(Lane.BULK, h.job('b', 1000));
    h.step();
    assert.equal(h.log.length, 100, 'bulk alone gets the whole turn');
  });

  test('a high push that arrives mid-broadcast waits at most one turn', () => {
    const h = harness({ turn_sends: 100 });
    h.sched.add(Lane.BULK, h.job('bulk', 1_000_000));
    for (let i = 0; i < 50; i++) h.step();
    // The push arrives between two turns (while the event loop reads sockets).
    const arrived = h.clock.t;
    let startedAt = -1;
    const hi = h.job('high', 1);
    h.sched.add(Lane.HIGH, {
      get done() {
        return hi.done;
      },
      run(b) {
        startedAt = h.clock.t;
        return hi.run(b);
      },
    });
    h.step();
    assert.equal(startedAt, arrived, 'it runs first in the next turn');
    // Arriving during a turn (it cannot: a turn is synchronous), the worst case is the rest of that turn.
    assert.ok(startedAt - arrived <= h.config.turn_sends);
  });

  test('an overspending lane (one big publish) pays it back in later turns', () => {
    const h = harness({ turn_sends: 100, weight_normal: 1, weight_bulk: 1 });
    let publishes = 0;
    // A bulk job whose every run is one atomic publish of 500 writes.
    h.sched.add(Lane.BULK, {
      done: false,
      run() {
        publishes++;
        h.log.push('P');
        return 500;
      },
    });
    h.sched.add(Lane.NORMAL, h.job('n', 10_000));
    for (let i = 0; i < 40; i++) h.step();
    const normal = h.log.filter((l) => l === 'n').length;
    // Fair share is half the writes; bulk overspent 500 each time and had to wait it out.
    assert.ok(publishes <= 11, `publishes ${publishes}`);
    assert.ok(normal >= 40 * 100 * 0.4, `normal writes ${normal}`);
  });

  test('observer sees the wait of each job and the writes per lane', () => {
    const waits: number[] = [];
    const sent = [0, 0, 0];
    let pending: (() => void) | null = null;
    let t = 0;
    const s = new LaneScheduler(
      () => ({ weight_high: 1, weight_normal: 1, weight_bulk: 1, turn_sends: 10 }),
      () => t,
      (fn) => {
        pending = fn;
      },
      { started: (_l, ms) => waits.push(ms), sent: (l, n) => (sent[l] += n) },
    );
    s.add(Lane.NORMAL, new DeviceJob([['a', 0]], () => {}));
    t = 7;
    (pending as unknown as () => void)();
    assert.deepEqual(waits, [7]);
    assert.deepEqual(sent, [0, 1, 0]);
  });

  test('a high job that finds its lane empty between turns runs at once; otherwise it keeps its place', () => {
    const h = harness({ turn_sends: 100 });
    h.sched.add(Lane.BULK, h.job('b', 1000));
    h.sched.add(Lane.HIGH, h.job('h1', 1));
    assert.deepEqual(h.log, ['h1'], 'ran inside add(), before any turn');
    // A high job too big for one turn: the rest waits for the turns, and a later one queues behind it.
    h.sched.add(Lane.HIGH, h.job('H', 150));
    assert.equal(h.log.filter((x) => x === 'H').length, 100);
    h.sched.add(Lane.HIGH, h.job('h2', 1));
    assert.equal(h.log.includes('h2'), false, 'FIFO within the lane');
    h.step();
    const order = h.log.filter((x) => x !== 'b');
    assert.deepEqual(order.slice(-2), ['H', 'h2']);
    // Inside a turn add() never re-enters: a job added by a running job runs after it returns.
    const h2 = harness();
    h2.sched.add(Lane.NORMAL, {
      done: false,
      run() {
        h2.log.push('outer');
        h2.sched.add(Lane.HIGH, h2.job('inner', 1));
        h2.log.push('outer returns');
        (this as { done: boolean }).done = true;
        return 1;
      },
    });
    h2.step();
    assert.deepEqual(h2.log, ['outer', 'outer returns', 'inner'], 'picked up by the same turn, after the outer job');
  });
});

describe('jobs', () => {
  test('a device job hands out its devices a slice at a time', () => {
    const slices: string[][] = [];
    const devs: Array<[string, number]> = Array.from({ length: 25 }, (_, i) => [`d${i}`, 0]);
    const j = new DeviceJob(devs, (d) => slices.push(d.map((x) => x[0])));
    assert.equal(j.run(10), 10);
    assert.equal(j.run(10), 10);
    assert.equal(j.done, false);
    assert.equal(j.run(10), 5);
    assert.equal(j.done, true);
    assert.deepEqual(
      slices.map((s) => s.length),
      [10, 10, 5],
    );
    assert.equal(slices.flat().join(), devs.map((d) => d[0]).join());
  });

  test('WebSocket sessions subscribe to a shard of each named topic', () => {
    assert.equal(shardTopic('t:news', 13), `${13 % TOPIC_SHARDS}|t:news`);
  });

  test('a topic fan-out publishes shard by shard, then TCP sessions in slices, and counts who it reached', async () => {
    const published: string[] = [];
    const perShard = 10;
    const tcp = new Set<Session>();
    for (let i = 0; i < 25; i++) tcp.add({ state: i === 3 ? SessionState.CLOSING : SessionState.OPEN } as Session);
    let sends = 0;
    const gw: JobGateway = {
      publish(topic) {
        published.push(topic);
        return perShard;
      },
      send() {
        sends++;
        return sends === 5 ? SendResult.DROPPED : SendResult.OK;
      },
      tcpSubscribers: (t) => (t === 't:news' ? tcp : undefined),
      sessions: () => assert.fail('a named topic does not walk the hub'),
      broadcastKey: () => '*',
    };
    let reached = -1;
    const j = new FanoutJob(gw, 't:news', new Uint8Array(4), (n) => {
      reached = n;
    });
    let runs = 0;
    while (!j.done && runs < 1000) {
      const used = j.run(30);
      assert.ok(used >= 1 && used <= 30, `a run stays in its budget (${used})`);
      runs++;
    }
    assert.equal(published.length, TOPIC_SHARDS);
    assert.equal(published[0], '0|t:news');
    assert.equal(published[TOPIC_SHARDS - 1], `${TOPIC_SHARDS - 1}|t:news`);
    // 8 shards x 10 = 80 published in 3 runs, then 25 TCP sessions (after the 10 left of run 3's budget).
    assert.equal(runs, 4);
    // 24 open TCP sessions, one of which was dropped.
    assert.equal(reached, TOPIC_SHARDS * perShard + 23);
  });

  test('a broadcast walks every session once in slices, sends each its own variant, and subscribes nobody', () => {
    const hub = new Map<string, Session>();
    // cx 1: a variant with its own frame; cx 2: a variant that appeared after the frames were made.
    for (let i = 0; i < 100; i++) hub.set(`d${i}`, { deviceId: `d${i}`, state: i === 7 ? SessionState.CLOSING : SessionState.OPEN, cx: i % 4 === 0 ? 1 : i % 10 === 5 ? 2 : 0 } as Session);
    const sent = new Map<string, string>();
    const frames = new Map<string, Uint8Array>([
      ['*', Buffer.from('plain')],
      ['z1:*', Buffer.from('z1')],
    ]);
    const gw: JobGateway = {
      publish: () => assert.fail('a broadcast publishes to no uWS topic'),
      send(s, _t, f) {
        sent.set(s.deviceId, Buffer.from(f).toString());
        return s.deviceId === 'd10' ? SendResult.DROPPED : SendResult.OK;
      },
      tcpSubscribers: () => assert.fail('a broadcast does not use the TCP topic index'),
      sessions: () => hub.values(),
      broadcastKey: (s) => (s.cx === 0 ? '*' : `z${s.cx}:*`),
    };
    let reached = -1;
    const j = new BroadcastJob(gw, frames, (n) => {
      reached = n;
    });
    let runs = 0;
    while (!j.done && runs < 1000) {
      const used = j.run(16);
      assert.ok(used >= 1 && used <= 16, `a run stays in its budget (${used})`);
      runs++;
    }
    // One pass: every session visited costs one unit of budget, sent to or not.
    assert.equal(runs, Math.ceil(100 / 16));
    // 99 open sessions, one of them dropped.
    assert.equal(reached, 98);
    assert.equal(sent.size, 99);
    assert.ok(!sent.has('d7'));
    assert.equal(sent.get('d0'), 'z1');
    assert.equal(sent.get('d5'), 'plain', 'an unknown variant gets the plain frame');
    assert.equal(sent.get('d1'), 'plain');
  });

  test('a fan-out to a topic nobody holds finishes with 0', () => {
    const gw: JobGateway = { publish: () => 0, send: () => 1, tcpSubscribers: () => undefined, sessions: () => new Map<string, Session>().values(), broadcastKey: () => '*' };
    let reached = -1;
    const j = new FanoutJob(gw, 't:x', new Uint8Array(1), (n) => {
      reached = n;
    });
    j.run(100);
    assert.equal(j.done, true);
    assert.equal(reached, 0);
  });
});
