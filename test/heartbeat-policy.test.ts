/**
 * The smart heartbeat policy on a fake clock: advice, step up, back off, ceilings and
 * cool-down, the class LRU, foreground, evidence from reports, and the shared table.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../src/config/errors';
import { loadConfig } from '../src/config/load';
import { defaults, SCHEMA } from '../src/config/schema';
import { NetKind } from '../src/heartbeat/kinds';
import { HeartbeatPolicy, OVERDUE_MS, type PolicyOptions, policyOptions } from '../src/heartbeat/policy';
import { TableSync } from '../src/heartbeat/sync';
import { mergeTable, parseTable, TABLE_KEY } from '../src/heartbeat/table';
import { Metrics } from '../src/metrics/registry';

const MIN = 60_000;
const S = 5;
const F = 2;

function options(o: Partial<PolicyOptions> = {}): PolicyOptions {
  return { ...policyOptions(defaults().heartbeat), ...o };
}

class Clock {
  t = 1_000_000;
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

function setup(o: Partial<PolicyOptions> = {}, random: () => number = () => 0) {
  const clock = new Clock();
  const changes: string[] = [];
  const probes = { ok: 0, fail: 0 };
  const p = new HeartbeatPolicy(options(o), clock.now, random, {
    probe: (ok) => (ok ? probes.ok++ : probes.fail++),
    change: (what, _k, _c, from, to) => changes.push(`${what} ${from}->${to}`),
  });
  return { p, clock, changes, probes };
}

const CELL = NetKind.CELL_4G;
let ids = 0;
const dev = (): string => `dev-${++ids}`;

/** A session that gets `k` quiet intervals through. */
function survive(p: HeartbeatPolicy, tag: number, k: number, id = dev()): number {
  for (let i = 0; i < k; i++) tag = p.ping(tag, p.intervalOf(tag), p.intervalOf(tag), id);
  return tag;
}

/** A session whose first PING is lost: its device reconnects after a 10 s PONG timeout. */
function dies(p: HeartbeatPolicy, tag: number, id = dev()): boolean {
  const x = p.intervalOf(tag);
  return p.closed(tag, x + 10_000, x, id);
}

/** A session the gateway closes idle (its device never came back). */
function idles(p: HeartbeatPolicy, tag: number, id = dev()): boolean {
  const x = p.intervalOf(tag);
  return p.closed(tag, 2 * x + 30_000, x, id);
}

describe('advice', () => {
  test('a new class starts at default_ms; an unknown kind keeps it and never learns', () => {
    const { p } = setup({ probeShare: 0 });
    assert.equal(p.intervalOf(p.open(CELL, '460-00', false)), 270_000);
    const unknown = p.open(NetKind.UNKNOWN, 'x', false);
    assert.equal(p.intervalOf(unknown), 270_000);
    for (let i = 0; i < 5; i++) assert.equal(dies(p, p.open(NetKind.UNKNOWN, '', false)), true);
    assert.equal(p.intervalOf(p.open(NetKind.UNKNOWN, '', false)), 270_000);
  });

  test('foreground sessions get foreground_ms and are no evidence', () => {
    const { p, changes } = setup({ probeShare: 0 });
    const tag = p.open(CELL, 'a', true);
    assert.equal(p.intervalOf(tag), 60_000);
    for (let i = 0; i < 5; i++) assert.equal(dies(p, p.open(CELL, 'a', true)), false);
    assert.deepEqual(changes, []);
  });

  test('default_ms is clamped into the kind bounds', () => {
    const { p } = setup({ defaultMs: 40 * MIN, probeShare: 0 });
    assert.equal(p.intervalOf(p.open(CELL, 'x', false)), 28 * MIN);
    assert.equal(p.intervalOf(p.open(NetKind.WIFI, 'isp', false)), 40 * MIN);
  });

  test('probe_share of new sessions probe proven + step', () => {
    let r = 0;
    const { p } = setup({}, () => (r++ % 20) / 20);
    const got = Array.from({ length: 100 }, () => p.intervalOf(p.open(CELL, 'share', false)));
    assert.equal(got.filter((x) => x === 330_000).length, 5);
    assert.equal(got.filter((x) => x === 270_000).length, 95);
  });

  test('at most max_probes probers per window', () => {
    const { p, clock } = setup({ maxProbes: 3 });
    const probing = () => Array.from({ length: 10 }, () => p.intervalOf(p.open(CELL, 'cap', false))).filter((x) => x === 330_000).length;
    assert.equal(probing(), 3);
    clock.advance(3 * 330_000);
    assert.equal(probing(), 3);
  });
});

