/**
 * Isolation units, in the manner of traffic colouring: rules give every push a colour
 * (a unit), and each unit has its own rate budget, queue and metrics, so a flood in
 * one unit leaves the others' budgets untouched.
 *
 * A rule has a scope (what it looks at: the API `key`, the `topic` of a topic push, or
 * the target `device`), a condition (`match`: a glob, `*` any run, `?` one character),
 * a destination (the unit whose `rules` list holds it) and a `percent` of the matching
 * traffic it takes (gradual rollout). Units are tried in config order, rules in list
 * order; the first rule that matches and whose percentage draw takes the push wins; a
 * push no rule takes goes to the `default` unit (budget from limits.push_*).
 *
 * The percentage draw hashes the unit name with the push's identity (its first target
 * device, its topic, or `*` for a broadcast), so it is deterministic: the same device
 * stays in or out of a 10 % rollout on every worker and after every restart, and
 * raising the percentage only adds devices.
 *
 * In the file units are a TOML array of tables:
 *
 *     [[units]]
 *     name = "marketing"
 *     rate = 50                      # target devices per second, per API key, per worker
 *     rules = [ { scope = "topic", match = "promo-*" },
 *               { scope = "key", match = "crm-*", percent = 10 } ]
 *
 * As MOOR_UNITS or --units= the same list is one value: a TOML inline array
 * (`[{name="marketing", rate=50, rules=[{scope="topic", match="promo-*"}]}]`) or JSON.
 */
import { parse as parseToml } from 'smol-toml';
import type { PushTarget } from '../api/backend';
import type { Config, UnitConfig, UnitRule } from '../config/types';

export const UNIT_SCOPES = ['key', 'topic', 'device'] as const;
export const DEFAULT_UNIT = 'default';
/** Bounds of the unit fields; README "Flow control" lists them. */
export const UNIT_BOUNDS = {
  rate: [1, 1_000_000],
  burst: [1, 10_000_000],
  queue: [0, 1_000_000],
  queue_bytes: [0, 1024 * 1024 * 1024],
  percent: [0, 100],
  units: 64,
  rules: 64,
  match: 256,
} as const;
const UNIT_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/** A unit as the pacer uses it: name and budget. */
export interface Unit {
  name: string;
  /** Tokens (target devices) per second, per API key, per worker. */
  rate: number;
  burst: number;
  /** Pushes that may wait, per API key, per worker; beyond that 429. */
  queue: number;
  /** Bytes those waiting pushes may hold in memory. */
  queue_bytes: number;
}

/** A problem with the units value; the config loader reports every one. */
type Problem = { error: string; hint?: string };
type Parsed = { value: UnitConfig[] } | (Problem & { more?: Problem[] });

const HINT = 'e.g. [[units]] name = "bulk-crm", rate = 100, rules = [{ scope = "key", match = "crm-*", percent = 10 }]';

