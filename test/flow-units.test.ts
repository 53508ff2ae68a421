/**
 * Isolation units (src/flow/units.ts): the `units` config in the file, the
 * environment and flags; rules by scope and glob; percentages for gradual rollout.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { PushTarget } from '../src/api/backend';
import { ConfigError } from '../src/config/errors';
import { loadConfig } from '../src/config/load';
import { defaults } from '../src/config/schema';
import type { Config } from '../src/config/types';
import { globRegExp, parseUnits, percentDraw, UnitTable } from '../src/flow/units';

const dir = mkdtempSync(path.join(os.tmpdir(), 'moor-flow-units-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const device = (id: string): PushTarget => ({ kind: 'device', deviceIds: [id], single: true });
const topic = (t: string): PushTarget => ({ kind: 'topic', topic: t });

function table(units: unknown): UnitTable {
  const r = parseUnits(units, false);
  if ('error' in r) throw new Error(r.error);
  const config: Config = defaults();
  config.units = r.value;
  return new UnitTable(config);
}

describe('units config', () => {
  const toml = `
[limits]
push_per_s = 200

[[units]]
name = "marketing"
rate = 50
queue = 500
rules = [ { scope = "topic", match = "promo-*" }, { scope = "key", match = "crm-*", percent = 10 } ]

[[units]]
name = "vip"
rate = 5000
burst = 5000
rules = [ { scope = "key", match = "vip-key" } ]
`;

  test('a TOML array of tables, with defaults for what is left out', () => {
    const file = path.join(dir, 'units.toml');
    writeFileSync(file, toml);
    const c = loadConfig({ file, args: [], env: {} });
    assert.equal(c.units.length, 2);
    assert.deepEqual(c.units[0], {
      name: 'marketing',
      rate: 50,
      burst: 100,
      queue: 500,
      queue_bytes: 16 * 1024 * 1024,
      rules: [
        { scope: 'topic', match: 'promo-*', percent: 100 },
        { scope: 'key', match: 'crm-*', percent: 10 },
      ],
    });
    assert.equal(c.units[1].burst, 5000);
    assert.equal(c.limits.push_per_s, 200);
  });

  test('env and flags: a TOML inline array or JSON; flags win', () => {
    const inline = '[{name="a", rate=10, rules=[{scope="device", match="canary-*", percent=5}]}]';
    const json = JSON.stringify([{ name: 'b', rate: 20, rules: [{ scope: 'key', match: 'x' }] }]);
    const fromEnv = loadConfig({ args: [], env: { MOOR_UNITS: inline } });
    assert.equal(fromEnv.units[0].name, 'a');
    assert.equal(fromEnv.units[0].rules[0].percent, 5);
    const both = loadConfig({ args: [`--units=${json}`], env: { MOOR_UNITS: inline } });
    assert.deepEqual(
      both.units.map((u) => u.name),
      ['b'],
    );
  });

  test('every mistake is named', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ name: 'x' }, /array of tables/],
      [[{ name: 'x', rules: [{ scope: 'key', match: 'a' }] }], /units\[0\]\.rate is required/],
      [[{ name: 'Bad Name', rate: 1, rules: [{ scope: 'key', match: 'a' }] }], /name must be/],
      [[{ name: 'default', rate: 1, rules: [{ scope: 'key', match: 'a' }] }], /limits\.push_/],
      [[{ name: 'x', rate: 0, rules: [{ scope: 'key', match: 'a' }] }], /rate must be between 1/],
      [[{ name: 'x', rate: 1, rules: [] }], /non-empty/],
      [[{ name: 'x', rate: 1, rules: [{ scope: 'app', match: 'a' }] }], /scope must be one of key, topic, device/],
      [[{ name: 'x', rate: 1, rules: [{ scope: 'key', match: 'a', percent: 101 }] }], /percent must be between 0 and 100/],
      [[{ name: 'x', rate: 1, rules: [{ scope: 'key', match: '' }] }], /match must be a glob/],
      [[{ name: 'x', rate: 1, rulez: [] }], /rulez is not a unit field/],
      [
        [
          { name: 'x', rate: 1, rules: [{ scope: 'key', match: 'a' }] },
          { name: 'x', rate: 2, rules: [{ scope: 'key', match: 'b' }] },
        ],
        /used twice/,
      ],
    ];
    for (const [raw, re] of cases) {
      const r = parseUnits(raw, false);
      assert.ok('error' in r, `accepted ${JSON.stringify(raw)}`);
      assert.match(r.error, re);
    }
    assert.match((parseUnits('[{name=', true) as { error: string }).error, /TOML inline array or JSON/);
  });

  test('every problem is reported, not only the first', () => {
    const r = parseUnits(
      [
        { name: 'default', rate: 5, rules: [{ scope: 'key', match: 'a' }] },
        { name: 'ok', rate: 0, rules: [{ scope: 'region', match: 'x', percent: 150 }] },
        { name: 'ok', rate: 3, colour: 1, rules: [{ scope: 'key', match: 'b' }] },
      ],
      false,
    );
    assert.ok('error' in r);
    const all = [r.error, ...(r.more ?? []).map((m) => m.error)];
    assert.deepEqual(
      all.map((e) => e.replace(/ .*/, '')),
      ['units[0].name', 'units[1].rate', 'units[1].rules[0].scope', 'units[1].rules[0].percent', 'units[2].colour', 'units[2]:'],
    );
  });

  test('a bad unit is reported with the other config errors, against `units`', () => {
    assert.throws(
      () => loadConfig({ args: ['--units=[{name="x"}]', '--workers=0'], env: {} }),
      (e: unknown) => e instanceof ConfigError && e.errors.some((i) => i.key === 'units' && /rate is required/.test(i.message)) && e.errors.some((i) => i.key === 'workers'),
    );
  });

  test('cross-key: a session burst below its rate is refused', () => {
    assert.throws(
      () => loadConfig({ args: ['--limits.in_frames_per_s=100', '--limits.in_frames_burst=10'], env: {} }),
      (e: unknown) => e instanceof ConfigError && e.errors.some((i) => i.key === 'limits.in_frames_burst'),
    );
  });
});