describe('rules', () => {
  test('step up after S successes at the probe; the step doubles', () => {
    const { p, changes, probes } = setup({ maxProbes: 100 });
    const tags = Array.from({ length: S }, () => p.open(CELL, 'up', false));
    assert.ok(tags.every((t) => p.intervalOf(t) === 330_000));
    for (let i = 0; i < S - 1; i++) survive(p, tags[i], 2);
    assert.equal(p.adviceFor(CELL, 'up'), 270_000);
    const once = survive(p, tags[S - 1], 1);
    assert.equal(p.adviceFor(CELL, 'up'), 270_000, 'one interval is not k = 2');
    survive(p, once, 1);
    assert.equal(p.adviceFor(CELL, 'up'), 330_000);
    assert.deepEqual(changes, ['step_up 270000->330000']);
    assert.equal(probes.ok, S);
    assert.equal(p.intervalOf(p.open(CELL, 'up', false)), 330_000 + 120_000);
  });

  test('a gap shorter than the interval is no success', () => {
    const { p } = setup({ maxProbes: 100 });
    for (let i = 0; i < S; i++) {
      let tag = p.open(CELL, 'short', false);
      for (let j = 0; j < 4; j++) tag = p.ping(tag, 100_000, 330_000, `s${i}`);
    }
    assert.equal(p.adviceFor(CELL, 'short'), 270_000);
  });

  test('a failed probe sets a ceiling; the class settles at P - margin; re-probes after the cool-down', () => {
    const { p, clock, changes, probes } = setup({ maxProbes: 100 });
    for (let i = 0; i < F; i++) assert.equal(dies(p, p.open(CELL, 'five', false)), true);
    assert.equal(probes.fail, F);
    // 330 s failed; (330 - 270) / 2 < step_ms: no room left to probe.
    assert.equal(p.adviceFor(CELL, 'five'), 250_000);
    assert.deepEqual(changes, ['ceiling 270000->250000']);
    const c = p.classes().find((x) => x.carrier === 'five')!;
    assert.equal(c.ceilingMs, 330_000);
    assert.equal(c.probeMs, 0);
    assert.ok(Array.from({ length: 20 }, () => p.open(CELL, 'five', false)).every((t) => p.intervalOf(t) === 250_000));
    clock.advance(6 * 3600_000);
    // The re-probe is at the failed value: at most F probers per window.
    const again = Array.from({ length: 20 }, () => p.intervalOf(p.open(CELL, 'five', false)));
    assert.equal(again.filter((x) => x === 330_000).length, F);
    assert.equal(p.adviceFor(CELL, 'five'), 250_000);
  });

  test('after a failed probe the next one bisects below the ceiling', () => {
    const { p } = setup({ maxProbes: 100 });
    // Climb 270 -> 330 -> 450 (steps 60, 120), then 690 fails.
    for (const q of [330_000, 450_000]) {
      for (let i = 0; i < S; i++) {
        const tag = p.open(CELL, 'mid', false);
        assert.equal(p.intervalOf(tag), q);
        survive(p, tag, 2);
      }
    }
    assert.equal(p.intervalOf(p.open(CELL, 'mid', false)), 690_000);
    for (let i = 0; i < F; i++) dies(p, p.open(CELL, 'mid', false));
    assert.equal(p.adviceFor(CELL, 'mid'), 450_000, 'room left: not settled yet');
    assert.equal(p.intervalOf(p.open(CELL, 'mid', false)), 510_000);
  });

  test('back off to min_ms after F failures at the proven interval', () => {
    const { p, changes } = setup({ probeShare: 0 });
    const a = p.open(CELL, 'short-nat', false);
    assert.equal(p.intervalOf(a), 270_000);
    dies(p, a);
    assert.equal(p.adviceFor(CELL, 'short-nat'), 270_000);
    dies(p, p.open(CELL, 'short-nat', false));
    assert.equal(p.adviceFor(CELL, 'short-nat'), 210_000);
    assert.deepEqual(changes, ['back_off 270000->210000']);
    // Failing on the floor too: noted once (210 s is now the ceiling), then nothing left to do.
    for (let i = 0; i < 6; i++) dies(p, p.open(CELL, 'short-nat', false));
    assert.deepEqual(changes, ['back_off 270000->210000', 'back_off 210000->210000']);
    assert.equal(p.adviceFor(CELL, 'short-nat'), 210_000);
  });

  test('successes at the proven interval outweigh stray failures', () => {
    const { p } = setup({ probeShare: 0 });
    for (let i = 0; i < 4; i++) survive(p, p.open(CELL, 'ok', false), 2);
    for (let i = 0; i < 3; i++) dies(p, p.open(CELL, 'ok', false));
    assert.equal(p.adviceFor(CELL, 'ok'), 270_000);
  });

  test('a session that got a quiet interval through, or closed in time, is no failure', () => {
    const { p } = setup({ probeShare: 0 });
    for (let i = 0; i < 5; i++) {
      const tag = p.ping(p.open(CELL, 'q', false), 270_000, 270_000, 'x');
      assert.equal(p.closed(tag, 600_000, 270_000, `q${i}`), false);
      assert.equal(p.closed(p.open(CELL, 'q', false), 270_000 + OVERDUE_MS - 1, 270_000, `r${i}`), false);
    }
    assert.equal(p.adviceFor(CELL, 'q'), 270_000);
  });

  test('an idle close (the device stayed away) counts against a probe, not against P', () => {
    const { p } = setup({ maxProbes: 100 });
    for (let i = 0; i < 3; i++) assert.equal(idles(p, p.open(CELL, 'idle', false)), true);
    assert.equal(p.adviceFor(CELL, 'idle'), 250_000, 'two idle probers: ceiling at 330 s');
    const { p: q } = setup({ probeShare: 0 });
    for (let i = 0; i < 5; i++) assert.equal(idles(q, q.open(CELL, 'idle2', false)), true);
    assert.equal(q.adviceFor(CELL, 'idle2'), 270_000);
  });

  test('a live session is told the new interval on its next PING', () => {
    const { p } = setup({ probeShare: 0 });
    const live = p.open(CELL, 'live', false);
    dies(p, p.open(CELL, 'live', false));
    dies(p, p.open(CELL, 'live', false));
    const tag = p.ping(live, 270_000, 270_000, 'live');
    assert.equal(p.intervalOf(tag), 210_000);
  });

  test('a prober whose level was decided meanwhile goes back to the advice', () => {
    const { p } = setup({ maxProbes: 100 });
    const prober = p.open(CELL, 'dec', false);
    assert.equal(p.intervalOf(prober), 330_000);
    for (let i = 0; i < F; i++) dies(p, p.open(CELL, 'dec', false));
    const tag = p.ping(prober, 330_000, 330_000, 'dec');
    assert.equal(p.intervalOf(tag), 250_000);
  });

  test('a prober whose level became P stays at P, even on a PING after other frames', () => {
    const { p } = setup({ maxProbes: 100 });
    const mine = p.open(CELL, 'lvl', false);
    for (let i = 0; i < S; i++) survive(p, p.open(CELL, 'lvl', false), 2);
    assert.equal(p.adviceFor(CELL, 'lvl'), 330_000);
    const tag = p.ping(mine, 1_000, 330_000, 'lvl-mine');
    assert.equal(p.intervalOf(tag), 330_000, 'not moved on to the next probe (450 s)');
  });

  test('configure applies new bounds live', () => {
    const { p } = setup({ probeShare: 0 });
    p.open(CELL, 'cfg', false);
    p.configure(options({ minMs: 300_000, probeShare: 0 }));
    assert.equal(p.adviceFor(CELL, 'cfg'), 300_000);
  });
});

