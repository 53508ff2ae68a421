/**
 * Every config key in one commented table: default, type, bounds, one line of doc.
 * The table is typed against `Config` (src/config/types.ts), so a key added there and
 * not here (or the other way round) fails to compile. api.md is the contract for names.
 */
import os from 'node:os';
import { parseUnits } from '../flow/units';
import { DEFAULT_MAX_FRAME, MAX_MAX_FRAME } from '../protocol/constants';
import type { Config } from './types';

type Leaf = string | number | boolean | readonly unknown[];
/** Dotted names of every leaf of T: `'workers' | 'ws.port' | …`. */
export type KeyOf<T> = {
  [K in keyof T & string]: T[K] extends Leaf ? K : `${K}.${KeyOf<T[K]>}`;
}[keyof T & string];
type ValueAt<T, P extends string> = P extends `${infer H}.${infer R}`
  ? H extends keyof T
    ? ValueAt<T[H], R>
    : never
  : P extends keyof T
    ? T[P]
    : never;

export type ConfigKey = KeyOf<Config>;
export type ConfigValue<K extends ConfigKey> = ValueAt<Config, K>;

interface Common<V> {
  default: V | (() => V);
  /** Shown in help instead of a computed default's value. */
  defaultText?: string;
  doc: string;
  /** SIGHUP may apply a new value without restarting (api.md: TLS certs, API keys, limits). */
  live?: boolean;
  /** Never echoed back in errors or help. */
  secret?: boolean;
}
// [V] stops the conditional from distributing over enum unions.
type Shape<V> = [V] extends [number]
  ? { kind: 'int'; min: number; max: number }
  : [V] extends [readonly string[]]
    ? { kind: 'list' }
    : [V] extends [readonly object[]]
      ? { kind: 'tables'; /** checks the file's array of tables, or env/flag text */ parse: (raw: unknown, text: boolean) => { value: V } | { error: string; hint?: string } }
      : string extends V
      ? { kind: 'string'; nonEmpty?: boolean; /** a file or directory: made absolute */ path?: boolean }
      : { kind: 'enum'; values: readonly V[] };
export type KeySpec<V = unknown> = Common<V> & Shape<V>;
/** The loosely typed view load.ts and help work with. */
export type AnySpec = Common<unknown> & {
  kind: 'int' | 'string' | 'list' | 'enum' | 'tables';
  parse?: (raw: unknown, text: boolean) => { value: unknown } | { error: string; hint?: string };
  min?: number;
  max?: number;
  values?: readonly string[];
  nonEmpty?: boolean;
  path?: boolean;
};

const MiB = 1024 * 1024;
const PORT = { kind: 'int', min: 0, max: 65_535 } as const;
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