/** Checks `units` from the file (an array of tables) or from env/flags (text: TOML inline array or JSON); every problem found, not only the first. */
export function parseUnits(raw: unknown, text: boolean): Parsed {
  let doc = raw;
  if (text && typeof raw === 'string') {
    const t = raw.trim();
    try {
      doc = JSON.parse(t);
    } catch {
      try {
        doc = parseToml(`units = ${t}`).units;
      } catch (err) {
        return { error: `is not a TOML inline array or JSON: ${(err as Error).message.split('\n')[0]}`, hint: HINT };
      }
    }
  }
  if (!Array.isArray(doc)) return { error: 'must be an array of tables ([[units]])', hint: HINT };
  if (doc.length > UNIT_BOUNDS.units) return { error: `at most ${UNIT_BOUNDS.units} units` };
  const out: UnitConfig[] = [];
  const problems: Problem[] = [];
  const names = new Set<string>();
  for (let i = 0; i < doc.length; i++) {
    const r = parseUnit(doc[i], `units[${i}]`);
    problems.push(...r.problems);
    const name = r.name;
    if (name !== null) {
      if (names.has(name)) problems.push({ error: `units[${i}]: name "${name}" is used twice` });
      names.add(name);
    }
    if (r.value) out.push(r.value);
  }
  if (problems.length > 0) {
    const all = problems.map((p) => ({ error: p.error, hint: p.hint ?? HINT }));
    return { ...all[0], more: all.slice(1) };
  }
  return { value: out };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function int(o: Record<string, unknown>, field: keyof typeof UNIT_BOUNDS, at: string, dflt: number | undefined): number | string {
  const v = typeof o[field] === 'bigint' ? Number(o[field]) : o[field];
  if (v === undefined) return dflt === undefined ? `${at}.${field} is required` : dflt;
  const [min, max] = UNIT_BOUNDS[field] as readonly [number, number];
  if (typeof v !== 'number' || !Number.isInteger(v)) return `${at}.${field} must be an integer`;
  if (v < min || v > max) return `${at}.${field} must be between ${min} and ${max}`;
  return v;
}

/** One unit: its config when it is sound, its name when readable (for the duplicate check), and every problem. */
function parseUnit(u: unknown, at: string): { value: UnitConfig | null; name: string | null; problems: Problem[] } {
  const problems: Problem[] = [];
  const fail = { value: null, name: null, problems };
  if (!isObject(u)) return { ...fail, problems: [{ error: `${at} must be a table`, hint: HINT }] };
  const known = ['name', 'rate', 'burst', 'queue', 'queue_bytes', 'rules'];
  for (const k of Object.keys(u)) if (!known.includes(k)) problems.push({ error: `${at}.${k} is not a unit field`, hint: `fields: ${known.join(', ')}` });
  const name = typeof u.name === 'string' && UNIT_NAME.test(u.name) ? u.name : null;
  if (name === null) problems.push({ error: `${at}.name must be 1-32 of a-z 0-9 _ - (it is a metrics label)`, hint: 'name = "marketing"' });
  else if (name === DEFAULT_UNIT) problems.push({ error: `${at}.name "default" is reserved for pushes no rule takes (its budget is limits.push_*)`, hint: 'pick another name for this unit' });
  const rate = int(u, 'rate', at, undefined);
  if (typeof rate === 'string') problems.push({ error: rate });
  const fields = { burst: int(u, 'burst', at, typeof rate === 'number' ? 2 * rate : 1), queue: int(u, 'queue', at, 10_000), queue_bytes: int(u, 'queue_bytes', at, 16 * 1024 * 1024) };
  for (const v of Object.values(fields)) if (typeof v === 'string') problems.push({ error: v });
  const rules: UnitRule[] = [];
  if (!Array.isArray(u.rules) || u.rules.length === 0) problems.push({ error: `${at}.rules must be a non-empty array of { scope, match, percent }`, hint: HINT });
  else if (u.rules.length > UNIT_BOUNDS.rules) problems.push({ error: `${at}.rules: at most ${UNIT_BOUNDS.rules}` });
  else {
    for (let j = 0; j < u.rules.length; j++) {
      const r = parseRule(u.rules[j], `${at}.rules[${j}]`);
      if (Array.isArray(r)) problems.push(...r.map((error) => ({ error, hint: HINT })));
      else rules.push(r);
    }
  }
  if (problems.length > 0 || name === null || typeof rate === 'string') return { value: null, name, problems };
  return { value: { name, rate, burst: fields.burst as number, queue: fields.queue as number, queue_bytes: fields.queue_bytes as number, rules }, name, problems };
}

function parseRule(r: unknown, at: string): UnitRule | string[] {
  if (!isObject(r)) return [`${at} must be a table { scope, match, percent }`];
  const errors: string[] = [];
  for (const k of Object.keys(r)) if (k !== 'scope' && k !== 'match' && k !== 'percent') errors.push(`${at}.${k} is not a rule field (scope, match, percent)`);
  if (typeof r.scope !== 'string' || !(UNIT_SCOPES as readonly string[]).includes(r.scope)) errors.push(`${at}.scope must be one of ${UNIT_SCOPES.join(', ')}`);
  if (typeof r.match !== 'string' || r.match === '' || r.match.length > UNIT_BOUNDS.match) errors.push(`${at}.match must be a glob of 1-${UNIT_BOUNDS.match} characters`);
  const percent = int(r, 'percent', at, 100);
  if (typeof percent === 'string') errors.push(percent);
  if (errors.length > 0) return errors;
  return { scope: r.scope as UnitRule['scope'], match: r.match as string, percent: percent as number };
}

/** `*` any run, `?` one character, everything else literal. */
export function globRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[\\s\\S]*').replace(/\?/g, '[\\s\\S]');
  return new RegExp(`^${body}$`);
}

