/**
 * Builds the Config from four layers, later ones winning: defaults < TOML file <
 * environment (`MOOR_WS_PORT`) < flags (`--ws.port=8080`, `--ws.port 8080`). Every problem
 * in every layer is collected and thrown together as one ConfigError.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { isPemText } from '../util/pem';
import { ConfigError, type ConfigIssue, readFailure, suggestion } from './errors';
import { isWildcardHost } from './hosts';
import { type AnySpec, CONFIG_KEYS, type ConfigKey, defaults, envName, setKey, specOf } from './schema';
import type { Config } from './types';
import { checkConfig } from './validate';

export interface LoadOptions {
  /** TOML file; relative paths inside it are resolved against its directory. */
  file?: string;
  /** Config flags only (`--ws.port=8080`, `--workers 2`); the CLI strips its own first. */
  args: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  /** Told about suspicious but valid input (misspelt MOOR_* variables, weak secrets). */
  warn?: (message: string) => void;
}

/** One value from one layer, before it is checked against the schema. */
interface Entry {
  key: ConfigKey;
  raw: unknown;
  source: string;
  /** From env or a flag: everything is text and must be converted. */
  text: boolean;
  /** Relative paths are resolved against this directory. */
  baseDir: string;
}

const KNOWN = new Set<string>(CONFIG_KEYS);
const SECTIONS = new Set(CONFIG_KEYS.filter((k) => k.includes('.')).map((k) => k.split('.')[0]));
const BY_ENV = new Map(CONFIG_KEYS.map((k) => [envName(k), k]));

export function isConfigKey(name: string): name is ConfigKey {
  return KNOWN.has(name);
}

/** The resolved config, or a ConfigError listing every problem found. */
export function loadConfig(opts: LoadOptions): Config {
  const issues: ConfigIssue[] = [];
  const warn = opts.warn ?? (() => {});
  const cwd = process.cwd();
  const entries: Entry[] = [];
  if (opts.file !== undefined) entries.push(...fileEntries(path.resolve(cwd, opts.file), issues));
  entries.push(...envEntries(opts.env, cwd, warn));
  entries.push(...argEntries(opts.args, cwd, issues));

  const config = defaults();
  setKey(config, 'store.path', path.resolve(cwd, config.store.path));
  const sources = new Map<ConfigKey, string>();
  const bad = new Set<ConfigKey>();
  for (const e of entries) {
    const spec = specOf(e.key);
    const result = coerce(spec, e.raw, e.text);
    if ('error' in result) {
      // Tables name the field in their message; echoing the whole value would bury it.
      const got = spec.secret || spec.kind === 'tables' ? '' : `, got ${show(e.raw)}`;
      issues.push({ key: e.key, source: e.source, message: result.error + got, hint: result.hint ?? defaultHint(e.key) });
      for (const m of result.more ?? []) issues.push({ key: e.key, source: e.source, message: m.error, hint: m.hint ?? defaultHint(e.key) });
      bad.add(e.key);
      continue;
    }
    let value = result.value;
    if (spec.path && typeof value === 'string' && value !== '' && !isPemText(value)) value = path.resolve(e.baseDir, value);
    setKey(config, e.key, value);
    sources.set(e.key, e.source);
    bad.delete(e.key);
  }

  // node.advertise unset and a device listener bound to one address: devices can reach
  // the node only there, so WELCOME.resume_endpoint and dict_url name it.
  if (!sources.has('node.advertise')) {
    const bound = [config.ws.host, config.tcp.port !== 0 ? config.tcp.host : ''].find((h) => h !== '' && !isWildcardHost(h));
    if (bound !== undefined) setKey(config, 'node.advertise', bound.replace(/^\[(.*)\]$/, '$1'));
  }

  checkConfig({
    config,
    ok: (key) => !bad.has(key),
    isSet: (key) => sources.has(key),
    error: (key, message, hint) => issues.push({ key, source: sources.get(key), message, hint }),
    warn,
  });
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}

function fileEntries(file: string, issues: ConfigIssue[]): Entry[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    issues.push({ key: 'config', message: `cannot read ${file}: ${readFailure(err)}`, hint: 'check the --config path' });
    return [];
  }
  let table: Record<string, unknown>;
  try {
    table = parseToml(text);
  } catch (err) {
    const where = err instanceof TomlError ? ` at line ${err.line}, column ${err.column}` : '';
    const first = (err as Error).message.split('\n')[0];
    issues.push({ key: 'config', source: file, message: `not valid TOML${where}: ${first}`, hint: 'strings go in quotes, sections as [name], one key = value per line' });
    return [];
  }
  const out: Entry[] = [];
  flatten(table, '', file, out, issues);
  return out;
}

function isTable(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  // smol-toml builds tables without a prototype; dates are objects too, but not tables.
  const proto = Object.getPrototypeOf(v);
  return proto === null || proto === Object.prototype;
}

function flatten(table: Record<string, unknown>, prefix: string, file: string, out: Entry[], issues: ConfigIssue[]): void {
  const baseDir = path.dirname(file);
  for (const [name, value] of Object.entries(table)) {
    const key = prefix + name;
    if (isConfigKey(key)) {
      if (isTable(value)) {
        issues.push({ key, source: file, message: 'is a single value, not a section', hint: `write ${key} = …` });
      } else {
        out.push({ key, raw: value, source: file, text: false, baseDir });
      }
    } else if (isTable(value) && prefix === '' && SECTIONS.has(name)) {
      flatten(value, `${key}.`, file, out, issues);
    } else if (SECTIONS.has(key)) {
      const first = CONFIG_KEYS.find((k) => k.startsWith(`${key}.`));
      issues.push({ key, source: file, message: 'is a section, not a value', hint: `write [${key}] and then its keys, e.g. ${first}` });
    } else {
      // An unknown [section] is reported once, against its keys' nearest known names.
      const near = isTable(value) ? suggestion(name, [...SECTIONS], (s) => `[${s}]`) : suggestion(key, CONFIG_KEYS);
      issues.push({ key, source: file, message: isTable(value) ? 'unknown section' : 'unknown key', hint: near ?? EVERY_KEY });
    }
  }
}