export const SCHEMA: { readonly [K in ConfigKey]: KeySpec<ConfigValue<K>> } = {
  workers: {
    kind: 'int', min: 1, max: 1024,
    default: () => os.availableParallelism(), defaultText: 'number of cores',
    doc: 'worker processes, each with its own event loop',
  },
  // ws.port and api.port 0 mean "pick a free port" (tests rely on it); tcp.port 0 is off.
  'ws.port': { ...PORT, default: 8080, doc: 'WebSocket listener port' },
  'ws.host': { kind: 'string', nonEmpty: true, default: '0.0.0.0', doc: 'WebSocket listener address' },
  'ws.path': { kind: 'string', nonEmpty: true, default: '/ws', doc: 'HTTP path of the WebSocket upgrade' },
  'ws.resume_port_base': {
    ...PORT, default: 0, defaultText: '0 (= ws.port + 1, skipping other listeners)',
    doc: 'worker i also listens on base + i so devices can resume TLS on the same worker',
  },
  'tcp.port': { ...PORT, default: 7070, doc: 'raw TCP listener port; 0 turns raw TCP off' },
  'tcp.host': { kind: 'string', nonEmpty: true, default: '0.0.0.0', doc: 'raw TCP listener address' },
  'tls.cert': {
    kind: 'string', path: true, default: '', live: true,
    doc: 'PEM certificate chain; when set (with tls.key) both listeners speak TLS',
  },
  'tls.key': { kind: 'string', path: true, default: '', live: true, doc: 'PEM private key for tls.cert' },
  'tls.ticket_rotate_s': {
    kind: 'int', min: 1, max: 302_400, default: 43_200,
    doc: 'raw TCP TLS session-ticket keys rotate this often (s); the previous key is still accepted',
  },
  'tls.ticket_keys_file': {
    kind: 'string', path: true, default: '', defaultText: 'unset (keys generated, kept in store.path)',
    doc: 'ticket keys shared by several hosts: 48 or 96 bytes (current, previous), mode 0600; re-read on SIGHUP',
  },
  'api.port': { ...PORT, default: 8081, doc: 'backend HTTP API port' },
  'api.host': { kind: 'string', nonEmpty: true, default: '127.0.0.1', doc: 'backend HTTP API address' },
  'api.keys': {
    kind: 'list', default: [], defaultText: 'generated', live: true, secret: true,
    doc: 'bearer keys the HTTP API accepts (TOML array or comma-separated)',
  },
  'api.max_body': { kind: 'int', min: 1024, max: 256 * MiB, default: MiB, doc: 'largest request body the API reads, bytes' },
  'auth.jwt_secret': {
    kind: 'string', default: '', defaultText: 'generated', secret: true,
    doc: 'HS256 device-token secret (its UTF-8 bytes are the key)',
  },
  'auth.jwt_public_key': {
    kind: 'string', path: true, default: '',
    doc: 'EC P-256 public key, a PEM file or the PEM text itself: device tokens are verified as ES256',
  },
  'store.kind': { kind: 'enum', values: ['embedded', 'redis'], default: 'embedded', doc: 'inbox and presence engine' },
  'store.path': {
    kind: 'string', path: true, nonEmpty: true, default: './data',
    doc: 'directory of the embedded store (and secrets.json)',
  },
  'store.redis_url': { kind: 'string', default: '', doc: 'redis:// or rediss:// URL, required when store.kind = "redis"' },
  'node.id': {
    kind: 'string', nonEmpty: true, default: () => os.hostname(), defaultText: 'hostname',
    doc: "this node's name in the fleet",
  },
  'node.advertise': {
    kind: 'string', nonEmpty: true, default: () => firstIPv4(), defaultText: 'ws.host or tcp.host when bound to one address, else the first non-loopback IPv4',
    doc: 'host other parties (devices resuming, peers) should dial',
  },
  'upstream.url': { kind: 'string', default: '', doc: 'http(s) URL device REQUESTs are POSTed to; unset = 501' },
  'upstream.timeout_ms': { kind: 'int', min: 1, max: 600_000, default: 10_000, doc: 'upstream request timeout' },
  'upstream.concurrency': { kind: 'int', min: 1, max: 65_536, default: 256, doc: 'upstream requests in flight per worker' },
  'heartbeat.default_ms': {
    kind: 'int', min: 1000, max: 3_600_000, default: 270_000, live: true,
    doc: 'interval for an unknown network, and where every new network class starts',
  },
  'heartbeat.grace_ms': {
    kind: 'int', min: 0, max: 600_000, default: 30_000, live: true,
    doc: 'added to 2 x interval before an idle session is closed',
  },
  // Smart heartbeat (src/heartbeat/policy.ts, README "Smart heartbeat"). Every key below
  // but max_classes and sync_ms is applied live by HeartbeatPolicy.configure.
  // 3.5 min: WeChat Mars's floor; the shortest carrier NAT timeouts on record are ~5 min.
  'heartbeat.min_ms': {
    kind: 'int', min: 1000, max: 3_600_000, default: 210_000, live: true,
    doc: 'shortest background interval advised; a class backs off to it',
  },
  // 28 min: the longest cellular NAT timeouts seen are ~28-30 min, and beyond that the
  // idle close (2 x interval + grace, ~57 min) finds dead sessions too late to matter.
  'heartbeat.max_ms': {
    kind: 'int', min: 1000, max: 7_200_000, default: 1_680_000, live: true,
    doc: 'longest interval advised on cellular (and unknown-kind) networks',
  },
  // 45 min: home routers mostly keep idle TCP mappings for an hour or more (Linux
  // conntrack: 5 days); 45 min still closes a dead session within ~1.5 h.
  'heartbeat.wifi_max_ms': {
    kind: 'int', min: 1000, max: 7_200_000, default: 2_700_000, live: true,
    doc: 'longest interval advised on Wi-Fi and Ethernet',
  },
  // 1 min: in foreground the user is waiting and the radio is awake for the UI anyway,
  // so a dead link should show within ~2 min and the PINGs cost little battery.
  'heartbeat.foreground_ms': {
    kind: 'int', min: 1000, max: 3_600_000, default: 60_000, live: true,
    doc: 'fixed interval for sessions whose HELLO says foreground',
  },
  // 5%: enough probers in a class of a few hundred devices; the rest keep the proven value.
  'heartbeat.probe_share': {
    kind: 'int', min: 0, max: 100, default: 5, live: true,
    doc: 'percent of new background sessions of a class that probe a longer interval',
  },
  // 8: a failed probe costs at most this many NAT drops per class and worker, and one
  // window of 8 can bring the 5 successes a step needs.
  'heartbeat.max_probes': {
    kind: 'int', min: 1, max: 10_000, default: 8, live: true,
    doc: 'probing sessions started per class and worker per probe window ((k + 1) x probe)',
  },
  // 2: one quiet interval survived could be luck (a push refreshed the NAT); two are not.
  'heartbeat.probe_intervals': {
    kind: 'int', min: 1, max: 7, default: 2, live: true,
    doc: 'quiet intervals (k) a session must survive for a success at its interval',
  },
  // 60 s: Mars's step. It doubles after every step-up, so 4.5 -> 28 min takes ~6 steps.
  'heartbeat.step_ms': {
    kind: 'int', min: 1000, max: 3_600_000, default: 60_000, live: true,
    doc: 'first (and smallest) probe step above the proven interval',
  },
  'heartbeat.successes_to_step': {
    kind: 'int', min: 1, max: 1000, default: 5, live: true,
    doc: 'successes at the probe interval before it becomes the proven one (Mars: 5)',
  },
  'heartbeat.failures_to_back_off': {
    kind: 'int', min: 1, max: 1000, default: 2, live: true,
    doc: 'failures (no fewer than the successes) that stop a probe or back the proven interval off (Mars: 2)',
  },
  'heartbeat.margin_ms': {
    kind: 'int', min: 0, max: 600_000, default: 20_000, live: true,
    doc: 'taken off the highest proven interval once a failure above it is known (Mars: 20 s)',
  },
  // 6 h: a NAT that failed stays failed for a while; four re-probes a day notice a
  // carrier that lengthened its timeout, each costing at most failures_to_back_off drops.
  'heartbeat.cooldown_ms': {
    kind: 'int', min: 0, max: 604_800_000, default: 21_600_000, live: true,
    doc: 'how long a failed interval stays a ceiling before it is probed again',
  },
  'heartbeat.max_classes': {
    kind: 'int', min: 1, max: 65_536, default: 1024,
    doc: 'network classes (kind + carrier) remembered; the least recently used idle one is dropped',
  },
  'heartbeat.sync_ms': {
    kind: 'int', min: 1000, max: 3_600_000, default: 30_000,
    doc: "how often a worker merges its class table with the store's (shared by workers and nodes)",
  },
  // Compression (src/compression/, README "Compression"). Read at use (live) unless marked.
  'compression.codecs': {
    kind: 'list', default: ['zstd', 'lz4'],
    doc: 'codecs offered to devices that list them in HELLO: zstd, lz4 (empty = identity only)',
  },
  // 64 B: below it a zstd frame header and the varint eat most of the gain.
  'compression.min_bytes': {
    kind: 'int', min: 0, max: MAX_MAX_FRAME, default: 64, live: true,
    doc: 'payloads below this size are sent as they are (raised 4x while the event loop lags)',
  },
  'compression.zstd_level': {
    kind: 'int', min: 1, max: 19, default: 3,
    doc: 'zstd level (dictionaries are prepared at it; 3 compresses a small payload in ~2 us)',
  },
  // 1 in 20: a worker pushing 1,000/s fills a 1 MiB ring of ~500 B payloads in ~40 s.
  'compression.sample_one_in': {
    kind: 'int', min: 0, max: 1_000_000, default: 20, live: true,
    doc: 'one outgoing push payload in this many is kept as a training sample (0 = none); never logged',
  },
  'compression.sample_bytes': {
    kind: 'int', min: 65_536, max: 256 * MiB, default: 2 * MiB,
    doc: "each worker's sample ring, newest kept: its memory and its size in the store",
  },
  'compression.sample_flush_ms': {
    kind: 'int', min: 1000, max: 86_400_000, default: 60_000,
    doc: 'how often a worker writes its sample ring to the store (when it changed)',
  },
  'compression.dict_bytes': {
    kind: 'int', min: 1024, max: 4 * MiB, default: 16_384, live: true,
    doc: 'largest trained dictionary; 16 KiB compresses 100 B-2 KiB payloads within ~5% of 64 KiB, a quarter of the download and memory on devices',
  },
  'compression.dict_keep': {
    kind: 'int', min: 1, max: 64, default: 4, live: true,
    doc: 'dictionary versions kept; an older one goes once no connected device uses it',
  },
  'compression.dict_min_samples': {
    kind: 'int', min: 8, max: 10_000_000, default: 200, live: true,
    doc: 'training refuses to run on fewer samples',
  },
  'compression.train_interval_ms': {
    kind: 'int', min: 0, max: 30 * 86_400_000, default: 0, defaultText: '0 (on demand only)', live: true,
    doc: 'worker 0 trains a new dictionary this often (when the newest is older than this)',
  },
  'compression.dict_poll_ms': {
    kind: 'int', min: 200, max: 3_600_000, default: 30_000,
    doc: 'how often a worker re-reads the dictionary index and reports which dictionaries its devices use',
  },
  'compression.dict_url_base': {
    kind: 'string', default: '', defaultText: 'http(s)://node.advertise:ws.port',
    doc: 'base of WELCOME.dict_url (+ /v1/dicts/{id}), e.g. a CDN in front of the gateways',
  },
  'compression.lag_ms': {
    kind: 'int', min: 1, max: 60_000, default: 50, live: true,
    doc: 'event-loop lag (worst stall in a second) above which a worker backs off: bigger threshold, then lz4, then identity',
  },
  'compression.lag_recover_ms': {
    kind: 'int', min: 1000, max: 3_600_000, default: 10_000, live: true,
    doc: 'lag below half of lag_ms for this long steps the back-off down by one',
  },
  // max_frame and max_buffered are not live: uWS fixes a WebSocket listener's message
  // ceiling and backpressure limit when it is created, and WELCOME must not promise more.
  'limits.max_frame': {
    kind: 'int', min: 1024, max: MAX_MAX_FRAME, default: DEFAULT_MAX_FRAME,
    doc: 'largest frame payload accepted, bytes (protocol max 16 MiB)',
  },
  'limits.handshake_timeout_ms': {
    kind: 'int', min: 100, max: 600_000, default: 10_000, live: true,
    doc: 'time a connection has to send HELLO',
  },
  'limits.sync_page': { kind: 'int', min: 1, max: 10_000, default: 100, live: true, doc: 'pushes replayed per page' },
  'limits.max_buffered': {
    kind: 'int', min: 1024, max: 1024 * MiB, default: 262_144,
    doc: 'bytes a session may buffer before sends are dropped',
  },
  // Flow control (src/flow/, README "Flow control"): all read at use, so all live.
  // 5,000/s per worker: above soak's ramp (2,000/s over all workers, no failed handshake);
  // token checks alone run ~56k/s here, but every HELLO also writes the device record.
  'limits.accept_per_s': {
    kind: 'int', min: 1, max: 1_000_000, default: 5_000, live: true,
    doc: 'new connections (WebSocket upgrades and TCP accepts) per second per worker; more get 503 / ERROR OVERLOADED',
  },
  'limits.accept_burst': {
    kind: 'int', min: 1, max: 10_000_000, default: 10_000, live: true,
    doc: 'connections a worker accepts at once above accept_per_s',
  },
  'limits.accept_retry_max_ms': {
    kind: 'int', min: 1000, max: 3_600_000, default: 60_000, live: true,
    doc: 'ceiling of the retry delay a refused connection is given (uniform from 1 s up to refusals per second / accept_per_s)',
  },
  // A heartbeating, ACKing device sends a few frames a minute; 50/s with bursts of 500
  // leaves room for a replay's ACKs and request bursts, and cuts a runaway loop in ~10 s.
  'limits.in_frames_per_s': {
    kind: 'int', min: 1, max: 1_000_000, default: 50, live: true,
    doc: 'device frames per second per session; a session that uses its burst and stays above is RATE_LIMITED and closed',
  },
  'limits.in_frames_burst': {
    kind: 'int', min: 1, max: 10_000_000, default: 500, live: true,
    doc: 'device frames a session may send at once above in_frames_per_s (at least in_frames_per_s)',
  },
  'limits.in_bytes_per_s': {
    kind: 'int', min: 1024, max: 1024 * MiB, default: 262_144, live: true,
    doc: 'device bytes per second per session (frame headers included)',
  },
  'limits.in_bytes_burst': {
    kind: 'int', min: 1024, max: 1024 * MiB, default: 2 * MiB, live: true,
    doc: 'device bytes a session may send at once above in_bytes_per_s; never less than one max_frame',
  },
  'limits.push_per_s': {
    kind: 'int', min: 1, max: 1_000_000, default: 1_000, live: true,
    doc: 'default unit: target devices per second per API key per worker; above it pushes are queued and paced',
  },
  'limits.push_burst': {
    kind: 'int', min: 1, max: 10_000_000, default: 2_000, live: true,
    doc: 'default unit: target devices an API key may push at once above push_per_s',
  },
  'limits.push_queue': {
    kind: 'int', min: 0, max: 1_000_000, default: 10_000, live: true,
    doc: 'default unit: pushes that may wait per API key per worker; beyond it 429 + Retry-After',
  },
  'limits.push_queue_bytes': {
    kind: 'int', min: 0, max: 1024 * MiB, default: 64 * MiB, live: true,
    doc: 'default unit: bytes those waiting pushes may hold (a durable push holds ~100 + its device ids; its body is in the inbox)',
  },
  'limits.slow_ms': {
    kind: 'int', min: 100, max: 3_600_000, default: 30_000, live: true,
    doc: 'a session whose unsent bytes stay above max_buffered / 4 this long is closed (ERROR OVERLOADED, "slow consumer")',
  },
  // Weights 8:4:1: with every lane busy, high gets 8/13 of a worker's writes, bulk 1/13.
  'lanes.weight_high': { kind: 'int', min: 1, max: 1000, default: 8, live: true, doc: 'share of a scheduler turn for high-priority device pushes' },
  'lanes.weight_normal': { kind: 'int', min: 1, max: 1000, default: 4, live: true, doc: 'share for normal pushes and high-priority fan-outs' },
  'lanes.weight_bulk': { kind: 'int', min: 1, max: 1000, default: 1, live: true, doc: 'share for bulk pushes and fan-outs (topic, all)' },
  // 128: bench lanes (6,000 devices, broadcast + flood) put the high-priority p99 at
  // 58 ms with 1,024, 46 with 256, ~20 with 128 or 64; broadcasts took no longer. Each
  // loop iteration runs a whole turn before the API's own setImmediate, so it is paid twice.
  'lanes.turn_sends': {
    kind: 'int', min: 16, max: 1_000_000, default: 128, live: true,
    doc: 'writes per scheduler turn; a high-priority push waits for at most the turn in progress',
  },
  units: {
    kind: 'tables', parse: parseUnits, default: [], defaultText: 'none', live: true,
    doc: 'isolation units: [[units]] name, rate, burst, queue, queue_bytes, rules = [{ scope = key|topic|device, match = glob, percent }]; env/flags: a TOML inline array or JSON',
  },
  'drain.window_ms': {
    kind: 'int', min: 0, max: 3_600_000, default: 30_000, live: true,
    doc: 'on SIGTERM, GOAWAY reconnect_after_ms is spread uniformly over this window',
  },
  'drain.grace_ms': {
    kind: 'int', min: 0, max: 3_600_000, default: 5_000, live: true,
    doc: 'after the drain window, time devices still connected get before they are closed',
  },
  'log.level': { kind: 'enum', values: LOG_LEVELS, default: 'info', live: true, doc: 'trace, debug, info, warn, error or fatal' },
};

