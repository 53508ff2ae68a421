/**
 * Checks that span keys or touch the disk: TLS pair, JWT public key, URLs, port clashes.
 * Per-key types and bounds are already checked (load.ts); a check built on a key whose
 * own value was rejected is skipped so one mistake is reported once.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { parseRedisUrl } from '../store/redis-url';
import { ticketKeysFileProblem } from '../tls/ticket-keys';
import { isPemText } from '../util/pem';
import { readFailure } from './errors';
import { isWildcardHost } from './hosts';
import type { ConfigKey } from './schema';
import type { Config } from './types';

export interface CheckContext {
  config: Config;
  /** False when the key's own value was rejected. */
  ok(key: ConfigKey): boolean;
  /** True when some layer set the key (it is not the default). */
  isSet(key: ConfigKey): boolean;
  error(key: ConfigKey, message: string, hint?: string): void;
  warn(message: string): void;
}

export function checkConfig(ctx: CheckContext): void {
  checkListeners(ctx);
  checkTls(ctx);
  checkTicketKeys(ctx);
  checkAuth(ctx);
  checkStore(ctx);
  checkUpstream(ctx);
  checkLimits(ctx);
  checkFlow(ctx);
  checkHeartbeat(ctx);
  checkCompression(ctx);
  const { node } = ctx.config;
  // node.id ends up in store keys, metric labels and peer addresses.
  if (ctx.ok('node.id') && !/^[A-Za-z0-9._:-]+$/.test(node.id)) {
    ctx.error('node.id', 'may hold only letters, digits and . _ : -', 'e.g. node.id = "gw-eu-1"');
  }
}

/** RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens. */
const HOST_NAME = /^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** Why `host` is neither an IP address nor a host name, or null when it is one. */
export function hostProblem(host: string): string | null {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (net.isIP(bare) !== 0) return bare === host || net.isIPv6(bare) ? null : 'brackets are for IPv6 addresses only';
  // All digits and dots: meant as an IPv4 address, and not a valid one (listen would fail at every start).
  if (/^[\d.]+$/.test(host)) return 'is not a valid IPv4 address';
  return HOST_NAME.test(host) ? null : 'is neither an IP address nor a host name';
}

function checkHosts(ctx: CheckContext): void {
  const { ws, tcp, api, node } = ctx.config;
  const hosts: Array<[ConfigKey, string, string]> = [
    ['ws.host', ws.host, 'e.g. "0.0.0.0" (every IPv4 address) or "::"'],
    ['tcp.host', tcp.host, 'e.g. "0.0.0.0" (every IPv4 address) or "::"'],
    ['api.host', api.host, 'e.g. "127.0.0.1" (this machine only)'],
    ['node.advertise', node.advertise, 'the address or DNS name devices and peers dial, e.g. "gw1.example.com"'],
  ];
  for (const [key, host, hint] of hosts) {
    const problem = ctx.ok(key) ? hostProblem(host) : null;
    if (problem) ctx.error(key, `${JSON.stringify(host)} ${problem}`, hint);
  }
}

function checkListeners(ctx: CheckContext): void {
  const { ws, tcp, api, workers } = ctx.config;
  checkHosts(ctx);
  if (ctx.ok('ws.path') && !ws.path.startsWith('/')) {
    ctx.error('ws.path', 'must start with /', `ws.path = "/${ws.path}"`);
  }
  const base = ws.resume_port_base;
  if (ctx.ok('ws.resume_port_base') && ctx.ok('workers') && base > 0 && base + workers - 1 > 65_535) {
    ctx.error('ws.resume_port_base', `leaves no room for ${workers} workers (base + i must stay ≤ 65535)`, `at most ${65_536 - workers}`);
  }

  // Port 0 asks the kernel for a free port, so it never clashes.
  type Listener = { key: ConfigKey; host: string; lo: number; hi: number };
  const fixed: Listener[] = [];
  const add = (key: ConfigKey, host: string, port: number) => {
    if (port > 0 && ctx.ok(key)) fixed.push({ key, host, lo: port, hi: port });
  };
  add('ws.port', ws.host, ws.port);
  add('tcp.port', tcp.host, tcp.port);
  add('api.port', api.host, api.port);
  for (let i = 0; i < fixed.length; i++) {
    for (let j = 0; j < i; j++) {
      if (overlap(fixed[i], fixed[j])) {
        ctx.error(fixed[i].key, `${fixed[i].lo} is also ${fixed[j].key}`, 'give each listener its own port');
      }
    }
  }
  // Without an explicit base the resume ports skip the other listeners (ports.ts).
  if (base === 0 || !ctx.ok('ws.resume_port_base') || !ctx.ok('workers')) return;
  const resume: Listener = { key: 'ws.resume_port_base', host: ws.host, lo: base, hi: base + workers - 1 };
  for (const other of fixed) {
    if (!overlap(resume, other)) continue;
    ctx.error('ws.resume_port_base', `resume ports ${resume.lo}-${resume.hi} (one per worker) include ${other.key} ${other.lo}`, 'move ws.resume_port_base');
  }
}