describe('reports (HELLO.previous)', () => {
  test('timed out at X after living X plus a PONG timeout is a failure; mid-interval deaths are not', () => {
    const { p } = setup({ probeShare: 0 });
    p.report(CELL, 'rep', { intervalMs: 270_000, timedOut: true, livedMs: 100_000 }, 'a', true, 1_000);
    p.report(CELL, 'rep', { intervalMs: 270_000, timedOut: true, livedMs: 500_000 }, 'b', true, 1_000);
    p.report(CELL, 'rep', { intervalMs: 270_000, timedOut: false, livedMs: 280_000 }, 'c', true, 1_000);
    p.report(CELL, 'rep', { intervalMs: 60_000, timedOut: true, livedMs: 70_000 }, 'd', true, 1_000);
    assert.equal(p.adviceFor(CELL, 'rep'), 270_000);
    p.report(CELL, 'rep', { intervalMs: 270_000, timedOut: true, livedMs: 280_000 }, 'e', true, 1_000);
    p.report(CELL, 'rep', { intervalMs: 270_000, timedOut: true, livedMs: 281_000 }, 'f', true, 1_000);
    assert.equal(p.adviceFor(CELL, 'rep'), 210_000);
  });

  test('a death on another network, or followed by a long absence, is no evidence', () => {
    const { p } = setup({ probeShare: 0 });
    const r = { intervalMs: 270_000, timedOut: true, livedMs: 280_000 };
    for (let i = 0; i < 3; i++) p.report(CELL, 'far', r, `sw${i}`, false, 1_000);
    for (let i = 0; i < 3; i++) p.report(CELL, 'far', r, `gone${i}`, true, 10 * MIN);
    assert.equal(p.adviceFor(CELL, 'far'), 270_000);
    for (let i = 0; i < 2; i++) p.report(CELL, 'far', r, `unknown${i}`, true, -1);
    assert.equal(p.adviceFor(CELL, 'far'), 210_000, 'down time unknown: taken as a NAT death');
  });

  test('the gateway close and the device report of one death count once', () => {
    const { p } = setup({ probeShare: 0 });
    assert.equal(dies(p, p.open(CELL, 'dup', false), 'same'), true);
    p.report(CELL, 'dup', { intervalMs: 270_000, timedOut: true, livedMs: 280_000 }, 'same', true, 1_000);
    assert.equal(p.adviceFor(CELL, 'dup'), 270_000);
    p.report(CELL, 'dup', { intervalMs: 270_000, timedOut: true, livedMs: 280_000 }, 'other', true, 1_000);
    assert.equal(p.adviceFor(CELL, 'dup'), 210_000);
  });

  test('a report of a probe that lived k intervals is a success', () => {
    const { p } = setup({ maxProbes: 100 });
    for (let i = 0; i < S; i++) p.report(CELL, 'rs', { intervalMs: 330_000, timedOut: false, livedMs: 700_000 }, `r${i}`, true, 1_000);
    assert.equal(p.adviceFor(CELL, 'rs'), 330_000);
  });
});

