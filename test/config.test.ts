import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError, type ConfigIssue, didYouMean, editDistance } from '../src/config/errors';
import { hostPort } from '../src/config/hosts';
import { type LoadOptions, loadConfig } from '../src/config/load';
import { CONFIG_KEYS, defaults, envName, reloadPlan } from '../src/config/schema';
import { readSecrets, resolveSecrets } from '../src/config/secrets';
import { hostProblem } from '../src/config/validate';
import { parseDuration } from '../src/util/duration';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'moor-config-test-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let n = 0;
function tmpDir(): string {
  const dir = path.join(tmpRoot, String(n++));
  fs.mkdirSync(dir);
  return dir;
}
function writeFile(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** Loads with an empty environment unless given; warnings are collected. */
function load(opts: Partial<LoadOptions> = {}): { config: ReturnType<typeof loadConfig>; warnings: string[] } {
  const warnings: string[] = [];
  const config = loadConfig({ args: [], env: {}, ...opts, warn: (m) => warnings.push(m) });
  return { config, warnings };
}

function issuesOf(opts: Partial<LoadOptions>): ConfigIssue[] {
  try {
    load(opts);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    assert.equal(err.code, 'ERR_MOOR_CONFIG');
    return [...err.errors];
  }
  assert.fail('expected a ConfigError');
}

function issueFor(issues: ConfigIssue[], key: string): ConfigIssue {
  const found = issues.find((i) => i.key === key);
  assert.ok(found, `no issue for ${key} in ${JSON.stringify(issues, null, 1)}`);
  return found;
}

describe('defaults', () => {
  test('match api.md', () => {
    const { config } = load();
    assert.equal(config.workers, os.availableParallelism());
    assert.deepEqual(config.ws, { port: 8080, host: '0.0.0.0', path: '/ws', resume_port_base: 0 });
    assert.deepEqual(config.tcp, { port: 7070, host: '0.0.0.0' });
    assert.deepEqual(config.api, { port: 8081, host: '127.0.0.1', keys: [], max_body: 1024 * 1024 });
    assert.equal(config.store.kind, 'embedded');
    assert.equal(config.store.path, path.resolve('data'));
    assert.equal(config.node.id, os.hostname());
    assert.ok(config.node.advertise.length > 0);
    assert.equal(config.upstream.timeout_ms, 10_000);
    assert.equal(config.upstream.concurrency, 256);
    assert.deepEqual(config.heartbeat, {
      default_ms: 270_000,
      grace_ms: 30_000,
      min_ms: 210_000,
      max_ms: 1_680_000,
      wifi_max_ms: 2_700_000,
      foreground_ms: 60_000,
      probe_share: 5,
      max_probes: 8,
      probe_intervals: 2,
      step_ms: 60_000,
      successes_to_step: 5,
      failures_to_back_off: 2,
      margin_ms: 20_000,
      cooldown_ms: 21_600_000,
      max_classes: 1024,
      sync_ms: 30_000,
    });
    assert.deepEqual(config.limits, {
      max_frame: 65_536,
      handshake_timeout_ms: 10_000,
      sync_page: 100,
      max_buffered: 262_144,
      accept_per_s: 5_000,
      accept_burst: 10_000,
      accept_retry_max_ms: 60_000,
      in_frames_per_s: 50,
      in_frames_burst: 500,
      in_bytes_per_s: 262_144,
      in_bytes_burst: 2_097_152,
      push_per_s: 1_000,
      push_burst: 2_000,
      push_queue: 10_000,
      push_queue_bytes: 67_108_864,
      slow_ms: 30_000,
    });
    assert.deepEqual(config.lanes, { weight_high: 8, weight_normal: 4, weight_bulk: 1, turn_sends: 128 });
    assert.deepEqual(config.units, []);
    assert.equal(config.log.level, 'info');
  });

  test('every key has a distinct environment name', () => {
    const names = CONFIG_KEYS.map(envName);
    assert.equal(new Set(names).size, names.length);
    assert.equal(envName('auth.jwt_secret'), 'MOOR_AUTH_JWT_SECRET');
    assert.equal(envName('ws.resume_port_base'), 'MOOR_WS_RESUME_PORT_BASE');
  });

  test('port 0 is accepted (pick a free port)', () => {
    const { config } = load({ args: ['--ws.port=0', '--api.port=0', '--tcp.port=0'] });
    assert.equal(config.ws.port, 0);
    assert.equal(config.api.port, 0);
    assert.equal(config.tcp.port, 0);
  });
});

describe('precedence: defaults < file < env < flags', () => {
  test('each layer overrides the one before, key by key', () => {
    const dir = tmpDir();
    const file = writeFile(dir, 'moor.toml', 'workers = 3\n[ws]\nport = 1000\n[tcp]\nport = 2000\n[api]\nport = 3000\n');
    const { config } = load({
      file,
      env: { MOOR_TCP_PORT: '2001', MOOR_API_PORT: '3001', MOOR_AUTH_JWT_SECRET: 's'.repeat(40) },
      args: ['--api.port=3002', '--workers', '2'],
    });
    assert.equal(config.ws.port, 1000); // file
    assert.equal(config.tcp.port, 2001); // env over file
    assert.equal(config.api.port, 3002); // flag over env
    assert.equal(config.workers, 2); // `--key value` form over file
    assert.equal(config.auth.jwt_secret, 's'.repeat(40)); // env key whose name holds underscores
  });

  test('an empty environment variable means "not set"', () => {
    const dir = tmpDir();
    const file = writeFile(dir, 'moor.toml', '[ws]\nhost = "127.0.0.1"\n');
    assert.equal(load({ file, env: { MOOR_WS_HOST: '' } }).config.ws.host, '127.0.0.1');
  });

  test('lists from TOML arrays, TOML strings, env and flags', () => {
    const dir = tmpDir();
    const arr = writeFile(dir, 'a.toml', '[api]\nkeys = ["k1", " k2 "]\n');
    assert.deepEqual(load({ file: arr }).config.api.keys, ['k1', 'k2']);
    const str = writeFile(dir, 'b.toml', '[api]\nkeys = "k1,k2,,k3"\n');
    assert.deepEqual(load({ file: str }).config.api.keys, ['k1', 'k2', 'k3']);
    assert.deepEqual(load({ env: { MOOR_API_KEYS: 'a, b' } }).config.api.keys, ['a', 'b']);
    assert.deepEqual(load({ args: ['--api.keys=x,y'] }).config.api.keys, ['x', 'y']);
    // The TOML array spelling works in flags and env too (help prints defaults that way).
    assert.deepEqual(load({ args: ['--api.keys=["x", \'y\']'] }).config.api.keys, ['x', 'y']);
    assert.deepEqual(load({ args: ['--compression.codecs=[]'] }).config.compression.codecs, []);
    assert.deepEqual(load({ env: { MOOR_COMPRESSION_CODECS: '["lz4"]' } }).config.compression.codecs, ['lz4']);
    assert.throws(() => load({ args: ['--api.keys=["x", 1]'] }), /api\.keys \(from --api\.keys\): must be a list of strings/);
  });

  test('relative paths in a file resolve against its directory, elsewhere against cwd', () => {
    const dir = tmpDir();
    const file = writeFile(dir, 'moor.toml', '[store]\npath = "state"\n');
    assert.equal(load({ file }).config.store.path, path.join(dir, 'state'));
    assert.equal(load({ args: ['--store.path=rel'] }).config.store.path, path.resolve('rel'));
  });
});

describe('errors are collected, all at once', () => {
  test('a file with several mistakes lists every one, with key, source and hint', () => {
    const dir = tmpDir();
    const file = writeFile(
      dir,
      'bad.toml',
      [
        'workers = 0',
        '[ws]',
        'port = 70000',
        'path = "ws"',
        '[store]',
        'kind = "redsi"',
        '[upstream]',
        'url = "ftp://example.com"',
        '[limits]',
        'max_frame = 100000000',
        'sync_page = "ten"',
        '[tls]',
        'cert = "cert.pem"',
      ].join('\n'),
    );
    const issues = issuesOf({ file, args: ['--api.port=abc'] });
    for (const key of ['workers', 'ws.port', 'ws.path', 'store.kind', 'upstream.url', 'limits.max_frame', 'limits.sync_page', 'tls.key', 'api.port']) {
      issueFor(issues, key);
    }
    assert.equal(issues.length, 9);
    assert.match(issueFor(issues, 'ws.port').message, /between 0 and 65535, got 70000/);
    assert.equal(issueFor(issues, 'ws.port').source, file);
    assert.equal(issueFor(issues, 'api.port').source, '--api.port');
    assert.match(issueFor(issues, 'store.kind').hint ?? '', /did you mean `redis`/);
    assert.match(issueFor(issues, 'limits.sync_page').hint ?? '', /without quotes/);
    assert.match(issueFor(issues, 'tls.key').message, /required when tls.cert is set/);
  });

  test('unknown keys get "did you mean"', () => {
    const dir = tmpDir();
    const file = writeFile(dir, 'typo.toml', 'wrokers = 2\nport = 1\n[ws]\nprot = 1\n[wss]\nport = 2\n');
    const issues = issuesOf({ file, args: ['--log.lvl=debug'] });
    assert.equal(issueFor(issues, 'wrokers').hint, 'did you mean `workers`?');
    assert.equal(issueFor(issues, 'ws.prot').hint, 'did you mean `ws.port`?');
    assert.equal(issueFor(issues, 'port').hint, 'did you mean `ws.port`, `tcp.port` or `api.port`?');
    assert.equal(issueFor(issues, 'wss').hint, 'did you mean `[ws]`?');
    assert.equal(issueFor(issues, '--log.lvl').hint, 'did you mean `--log.level`?');
    // A misspelt environment variable is a warning: other MOOR_* variables exist.
    const { warnings } = load({ env: { MOOR_WS_PROT: '1', MOOR_DRAIN_WINDOW_MS: '5' } });
    assert.deepEqual(warnings.filter((w) => w.includes('MOOR_')), ['ignoring unknown environment variable MOOR_WS_PROT (did you mean `MOOR_WS_PORT`?)']);
  });

  test('a broken TOML file and a missing file are reported with the other errors', () => {
    const dir = tmpDir();
    const file = writeFile(dir, 'broken.toml', '[ws]\nport = = 1\n');
    const issues = issuesOf({ file, args: ['--workers=0'] });
    assert.match(issueFor(issues, 'config').message, /not valid TOML at line 2/);
    issueFor(issues, 'workers');
    assert.match(issueFor(issuesOf({ file: path.join(dir, 'absent.toml') }), 'config').message, /no such file/);
  });

  test('secrets are not echoed in errors', () => {
    const dir = tmpDir();
    const file = writeFile(dir, 's.toml', '[api]\nkeys = [1, 2]\n');
    assert.doesNotMatch(issueFor(issuesOf({ file }), 'api.keys').message, /got/);
  });

  test('cross-key checks: redis URL, listeners sharing a port, max_buffered below max_frame', () => {
    const issues = issuesOf({
      args: ['--store.kind=redis', '--tcp.port=8080', '--limits.max_frame=1048576', '--ws.resume_port_base=65535', '--workers=2'],
    });
    assert.match(issueFor(issues, 'store.redis_url').message, /required when store.kind = "redis"/);
    assert.match(issueFor(issues, 'tcp.port').message, /8080 is also ws.port/);
    assert.match(issueFor(issues, 'limits.max_buffered').message, /below limits.max_frame/);
    assert.match(issueFor(issues, 'ws.resume_port_base').message, /no room for 2 workers/);
    const bad = issuesOf({ args: ['--store.kind=redis', '--store.redis_url=http://x'] });
    assert.match(issueFor(bad, 'store.redis_url').message, /redis:\/\//);
    assert.equal(load({ args: ['--store.kind=redis', '--store.redis_url=redis://127.0.0.1:6399'] }).config.store.kind, 'redis');
    // A Redis Cluster's seed list (WHATWG URL cannot parse it), and the engine's own checks.
    assert.equal(load({ args: ['--store.kind=redis', '--store.redis_url=redis://127.0.0.1:7000,127.0.0.1:7001?prefix=f'] }).config.store.kind, 'redis');
    assert.match(issueFor(issuesOf({ args: ['--store.kind=redis', '--store.redis_url=redis://h?nope=1'] }), 'store.redis_url').message, /unknown parameter "nope"/);
  });
});

describe('hosts', () => {
  test('listener hosts and node.advertise must be an IP address or a host name', () => {
    const issues = issuesOf({ args: ['--api.host=300.1.1.1', '--ws.host=a b', '--tcp.host=[127.0.0.1]', '--node.advertise=gw_1.example'] });
    assert.match(issueFor(issues, 'api.host').message, /"300\.1\.1\.1" is not a valid IPv4 address/);
    assert.match(issueFor(issues, 'ws.host').message, /neither an IP address nor a host name/);
    assert.match(issueFor(issues, 'tcp.host').message, /brackets are for IPv6/);
    assert.match(issueFor(issues, 'node.advertise').message, /neither an IP address nor a host name/);
    const { config } = load({ args: ['--api.host=::1', '--ws.host=[::]', '--tcp.host=localhost', '--node.advertise=gw-1.example.com'] });
    assert.equal(config.api.host, '::1');
  });

  test('hostProblem', () => {
    for (const ok of ['0.0.0.0', '127.0.0.1', '::', '[::1]', 'fe80::1', 'localhost', 'gw-1.eu.example.com', 'example.com.', '10x.internal']) {
      assert.equal(hostProblem(ok), null, ok);
    }
    for (const bad of ['256.0.0.1', '1.2.3', '1..2.3', 'a b', '-lead.example', 'trail-.example', 'x'.repeat(64), 'http://h', 'h:80', '[1.2.3.4]', '']) {
      assert.notEqual(hostProblem(bad), null, bad);
    }
  });
  test('node.advertise unset: a device listener bound to one address is what devices are told to dial', () => {
    const { config: wild } = load({ args: [] });
    assert.notEqual(wild.node.advertise, '0.0.0.0', 'wildcard listeners: the first non-loopback address');
    assert.equal(load({ args: ['--ws.host=127.0.0.1', '--tcp.host=127.0.0.1'] }).config.node.advertise, '127.0.0.1');
    assert.equal(load({ args: ['--tcp.host=10.1.2.3'] }).config.node.advertise, '10.1.2.3', 'WebSocket on every address, TCP on one');
    assert.equal(load({ args: ['--tcp.host=10.1.2.3', '--tcp.port=0'] }).config.node.advertise, wild.node.advertise, 'TCP off');
    assert.equal(load({ args: ['--ws.host=[::1]'] }).config.node.advertise, '::1');
    assert.equal(load({ args: ['--ws.host=127.0.0.1', '--node.advertise=gw-1.example.com'] }).config.node.advertise, 'gw-1.example.com', 'set: kept');
    assert.equal(hostPort('::1', 8082), '[::1]:8082');
    assert.equal(hostPort('gw-1.example.com', 7070), 'gw-1.example.com:7070');
  });
});

describe('key files', () => {
  test('auth.jwt_public_key must be a readable PEM EC P-256 public key', () => {
    const dir = tmpDir();
    const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const pub = writeFile(dir, 'pub.pem', ec.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    assert.equal(load({ args: [`--auth.jwt_public_key=${pub}`] }).config.auth.jwt_public_key, pub);

    const priv = writeFile(dir, 'priv.pem', ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    assert.match(issueFor(issuesOf({ args: [`--auth.jwt_public_key=${priv}`] }), 'auth.jwt_public_key').message, /private key/);
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
    const rsaPub = writeFile(dir, 'rsa.pem', rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    assert.match(issueFor(issuesOf({ args: [`--auth.jwt_public_key=${rsaPub}`] }), 'auth.jwt_public_key').message, /EC P-256/);
    const p384 = crypto.generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
    const p384Pub = writeFile(dir, 'p384.pem', p384.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    assert.match(issueFor(issuesOf({ args: [`--auth.jwt_public_key=${p384Pub}`] }), 'auth.jwt_public_key').message, /secp384r1/);
    const missing = path.join(dir, 'none.pem');
    assert.match(issueFor(issuesOf({ args: [`--auth.jwt_public_key=${missing}`] }), 'auth.jwt_public_key').message, /cannot read/);
  });

  test('auth.jwt_public_key also takes the PEM text itself, from the environment or a file', () => {
    const dir = tmpDir();
    const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const pem = ec.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    assert.equal(load({ env: { MOOR_AUTH_JWT_PUBLIC_KEY: pem } }).config.auth.jwt_public_key, pem, 'not taken for a path');
    const file = writeFile(dir, 'moor.toml', `[auth]\njwt_public_key = """\n${pem}"""\n`);
    assert.equal(load({ file }).config.auth.jwt_public_key, pem, 'not resolved against the file directory');
    const priv = ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    assert.match(issueFor(issuesOf({ env: { MOOR_AUTH_JWT_PUBLIC_KEY: priv } }), 'auth.jwt_public_key').message, /^the PEM text is a private key/);
  });

  test('tls.cert and tls.key must be a readable, matching pair', () => {
    const dir = tmpDir();
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
    assert.equal(load({ args: [`--tls.cert=${cert}`, `--tls.key=${key}`] }).config.tls.cert, cert);
    const other = writeFile(dir, 'other.pem', crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    assert.match(issueFor(issuesOf({ args: [`--tls.cert=${cert}`, `--tls.key=${other}`] }), 'tls.key').message, /cannot be used with tls.cert/);
    assert.match(issueFor(issuesOf({ args: [`--tls.cert=${key}`, `--tls.key=${key}`] }), 'tls.cert').message, /no PEM certificate/);
    assert.match(issueFor(issuesOf({ args: [`--tls.key=${key}`] }), 'tls.cert').message, /required when tls.key is set/);
  });
});

describe('secrets', () => {
  test('generated once with mode 0600, then reused', () => {
    const dir = tmpDir();
    const { config } = load({ args: [`--store.path=${dir}/data`] });
    const first = resolveSecrets(config);
    assert.ok(first.generated.jwtSecret && first.generated.apiKey);
    assert.match(first.generated.jwtSecret, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(first.config.auth.jwt_secret, first.generated.jwtSecret);
    assert.deepEqual(first.config.api.keys, [first.generated.apiKey]);
    assert.equal(config.auth.jwt_secret, '', 'the input config is not modified');
    assert.equal(first.file, path.join(dir, 'data', 'secrets.json'));
    assert.equal(fs.statSync(first.file).mode & 0o777, 0o600);

    const second = resolveSecrets(config);
    assert.deepEqual(second.generated, {});
    assert.equal(second.config.auth.jwt_secret, first.generated.jwtSecret);
    assert.deepEqual(second.config.api.keys, [first.generated.apiKey]);
    assert.deepEqual(readSecrets(config), { jwt_secret: first.generated.jwtSecret, api_key: first.generated.apiKey });
  });

  test('configured secrets win; only what is missing is generated', () => {
    const dir = tmpDir();
    const { config } = load({ args: [`--store.path=${dir}`, '--api.keys=mine'] });
    const r = resolveSecrets(config);
    assert.deepEqual(Object.keys(r.generated), ['jwtSecret']);
    assert.deepEqual(r.config.api.keys, ['mine']);
    assert.equal(readSecrets(config).api_key, undefined);
    // Later the operator drops api.keys: the key is added, the secret kept.
    const later = resolveSecrets(load({ args: [`--store.path=${dir}`] }).config);
    assert.deepEqual(Object.keys(later.generated), ['apiKey']);
    assert.equal(later.config.auth.jwt_secret, r.config.auth.jwt_secret);
  });

  test('no secret is generated when a public key verifies tokens', () => {
    const dir = tmpDir();
    const pub = writeFile(dir, 'pub.pem', crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'pem' }) as string);
    const r = resolveSecrets(load({ args: [`--store.path=${dir}`, `--auth.jwt_public_key=${pub}`, '--api.keys=k'] }).config);
    assert.deepEqual(r.generated, {});
    assert.equal(r.config.auth.jwt_secret, '');
    assert.equal(fs.existsSync(r.file), false);
  });

  test('a loose file mode is tightened; a damaged file is never overwritten', () => {
    const dir = tmpDir();
    const { config } = load({ args: [`--store.path=${dir}`] });
    const file = resolveSecrets(config).file;
    fs.chmodSync(file, 0o644);
    const warnings: string[] = [];
    resolveSecrets(config, (m) => warnings.push(m));
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.match(warnings[0], /was mode 644/);
    fs.writeFileSync(file, '{not json');
    assert.throws(() => resolveSecrets(config), /damaged/);
    assert.equal(fs.readFileSync(file, 'utf8'), '{not json');
  });
});

describe('helpers', () => {
  test('parseDuration', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('30m'), 1_800_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('1.5h'), 5_400_000);
    assert.equal(parseDuration('2d'), 172_800_000);
    assert.throws(() => parseDuration('60'), /add a unit/);
    assert.throws(() => parseDuration('1 hour'), RangeError);
    assert.throws(() => parseDuration(''), RangeError);
    assert.throws(() => parseDuration('h'), RangeError);
  });

  test('edit distance counts a swap as one edit', () => {
    assert.equal(editDistance('ws.prot', 'ws.port'), 1);
    assert.equal(editDistance('', 'abc'), 3);
    assert.deepEqual(didYouMean('zzzzzz', ['ws.port']), []);
  });

  test('reloadPlan names what can change live and what needs a restart', () => {
    const a = defaults();
    const b = defaults();
    b.api.keys = ['new'];
    b.limits.max_frame = 1024 * 1024;
    b.heartbeat.grace_ms = 1000;
    b.ws.port = 9000;
    assert.deepEqual(reloadPlan(a, b), { live: ['api.keys', 'heartbeat.grace_ms'], restart: ['ws.port', 'limits.max_frame'] });
  });
});