export const CONFIG_KEYS = Object.keys(SCHEMA) as ConfigKey[];

export function specOf(key: ConfigKey): AnySpec {
  return SCHEMA[key] as AnySpec;
}

/** `ws.port` → `MOOR_WS_PORT`. */
export function envName(key: ConfigKey): string {
  return `MOOR_${key.replace('.', '_').toUpperCase()}`;
}

export function getKey(config: Config, key: ConfigKey): unknown {
  let node: unknown = config;
  for (const part of key.split('.')) node = (node as Record<string, unknown>)[part];
  return node;
}

export function setKey(config: Config, key: ConfigKey, value: unknown): void {
  const parts = key.split('.');
  let node = config as unknown as Record<string, unknown>;
  for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
  node[parts[parts.length - 1]] = value;
}

/** A fresh config holding every default (computed ones evaluated now). */
export function defaults(): Config {
  const config = {} as Config;
  for (const key of CONFIG_KEYS) {
    const d = specOf(key).default;
    const value = typeof d === 'function' ? (d as () => unknown)() : d;
    setKey(config, key, Array.isArray(value) ? [...value] : value);
  }
  return config;
}

/** Which changed keys SIGHUP can apply live and which need a restart (refused by name). */
export function reloadPlan(prev: Config, next: Config): { live: ConfigKey[]; restart: ConfigKey[] } {
  const live: ConfigKey[] = [];
  const restart: ConfigKey[] = [];
  for (const key of CONFIG_KEYS) {
    if (JSON.stringify(getKey(prev, key)) === JSON.stringify(getKey(next, key))) continue;
    (specOf(key).live ? live : restart).push(key);
  }
  return { live, restart };
}

/** First non-internal IPv4 address, or 127.0.0.1 on a machine with none. */
export function firstIPv4(): string {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}