describe('class table', () => {
  test('LRU: a full table sends new carriers to their kind until a class is idle long enough', () => {
    const { p, clock } = setup({ maxClasses: 2, probeShare: 0 });
    p.open(CELL, 'a', false);
    p.open(CELL, 'b', false);
    // Teach the kind class something, so the fallback is visible.
    dies(p, p.open(CELL, '', false));
    dies(p, p.open(CELL, '', false));
    assert.equal(p.intervalOf(p.open(CELL, 'c', false)), 210_000, 'c uses the 4G class');
    assert.deepEqual(p.classes().filter((c) => c.carrier !== '').map((c) => c.carrier), ['a', 'b']);
    clock.advance(60 * MIN);
    p.open(CELL, 'a', false);
    clock.advance(60 * MIN);
    // b is idle past every idle deadline; a was used an hour ago and may still have sessions.
    assert.equal(p.intervalOf(p.open(CELL, 'c', false)), 210_000, 'a new class starts from its kind');
    assert.deepEqual(p.classes().filter((x) => x.carrier !== '').map((x) => x.carrier).sort(), ['a', 'c']);
  });

  test('overlong carrier labels use the kind class', () => {
    const { p } = setup({ probeShare: 0 });
    p.open(CELL, 'x'.repeat(100), false);
    assert.equal(p.classes().filter((c) => c.carrier !== '').length, 0);
  });
});