function envEntries(env: LoadOptions['env'], cwd: string, warn: (m: string) => void): Entry[] {
  const out: Entry[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('MOOR_') || value === undefined) continue;
    const key = BY_ENV.get(name);
    if (key === undefined) {
      // Other MOOR_* variables exist (tests, drain tuning); only likely typos are worth a word.
      const hint = suggestion(name, [...BY_ENV.keys()]);
      if (hint) warn(`ignoring unknown environment variable ${name} (${hint})`);
      continue;
    }
    // An empty variable (e.g. `MOOR_TLS_CERT=` in an EnvironmentFile) means "not set".
    if (value === '') continue;
    out.push({ key, raw: value, source: name, text: true, baseDir: cwd });
  }
  return out;
}

function argEntries(args: readonly string[], cwd: string, issues: ConfigIssue[]): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith('--') || arg.length === 2) {
      issues.push({ key: arg, message: 'unexpected argument', hint: 'config flags look like --ws.port=8080' });
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    let value: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (value === undefined && i + 1 < args.length && !args[i + 1].startsWith('--')) value = args[++i];
    if (!isConfigKey(name)) {
      issues.push({ key: `--${name}`, message: 'unknown option', hint: suggestion(name, CONFIG_KEYS, (k) => `--${k}`) ?? EVERY_KEY });
    } else if (value === undefined) {
      issues.push({ key: name, source: `--${name}`, message: 'needs a value', hint: `--${name}=${example(name)}` });
    } else {
      out.push({ key: name, raw: value, source: `--${name}`, text: true, baseDir: cwd });
    }
  }
  return out;
}

/** `a, b,,c` → ['a', 'b', 'c'] (env, flags and TOML strings all list this way). */
export function splitList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

type Coerced = { value: unknown } | { error: string; hint?: string; more?: Array<{ error: string; hint?: string }> };

/** `["a", 'b']` as TOML reads it, or null when it is not an array of strings. */
function tomlArray(text: string): string[] | null {
  try {
    const v = (parseToml(`v = ${text}`) as { v: unknown }).v;
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : null;
  } catch {
    return null;
  }
}

/** Checks one raw value against its spec; text (env, flags) is converted first. */
function coerce(spec: AnySpec, raw: unknown, text: boolean): Coerced {
  switch (spec.kind) {
    case 'int': {
      let n: unknown = raw;
      if (typeof raw === 'bigint') n = Number(raw);
      else if (text && typeof raw === 'string' && /^[+-]?\d+$/.test(raw.trim())) n = Number(raw.trim());
      if (typeof n !== 'number' || !Number.isInteger(n)) {
        const hint = !text && typeof raw === 'string' ? 'write the number without quotes' : undefined;
        return { error: 'must be an integer', hint };
      }
      if (n < spec.min! || n > spec.max!) return { error: `must be between ${spec.min} and ${spec.max}` };
      return { value: n };
    }
    case 'list': {
      // `--x='["a", "b"]'` and `MOOR_X='[]'`: the TOML array spelling works in text too.
      if (text && typeof raw === 'string' && raw.trim().startsWith('[')) {
        const arr = tomlArray(raw);
        if (arr === null) return { error: 'must be a list of strings', hint: 'a TOML array ["a", "b"], [] for none, or a comma-separated string' };
        raw = arr;
      }
      if (typeof raw === 'string') return { value: splitList(raw) };
      if (!Array.isArray(raw) || raw.some((s) => typeof s !== 'string')) {
        return { error: 'must be a list of strings', hint: 'a TOML array ["a", "b"] or a comma-separated string' };
      }
      return { value: raw.map((s: string) => s.trim()).filter((s) => s !== '') };
    }
    case 'enum': {
      if (typeof raw !== 'string' || !spec.values!.includes(raw)) {
        const near = typeof raw === 'string' ? suggestion(raw, spec.values!) : undefined;
        return { error: `must be one of ${spec.values!.join(', ')}`, hint: near };
      }
      return { value: raw };
    }
    case 'tables':
      return spec.parse!(raw, text);
    case 'string': {
      if (typeof raw !== 'string') return { error: 'must be a string', hint: 'quote it in TOML: key = "value"' };
      if (spec.nonEmpty && raw.trim() === '') return { error: 'must not be empty' };
      return { value: raw };
    }
  }
}

function show(raw: unknown): string {
  if (typeof raw === 'string') return JSON.stringify(raw);
  if (raw instanceof Date) return raw.toISOString();
  return JSON.stringify(raw, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) ?? String(raw);
}

const EVERY_KEY = '`moor check-config --help` lists every key';

/** For a rejected value that got no better hint: what the key defaults to. */
function defaultHint(key: ConfigKey): string {
  const spec = specOf(key);
  if (spec.defaultText !== undefined) return `the default is ${spec.defaultText}`;
  const d = spec.default;
  return d === '' ? 'leave it unset for the default' : `the default is ${JSON.stringify(d)}`;
}

/** A plausible value for a hint: the default unless it is empty or computed. */
function example(key: ConfigKey): string {
  const spec = specOf(key);
  if (spec.kind === 'enum') return spec.values![0];
  const d = spec.default;
  if (typeof d === 'number' || (typeof d === 'string' && d !== '')) return String(d);
  return spec.kind === 'int' ? String(spec.min) : 'VALUE';
}