/** FNV-1a of `unit` and `id`, mod 100: the percentage draw. */
export function percentDraw(unit: string, id: string): number {
  let h = 0x811c9dc5;
  const s = `${unit}\u0000${id}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % 100;
}

interface CompiledRule {
  scope: UnitRule['scope'];
  re: RegExp;
  percent: number;
}

interface Compiled {
  source: UnitConfig[];
  units: Array<{ unit: Unit; rules: CompiledRule[] }>;
  /** reachable() per API key, for this config. */
  reachable: Map<string, Unit[]>;
}

/** Maps pushes to units; recompiles when `config.units` is replaced (SIGHUP). */
export class UnitTable {
  private compiled: Compiled | null = null;
  private readonly fallback: Unit = { name: DEFAULT_UNIT, rate: 0, burst: 0, queue: 0, queue_bytes: 0 };

  constructor(private readonly config: Config) {}

  /** The unit of a push from `key` to `target`. */
  classify(key: string, target: PushTarget): Unit {
    const c = this.compile();
    const identity = target.kind === 'device' ? target.deviceIds[0] : target.kind === 'topic' ? target.topic : '*';
    for (const { unit, rules } of c.units) {
      for (const r of rules) {
        const subject = r.scope === 'key' ? key : r.scope === 'topic' ? (target.kind === 'topic' ? target.topic : null) : target.kind === 'device' ? target.deviceIds[0] : null;
        if (subject === null || !r.re.test(subject)) continue;
        if (r.percent >= 100 || percentDraw(unit.name, identity) < r.percent) return unit;
      }
    }
    return this.defaultUnit();
  }

  /**
   * The units a push from `key` may land in, whatever its target, in config order: a
   * unit with a rule on the key at 100 % ends the list (no later unit, nor `default`,
   * is reachable); topic and device rules, and key rules below 100 %, depend on the push.
   */
  reachable(key: string): readonly Unit[] {
    const c = this.compile();
    // Asked before every push's body is read: once per key and config (keys are the configured ones).
    const d = this.defaultUnit();
    let out = c.reachable.get(key);
    if (out) return out;
    out = this.unitsOf(key, c, d);
    if (c.reachable.size < 1024) c.reachable.set(key, out);
    return out;
  }

  private unitsOf(key: string, c: Compiled, d: Unit): Unit[] {
    const out: Unit[] = [];
    for (const { unit, rules } of c.units) {
      let possible = false;
      for (const r of rules) {
        if (r.scope !== 'key') possible = true;
        else if (r.re.test(key)) {
          if (r.percent >= 100) {
            out.push(unit);
            return out;
          }
          possible = true;
        }
      }
      if (possible) out.push(unit);
    }
    out.push(d);
    return out;
  }

  /** Every unit's name, `default` first (metrics). */
  names(): string[] {
    return [DEFAULT_UNIT, ...this.compile().units.map((u) => u.unit.name)];
  }

  private defaultUnit(): Unit {
    const l = this.config.limits;
    const d = this.fallback;
    d.rate = l.push_per_s;
    d.burst = l.push_burst;
    d.queue = l.push_queue;
    d.queue_bytes = l.push_queue_bytes;
    return d;
  }

  private compile(): Compiled {
    const source = this.config.units;
    if (this.compiled?.source === source) return this.compiled;
    this.compiled = {
      source,
      units: source.map((u) => ({
        unit: { name: u.name, rate: u.rate, burst: u.burst, queue: u.queue, queue_bytes: u.queue_bytes },
        rules: u.rules.map((r) => ({ scope: r.scope, re: globRegExp(r.match), percent: r.percent })),
      })),
      reachable: new Map(),
    };
    return this.compiled;
  }
}