describe('shared table (store)', () => {
  function memStore() {
    const m = new Map<string, Buffer>();
    return {
      m,
      getMeta: async (k: string) => m.get(k) ?? null,
      putMeta: async (k: string, v: Buffer) => {
        m.set(k, Buffer.from(v));
      },
    };
  }
  const log = { warn: (_o: object, msg: string) => assert.fail(msg) };

  test('evidence from two workers adds up; the decision reaches both; a restart keeps it', async () => {
    const clock = new Clock();
    const store = memStore();
    const mk = (w: string) => new HeartbeatPolicy(options({ maxProbes: 100 }), clock.now, () => 0, null, w);
    const a = mk('n.0');
    const b = mk('n.1');
    const sa = new TableSync(a, store, log, 60_000, clock.now);
    const sb = new TableSync(b, store, log, 60_000, clock.now);
    await sa.start();
    await sb.start();
    for (let i = 0; i < 3; i++) survive(a, a.open(CELL, 'shared', false), 2);
    for (let i = 0; i < 2; i++) survive(b, b.open(CELL, 'shared', false), 2);
    assert.equal(a.adviceFor(CELL, 'shared'), 270_000);
    await sa.sync();
    await sb.sync();
    assert.equal(b.adviceFor(CELL, 'shared'), 330_000, '3 + 2 successes');
    await sb.sync();
    await sa.sync();
    assert.equal(a.adviceFor(CELL, 'shared'), 330_000);
    await sa.stop();
    await sb.stop();
    const c = mk('n.0');
    await new TableSync(c, store, log, 60_000, clock.now).sync();
    assert.equal(c.adviceFor(CELL, 'shared'), 330_000);
    const doc = parseTable(store.m.get(TABLE_KEY)!);
    assert.equal(doc.classes.find((x) => x.c === 'shared')?.w, 'n.1');
  });

  test('the newer decision wins, whichever order the writers sync in', () => {
    const clock = new Clock();
    const a = new HeartbeatPolicy(options({ probeShare: 0 }), clock.now, () => 0, null, 'a');
    const b = new HeartbeatPolicy(options({ probeShare: 0 }), clock.now, () => 0, null, 'b');
    dies(a, a.open(CELL, 'lww', false));
    dies(a, a.open(CELL, 'lww', false));
    clock.advance(1000);
    const docA = mergeTable(a, parseTable(null), clock.t, true);
    mergeTable(b, docA, clock.t, true);
    assert.equal(b.adviceFor(CELL, 'lww'), 210_000);
    // An older state from a stale document does not undo it.
    const stale = parseTable(null);
    stale.classes.push({ ...docA.classes.find((c) => c.c === 'lww')!, p: 900_000, v: 1, w: 'z', m: 0, ce: 0 });
    mergeTable(b, stale, clock.t, false);
    assert.equal(b.adviceFor(CELL, 'lww'), 210_000);
  });

  test('a garbled document is treated as empty', () => {
    assert.deepEqual(parseTable(Buffer.from('{nope')), { v: 1, classes: [] });
    assert.deepEqual(parseTable(Buffer.from(JSON.stringify({ v: 1, classes: [{ k: 'x' }] }))).classes, []);
  });
});

describe('config', () => {
  test('heartbeat keys: maxima below min_ms are errors; the policy knobs are live', () => {
    try {
      loadConfig({ args: ['--heartbeat.min_ms=600000', '--heartbeat.max_ms=300000', '--heartbeat.wifi_max_ms=200000'], env: {} });
      assert.fail('expected a ConfigError');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(err.errors.map((e) => e.key).sort(), ['heartbeat.max_ms', 'heartbeat.wifi_max_ms']);
    }
    assert.equal(loadConfig({ args: ['--heartbeat.probe_share=10'], env: {} }).heartbeat.probe_share, 10);
    assert.equal(policyOptions(defaults().heartbeat).probeShare, 0.05);
    assert.equal(SCHEMA['heartbeat.step_ms'].live, true);
    assert.equal(SCHEMA['heartbeat.max_classes'].live, undefined);
  });
});

describe('metrics', () => {
  test('advised intervals by kind, probe results, class changes, NAT-suspected closes', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.heartbeatAdvised(NetKind.CELL_4G, 270_000);
    m.heartbeatAdvised(NetKind.WIFI, 2_700_000);
    m.heartbeatAdvised(99, 60_000);
    m.heartbeatProbe(true);
    m.heartbeatProbe(false);
    m.heartbeatProbe(false);
    m.heartbeatChange('back_off');
    m.natTimeoutSuspected(NetKind.CELL_3G);
    const text = await m.text();
    assert.match(text, /moor_heartbeat_advised_seconds_bucket\{le="270",kind="4g"\} 1/);
    assert.match(text, /moor_heartbeat_advised_seconds_bucket\{le="210",kind="4g"\} 0/);
    assert.match(text, /moor_heartbeat_advised_seconds_count\{kind="wifi"\} 1/);
    assert.match(text, /moor_heartbeat_advised_seconds_count\{kind="unknown"\} 1/);
    assert.match(text, /moor_heartbeat_probes_total\{result="success"\} 1/);
    assert.match(text, /moor_heartbeat_probes_total\{result="failure"\} 2/);
    assert.match(text, /moor_heartbeat_class_changes_total\{change="back_off"\} 1/);
    assert.match(text, /moor_nat_timeouts_suspected_total\{kind="3g"\} 1/);
  });
});
