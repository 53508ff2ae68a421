/**
 * SIGHUP: the config is re-read from the same file, flags and environment; live keys
 * reach every worker (API keys per request, limits, heartbeat, log level), keys that
 * need a restart are refused by name and keep their running value, and a config with
 * errors changes nothing and says why.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ErrorCode } from '../src/protocol/constants';
import { ephemeralLow } from '../src/util/ports';
import { connect, expectError, open } from './helpers/device';
import { freePort, type Gateway, JWT_SECRET, type LogLine, startGateway } from './helpers/gateway';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moor-ops-reload-'));
const file = path.join(dir, 'moor.toml');
let gw: Gateway;
let tcpPort = 0;

/** `top`: lines before the first section; `more`: sections after the others. */
function writeConfig(extra: { keys?: string[]; tcpPort?: number; top?: string; more?: string } = {}): void {
  fs.writeFileSync(
    file,
    `${extra.top ?? 'workers = 2'}
[ws]
host = "127.0.0.1"
port = 0
[tcp]
host = "127.0.0.1"
port = ${extra.tcpPort ?? tcpPort}
[api]
port = 0
keys = ${JSON.stringify(extra.keys ?? ['key-one'])}
[auth]
jwt_secret = "${JWT_SECRET}"
[store]
path = "${path.join(dir, 'data')}"
[node]
advertise = "127.0.0.1"
[drain]
window_ms = 200
grace_ms = 200
${extra.more ?? ''}
`,
  );
}

/** SIGHUP, then the primary's verdict (a line logged after `from`). */
async function reload(from: number, verdict: (l: LogLine) => boolean): Promise<LogLine> {
  gw.proc.kill('SIGHUP');
  return gw.waitForLog((l) => gw.logs.indexOf(l) >= from && verdict(l), 10_000);
}

const status = async (key: string) => (await gw.api('GET', '/v1/devices/nobody', undefined, key)).status;

before(async () => {
  tcpPort = await freePort();
  writeConfig();
  // A flag given at start keeps winning over the file after every reload.
  gw = await startGateway(['--config', file, '--heartbeat.grace_ms=20000'], { bare: true });
});
after(async () => {
  await gw?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('ports configured as 0 become distinct ports below the ephemeral range (no outgoing connection can take one first)', () => {
  const ports = [gw.wsPort, gw.apiPort, ...gw.resumePorts];
  assert.equal(gw.resumePorts.length, 2);
  assert.equal(new Set(ports).size, ports.length, `distinct: ${ports}`);
  for (const p of ports) assert.ok(p >= 10_000 && p < ephemeralLow(), `${p} below ${ephemeralLow()}`);
});

describe('SIGHUP reload', () => {
  test('a config with errors changes nothing and the log says why, key by key', async () => {
    writeConfig({ keys: ['key-two'], top: 'workers = 2\nwrokers = 3', more: '[limits]\nhandshake_timeout_ms = "soon"\n' });
    const from = gw.logs.length;
    const refused = await reload(from, (l) => typeof l.msg === 'string' && l.msg.startsWith('reload refused'));
    const issues = refused.issues as Array<{ key: string; message: string; hint?: string }>;
    assert.deepEqual(issues.map((i) => i.key).sort(), ['limits.handshake_timeout_ms', 'wrokers']);
    assert.match(issues.find((i) => i.key === 'wrokers')?.hint ?? '', /did you mean `workers`\?/);
    assert.match(refused.msg as string, /still running on the old one/);
    assert.equal(await status('key-one'), 404, 'the old API key still works');
    assert.equal(await status('key-two'), 401, 'the new one was not taken');
    const d = await connect(gw, 'tcp', 'reload-bad');
    d.conn.close();
  });

  test('live keys reach every worker; restart-only keys are refused by name and keep running', async () => {
    const otherTcp = await freePort();
    writeConfig({
      keys: ['key-two'],
      tcpPort: otherTcp,
      top: 'workers = 3',
      more: '[limits]\nhandshake_timeout_ms = 400\n[heartbeat]\ngrace_ms = 1000\n[log]\nlevel = "debug"\n',
    });
    const from = gw.logs.length;
    const done = await reload(from, (l) => l.process === 'primary' && typeof l.msg === 'string' && l.msg.startsWith('config reloaded'));
    assert.deepEqual((done.applied as string[]).sort(), ['api.keys', 'limits.handshake_timeout_ms', 'log.level']);
    assert.deepEqual((done.refused as string[]).sort(), ['tcp.port', 'workers']);
    for (const key of ['tcp.port', 'workers']) {
      const warn = gw.logs.find((l) => gw.logs.indexOf(l) >= from && l.key === key);
      assert.match(warn?.msg as string, new RegExp(`${key.replace('.', '\\.')} cannot change while running`));
    }
    // Each worker logs its own line on its own stdout: the primary's summary can be read first.
    const acked = (): number[] => gw.logs.filter((l) => gw.logs.indexOf(l) >= from && l.msg === 'config reloaded' && typeof l.worker === 'number').map((l) => l.worker as number);
    for (const w of [0, 1]) await gw.waitForLog((l) => gw.logs.indexOf(l) >= from && l.msg === 'config reloaded' && l.worker === w, 3_000);
    assert.deepEqual(acked().sort(), [0, 1], 'both workers applied the values');

    // API keys are read per request: the new one works at once on every worker.
    for (let i = 0; i < 6; i++) {
      assert.equal(await status('key-two'), 404);
      assert.equal(await status('key-one'), 401);
    }
    // Still on the old TCP port with two workers.
    const d = await connect(gw, 'tcp', 'reload-good');
    d.conn.close();
    assert.equal(gw.workerPids().size, 2);
    // The new handshake timeout applies to new connections; debug lines now show.
    const started = Date.now();
    const idle = await open(gw, 'ws');
    const err = await expectError(idle, 3_000);
    idle.close();
    assert.equal(err.code, ErrorCode.PROTOCOL_ERROR);
    assert.match(err.message, /no HELLO within 400 ms/);
    assert.ok(Date.now() - started < 2_000);
    await gw.waitForLog((l) => gw.logs.indexOf(l) >= from && l.level === 20 && l.msg === 'session error', 3_000);
  });

  test('flags given at start keep winning over the file', async () => {
    writeConfig({ keys: ['key-two'], more: '[heartbeat]\ngrace_ms = 5000\n[log]\nlevel = "debug"\n[limits]\nhandshake_timeout_ms = 400\n' });
    const from = gw.logs.length;
    const done = await reload(from, (l) => l.process === 'primary' && typeof l.msg === 'string' && l.msg.startsWith('config reloaded'));
    assert.ok(!(done.applied as string[]).includes('heartbeat.grace_ms'), '--heartbeat.grace_ms=20000 still wins');
  });
});