function overlap(a: { host: string; lo: number; hi: number }, b: { host: string; lo: number; hi: number }): boolean {
  const sameHost = a.host === b.host || isWildcardHost(a.host) || isWildcardHost(b.host);
  return sameHost && a.lo <= b.hi && b.lo <= a.hi;
}

/** The file's text, or undefined after reporting why it cannot be read. */
function readText(ctx: CheckContext, key: ConfigKey, file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    ctx.error(key, `cannot read ${file}: ${readFailure(err)}`, 'check the path, and that the user moor runs as may read it');
    return undefined;
  }
}

function checkTls(ctx: CheckContext): void {
  const { cert, key } = ctx.config.tls;
  if (!ctx.ok('tls.cert') || !ctx.ok('tls.key')) return;
  if ((cert === '') !== (key === '')) {
    const [missing, given] = cert === '' ? (['tls.cert', 'tls.key'] as const) : (['tls.key', 'tls.cert'] as const);
    ctx.error(missing, `is required when ${given} is set`, 'set both tls.cert and tls.key, or neither');
    return;
  }
  if (cert === '') return;
  const certPem = readText(ctx, 'tls.cert', cert);
  const keyPem = readText(ctx, 'tls.key', key);
  if (certPem === undefined || keyPem === undefined) return;
  let pemOk = true;
  if (!certPem.includes('-----BEGIN CERTIFICATE-----')) {
    ctx.error('tls.cert', `${cert} holds no PEM certificate`, 'expected -----BEGIN CERTIFICATE-----');
    pemOk = false;
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyPem)) {
    ctx.error('tls.key', `${key} holds no PEM private key`, 'expected -----BEGIN PRIVATE KEY-----');
    pemOk = false;
  }
  if (!pemOk) return;
  try {
    tls.createSecureContext({ cert: certPem, key: keyPem });
  } catch (err) {
    ctx.error('tls.key', `cannot be used with tls.cert: ${(err as Error).message}`, 'is the key the one for this certificate, and unencrypted?');
  }
}

/** tls.ticket_keys_file: readable, owner-only, 48 or 96 bytes. Its bytes are never shown. */
function checkTicketKeys(ctx: CheckContext): void {
  const file = ctx.config.tls.ticket_keys_file;
  if (!ctx.ok('tls.ticket_keys_file') || file === '') return;
  if (ctx.ok('tls.cert') && ctx.config.tls.cert === '') ctx.warn('tls.ticket_keys_file is set but TLS is off (no tls.cert): the keys are not used');
  const problem = ticketKeysFileProblem(file);
  if (problem !== null) ctx.error('tls.ticket_keys_file', problem.message, problem.hint);
}

function checkAuth(ctx: CheckContext): void {
  const { jwt_secret, jwt_public_key } = ctx.config.auth;
  if (ctx.ok('auth.jwt_secret') && jwt_secret !== '' && Buffer.byteLength(jwt_secret) < 32) {
    ctx.warn('auth.jwt_secret is shorter than 32 bytes: HS256 tokens signed with it can be brute-forced');
  }
  if (!ctx.ok('auth.jwt_public_key') || jwt_public_key === '') return;
  const inline = isPemText(jwt_public_key);
  const pem = inline ? jwt_public_key : readText(ctx, 'auth.jwt_public_key', jwt_public_key);
  if (pem === undefined) return;
  const name = inline ? 'the PEM text' : jwt_public_key;
  const pubout = 'openssl ec -in private.pem -pubout -out public.pem';
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    ctx.error('auth.jwt_public_key', `${name} is a private key; the gateway needs only the public key`, pubout);
    return;
  }
  let keyObject: crypto.KeyObject;
  try {
    keyObject = crypto.createPublicKey(pem);
  } catch (err) {
    ctx.error('auth.jwt_public_key', `${name} is not a PEM public key: ${(err as Error).message}`, pubout);
    return;
  }
  const curve = keyObject.asymmetricKeyDetails?.namedCurve;
  if (keyObject.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    const got = keyObject.asymmetricKeyType === 'ec' ? `an EC key on ${curve}` : `a ${keyObject.asymmetricKeyType} key`;
    ctx.error('auth.jwt_public_key', `ES256 needs an EC P-256 key, ${name} is ${got}`, 'openssl ecparam -name prime256v1 -genkey');
  }
}

