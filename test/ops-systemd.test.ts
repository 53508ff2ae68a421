/**
 * The operations files: systemd/moor.service passes `systemd-analyze verify` and has what
 * the service needs; systemd/moor-sysctl.conf names real kernel keys, each with a why;
 * scripts/install.sh, run with --root into a temporary directory (it then creates no user
 * and runs no systemctl or sysctl, so it is safe on any machine), installs a copy that
 * starts, keeps its config and secrets on a second run, and uninstalls all but the data.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';

const ROOT = path.resolve(__dirname, '..', '..');
const UNIT = path.join(ROOT, 'systemd', 'moor.service');
const SYSCTL = path.join(ROOT, 'systemd', 'moor-sysctl.conf');
const INSTALL = path.join(ROOT, 'scripts', 'install.sh');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'moor-ops-systemd-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const onPath = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const HAS_ANALYZE = onPath('systemd-analyze');

/** `Key=value` settings of a unit, every value of a repeated key kept. */
function settings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1], [...(out.get(m[1]) ?? []), m[2]]);
  }
  return out;
}

/** systemd-analyze verify on `file` with ExecStart's node pointed at this node. */
function verify(unitText: string, name: string): { status: number | null; output: string } {
  const dir = fs.mkdtempSync(path.join(tmp, 'unit-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, unitText.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath}`));
  const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

describe('systemd/moor.service', () => {
  const text = fs.readFileSync(UNIT, 'utf8');
  const s = settings(text);
  const one = (k: string) => s.get(k)?.at(-1);

  test('systemd-analyze verify: no error, no warning', { skip: !HAS_ANALYZE && 'systemd-analyze is not installed (.ci/run installs it)' }, () => {
    const r = verify(text, 'moor.service');
    assert.equal(r.status, 0, r.output);
    assert.equal(r.output, '', 'verify printed warnings');
    // The check is real: a misspelt key is reported.
    assert.match(verify(text.replace('ProtectHome=', 'ProtectHom='), 'moor.service').output, /Unknown key/);
  });

  test('has what running moor needs', () => {
    assert.equal(one('Type'), 'notify');
    assert.equal(one('NotifyAccess'), 'main');
    assert.match(one('ExecStart') ?? '', /moor\.js serve --config \/etc\/moor\/moor\.toml$/);
    assert.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
    assert.equal(one('Restart'), 'on-failure');
    assert.equal(one('KillMode'), 'mixed');
    assert.ok(Number.parseInt(one('WatchdogSec') ?? '', 10) > 0);
    // Default drain: 30 s window + 5 s grace + the primary's 10 s slack.
    assert.ok(Number.parseInt(one('TimeoutStopSec') ?? '', 10) >= 45, 'TimeoutStopSec leaves time to drain');
    assert.ok(Number(one('LimitNOFILE')) > 1_000_000);
    assert.equal(one('User'), 'moor');
    assert.equal(one('StateDirectory'), 'moor');
    for (const [k, v] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes'], ['ReadWritePaths', '/var/lib/moor']]) {
      assert.equal(one(k), v, k);
    }
    assert.equal(one('CapabilityBoundingSet'), 'CAP_NET_BIND_SERVICE', 'one capability, for ports below 1024');
  });
});

describe('systemd/moor-sysctl.conf', () => {
  const lines = fs.readFileSync(SYSCTL, 'utf8').split('\n');
  const entries = lines
    .map((line, i) => ({ line, i }))
    .filter(({ line }) => line.trim() !== '' && !line.startsWith('#'))
    .map(({ line, i }) => {
      const m = /^(-?)([a-z0-9_.-]+) = (.+)$/.exec(line);
      assert.ok(m, `line ${i + 1} is "key = value": ${line}`);
      return { optional: m[1] === '-', key: m[2], value: m[3], i };
    });

  test('sets what 1M+ connections per worker need, each with a one-line why', () => {
    const keys = entries.map((e) => e.key);
    for (const k of ['fs.nr_open', 'fs.file-max', 'net.core.somaxconn', 'net.ipv4.tcp_max_syn_backlog', 'net.ipv4.ip_local_port_range', 'net.ipv4.tcp_rmem', 'net.ipv4.tcp_wmem', 'net.ipv4.tcp_mem']) {
      assert.ok(keys.includes(k), k);
    }
    for (const e of entries) assert.match(lines[e.i - 1], /^# \S/, `${e.key} has a comment right above it`);
    const nrOpen = Number(entries.find((e) => e.key === 'fs.nr_open')?.value);
    const limit = Number(settings(fs.readFileSync(UNIT, 'utf8')).get('LimitNOFILE')?.[0]);
    assert.ok(nrOpen >= limit, 'fs.nr_open allows the unit\'s LimitNOFILE');
    for (const k of ['net.ipv4.tcp_rmem', 'net.ipv4.tcp_wmem', 'net.ipv4.tcp_mem']) {
      const [lo, mid, hi] = entries.find((e) => e.key === k)!.value.split(' ').map(Number);
      assert.ok(lo <= mid && mid <= hi, `${k} is min <= default <= max`);
    }
  });

  test('every key exists in this kernel (read-only check under /proc/sys)', () => {
    for (const e of entries) {
      if (e.optional) continue;
      assert.ok(fs.existsSync(path.join('/proc/sys', ...e.key.split('.'))), `/proc/sys for ${e.key}`);
    }
  });
});

describe('scripts/install.sh', () => {
  const root = path.join(tmp, 'root');
  const install = (...args: string[]) => execFileSync('bash', [INSTALL, '--root', root, ...args], { encoding: 'utf8' });

  test('bash -n (and shellcheck when installed)', () => {
    execFileSync('bash', ['-n', INSTALL]);
    if (onPath('shellcheck')) execFileSync('shellcheck', [INSTALL]);
  });

  test('--root: installs the code, a config with generated secrets (0640), the unit and the sysctl file', () => {
    const out = install();
    assert.match(out, /--root: skipped: creating user moor/);
    assert.match(out, /--root: skipped: systemctl daemon-reload, enable and start/);
    for (const f of ['opt/moor/bin/moor.js', 'opt/moor/dist/src/cluster/primary.js', 'opt/moor/native/index.js', 'opt/moor/node_modules/pino/package.json', 'etc/systemd/system/moor.service', 'etc/sysctl.d/60-moor.conf']) {
      assert.ok(fs.existsSync(path.join(root, f)), f);
    }
    assert.ok(!fs.existsSync(path.join(root, 'opt/moor/node_modules/typescript')), 'no dev dependencies');
    const conf = path.join(root, 'etc/moor/moor.toml');
    assert.equal(fs.statSync(conf).mode & 0o777, 0o640);
    const text = fs.readFileSync(conf, 'utf8');
    assert.match(text, /^keys = \["[A-Za-z0-9_-]{43}"\]$/m);
    assert.match(text, /^jwt_secret = "[A-Za-z0-9_-]{43}"$/m);
    const unit = fs.readFileSync(path.join(root, 'etc/systemd/system/moor.service'), 'utf8');
    assert.match(unit, new RegExp(`^ExecStart=${fs.realpathSync(process.execPath).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} `, 'm'), 'ExecStart runs the node found on PATH');
    if (HAS_ANALYZE) assert.equal(verify(unit, 'moor.service').status, 0);
  });

  test('the installed copy checks its config and serves', async () => {
    const bin = path.join(root, 'opt/moor/bin/moor.js');
    execFileSync(process.execPath, [bin, 'check-config', '--config', path.join(root, 'etc/moor/moor.toml')]);
    const data = path.join(tmp, 'data');
    const args = ['serve', '--config', path.join(root, 'etc/moor/moor.toml'), `--store.path=${data}`, '--workers=1', '--ws.port=0', '--tcp.port=0', '--api.port=0', '--ws.host=127.0.0.1', '--node.advertise=127.0.0.1'];
    const proc = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    proc.stderr.on('data', (d: Buffer) => {
      err += d;
    });
    const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
    const deadline = Date.now() + 20_000;
    while (!out.includes('"msg":"moor ready"')) {
      assert.ok(Date.now() < deadline && proc.exitCode === null, `the installed copy did not start:\n${out}\n${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    proc.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.doesNotMatch(err, /WARNING|Error/, 'the native module and every dependency loaded');
  });

  test('a second run upgrades in place and keeps the config and its secrets', () => {
    const conf = path.join(root, 'etc/moor/moor.toml');
    const before = fs.readFileSync(conf, 'utf8');
    fs.writeFileSync(path.join(root, 'opt/moor/stale-file'), 'from the old version');
    const out = install();
    assert.match(out, /kept .*moor\.toml/);
    assert.match(out, /upgraded in place/);
    assert.equal(fs.readFileSync(conf, 'utf8'), before);
    assert.ok(!fs.existsSync(path.join(root, 'opt/moor/stale-file')), 'the code was replaced, not merged');
    assert.ok(!fs.existsSync(path.join(root, 'opt/moor.new')) && !fs.existsSync(path.join(root, 'opt/moor.old')));
  });

  test('--uninstall removes everything but the data', () => {
    const state = path.join(root, 'var/lib/moor');
    fs.mkdirSync(state, { recursive: true });
    fs.writeFileSync(path.join(state, 'secrets.json'), '{}');
    const secrets = fs.readFileSync(path.join(root, 'etc/moor/moor.toml'), 'utf8');
    install('--uninstall');
    for (const f of ['opt/moor', 'etc/moor', 'etc/systemd/system/moor.service', 'etc/sysctl.d/60-moor.conf']) {
      assert.ok(!fs.existsSync(path.join(root, f)), `${f} is gone`);
    }
    assert.ok(fs.existsSync(path.join(state, 'secrets.json')), 'the data stays');
    const kept = path.join(state, 'moor.toml.uninstalled');
    assert.equal(fs.readFileSync(kept, 'utf8'), secrets, 'the config (its secrets) is kept with the data');
    assert.equal(fs.statSync(kept).mode & 0o777, 0o600);
  });
});