describe('unit rules', () => {
  const t = table([
    { name: 'promo', rate: 50, rules: [{ scope: 'topic', match: 'promo-*' }] },
    { name: 'vip', rate: 5000, rules: [{ scope: 'key', match: 'vip-?' }] },
    { name: 'canary', rate: 10, rules: [{ scope: 'device', match: 'dev-*', percent: 10 }] },
  ]);

  test('scope, glob, order; default for the rest with the limits.push_* budget', () => {
    assert.equal(t.classify('any', topic('promo-spring')).name, 'promo');
    assert.equal(t.classify('vip-1', topic('promo-spring')).name, 'promo', 'the first unit whose rule matches wins');
    assert.equal(t.classify('vip-1', device('x')).name, 'vip');
    assert.equal(t.classify('vip-12', device('x')).name, 'default', '? is one character');
    assert.equal(t.classify('any', { kind: 'all' }).name, 'default');
    const d = t.classify('any', topic('news'));
    assert.deepEqual(d, { name: 'default', rate: 1000, burst: 2000, queue: 10_000, queue_bytes: 64 * 1024 * 1024 });
  });

  test('reachable: the units a key may land in whatever it pushes (for the 429 before a body is read)', () => {
    const names = (key: string, tb = t) => tb.reachable(key).map((u) => u.name);
    assert.deepEqual(names('any'), ['promo', 'canary', 'default'], 'topic and device rules depend on the push');
    assert.deepEqual(names('vip-1'), ['promo', 'vip'], 'a key rule at 100 % ends the list: default is out of reach');
    const half = table([{ name: 'half', rate: 5, rules: [{ scope: 'key', match: 'k*', percent: 50 }] }]);
    assert.deepEqual(names('k1', half), ['half', 'default'], 'below 100 % the rest may still go on');
    assert.deepEqual(names('x', half), ['default']);
    // every unit classify can answer is in the list
    for (const key of ['any', 'vip-1', 'vip-12']) {
      for (const target of [topic('promo-a'), topic('news'), device('dev-1'), device('x'), { kind: 'all' } as PushTarget]) {
        assert.ok(names(key).includes(t.classify(key, target).name), `${key} -> ${JSON.stringify(target)}`);
      }
    }
  });

  test('a percentage takes that share of the matching traffic, deterministically', () => {
    let inUnit = 0;
    const n = 10_000;
    for (let i = 0; i < n; i++) if (t.classify('k', device(`dev-${i}`)).name === 'canary') inUnit++;
    assert.ok(Math.abs(inUnit / n - 0.1) < 0.015, `10 % rule took ${((100 * inUnit) / n).toFixed(1)} %`);
    for (let i = 0; i < 100; i++) assert.equal(t.classify('k', device(`dev-${i}`)).name, t.classify('k2', device(`dev-${i}`)).name, 'the same device draws the same');
  });

  test('raising the percentage only adds devices (a rollout never flaps)', () => {
    const at = (p: number) => table([{ name: 'roll', rate: 1, rules: [{ scope: 'key', match: '*', percent: p }] }]);
    const members = (p: number) => {
      const tb = at(p);
      const s = new Set<string>();
      for (let i = 0; i < 2000; i++) if (tb.classify('k', device(`d${i}`)).name === 'roll') s.add(`d${i}`);
      return s;
    };
    const s5 = members(5);
    const s25 = members(25);
    const s100 = members(100);
    for (const d of s5) assert.ok(s25.has(d));
    assert.equal(s100.size, 2000);
    assert.equal(members(0).size, 0);
  });

  test('percentDraw is stable across processes (FNV-1a)', () => {
    assert.equal(percentDraw('roll', 'd1'), percentDraw('roll', 'd1'));
    assert.ok(percentDraw('roll', 'd1') >= 0 && percentDraw('roll', 'd1') < 100);
  });

  test('globs are literal except * and ?', () => {
    assert.equal(globRegExp('a.b*').test('a.bcd'), true);
    assert.equal(globRegExp('a.b*').test('axbcd'), false);
    assert.equal(globRegExp('(x)|y').test('(x)|y'), true);
  });

  test('a reload that replaces config.units is picked up', () => {
    const config = defaults();
    const tb = new UnitTable(config);
    assert.equal(tb.classify('k', topic('promo-x')).name, 'default');
    assert.deepEqual(tb.reachable('k').map((u) => u.name), ['default']);
    const r = parseUnits([{ name: 'promo', rate: 5, rules: [{ scope: 'topic', match: 'promo-*' }] }], false) as { value: Config['units'] };
    config.units = r.value;
    assert.equal(tb.classify('k', topic('promo-x')).name, 'promo');
    assert.deepEqual(tb.names(), ['default', 'promo']);
    assert.deepEqual(tb.reachable('k').map((u) => u.name), ['promo', 'default'], 'the per-key answer is not kept across a reload');
    config.limits.push_queue = 7;
    assert.equal(tb.reachable('k').at(-1)?.queue, 7, 'nor are the default unit limits');
  });
});