function checkStore(ctx: CheckContext): void {
  const { kind, path: dir, redis_url } = ctx.config.store;
  if (ctx.ok('store.redis_url') && redis_url !== '') {
    // The engine's own parser: WHATWG URL cannot read a Cluster's comma-separated seed list.
    let problem = '';
    try {
      parseRedisUrl(redis_url);
    } catch (err) {
      problem = (err as Error).message.replace(/^store\.redis_url: /, '');
    }
    if (problem) {
      ctx.error('store.redis_url', `must be a redis:// or rediss:// URL: ${problem}`, 'e.g. redis://127.0.0.1:6379/0, or redis://h1:7000,h2:7000 for Redis Cluster (docs/store.md)');
    } else if (ctx.ok('store.kind') && kind === 'embedded') {
      ctx.warn('store.redis_url is set but store.kind is "embedded": the URL is not used');
    }
  }
  if (ctx.ok('store.kind') && ctx.ok('store.redis_url') && kind === 'redis' && redis_url === '') {
    ctx.error('store.redis_url', 'is required when store.kind = "redis"', 'e.g. redis://127.0.0.1:6379/0');
  }
  if (ctx.ok('store.path')) {
    try {
      const stat = fs.statSync(dir, { throwIfNoEntry: false });
      if (stat && !stat.isDirectory()) ctx.error('store.path', `${dir} exists and is not a directory`, 'name a directory (it is created when missing)');
    } catch (err) {
      ctx.error('store.path', `cannot inspect ${dir}: ${readFailure(err)}`, 'check the permissions of its parent directories');
    }
  }
}

function checkUpstream(ctx: CheckContext): void {
  const { url } = ctx.config.upstream;
  if (!ctx.ok('upstream.url') || url === '') return;
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {}
  if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
    ctx.error('upstream.url', `${JSON.stringify(url)} is not an http(s) URL`, 'e.g. http://127.0.0.1:9000/moor');
  }
}

function checkLimits(ctx: CheckContext): void {
  const { max_frame, max_buffered } = ctx.config.limits;
  if (ctx.ok('limits.max_frame') && ctx.ok('limits.max_buffered') && max_buffered < max_frame) {
    ctx.error('limits.max_buffered', `(${max_buffered}) is below limits.max_frame (${max_frame}): a full frame could never be sent`, `raise it to at least ${max_frame}`);
  }
}

/** The session buckets refill once a second: a burst below the rate would cap the rate at the burst. */
function checkFlow(ctx: CheckContext): void {
  const l = ctx.config.limits;
  const pairs: Array<['limits.in_frames_burst' | 'limits.in_bytes_burst', number, 'limits.in_frames_per_s' | 'limits.in_bytes_per_s', number]> = [
    ['limits.in_frames_burst', l.in_frames_burst, 'limits.in_frames_per_s', l.in_frames_per_s],
    ['limits.in_bytes_burst', l.in_bytes_burst, 'limits.in_bytes_per_s', l.in_bytes_per_s],
  ];
  for (const [burstKey, burst, rateKey, rate] of pairs) {
    if (ctx.ok(burstKey) && ctx.ok(rateKey) && burst < rate) ctx.error(burstKey, `(${burst}) is below ${rateKey} (${rate}): the bucket refills once a second, so the rate could never be reached`, `raise it to at least ${rate}`);
  }
}

function checkCompression(ctx: CheckContext): void {
  const { codecs, dict_url_base } = ctx.config.compression;
  const bad = codecs.filter((c) => c !== 'zstd' && c !== 'lz4');
  if (ctx.ok('compression.codecs') && bad.length > 0) {
    ctx.error('compression.codecs', `unknown codec ${bad.map((c) => JSON.stringify(c)).join(', ')}`, 'compression.codecs = ["zstd", "lz4"], or [] for identity only');
  }
  if (ctx.ok('compression.dict_url_base') && dict_url_base !== '' && !/^https?:\/\/[^/]+/.test(dict_url_base)) {
    ctx.error('compression.dict_url_base', `${JSON.stringify(dict_url_base)} is not an http(s) URL`, 'e.g. https://dicts.example.com');
  }
}

function checkHeartbeat(ctx: CheckContext): void {
  const { min_ms, max_ms, wifi_max_ms } = ctx.config.heartbeat;
  if (!ctx.ok('heartbeat.min_ms')) return;
  const maxes: Array<['heartbeat.max_ms' | 'heartbeat.wifi_max_ms', number]> = [['heartbeat.max_ms', max_ms], ['heartbeat.wifi_max_ms', wifi_max_ms]];
  for (const [key, max] of maxes) {
    if (ctx.ok(key) && max < min_ms) ctx.error(key, `(${max}) is below heartbeat.min_ms (${min_ms})`, `raise it to at least ${min_ms}`);
  }
}
