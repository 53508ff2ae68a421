/**
 * The smart heartbeat in the real gateway (`moor serve`): a timed-out report lowers the
 * next WELCOME's advice, live sessions get PONG + HeartbeatAdvice and a nearer idle
 * deadline, the class table survives a restart, and workers share what they learn.
 * Short intervals (seconds) so the clock-bound parts run fast.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FrameType } from '../src/protocol/constants';
import { moor } from '../src/protocol/generated/moor';
import { connect, expectFrame } from './helpers/device';
import { API_KEY, type Gateway, JWT_SECRET, startGateway } from './helpers/gateway';

const X = 4_000;
const MIN = 2_000;
/** Bounds in seconds, no probing (advice is deterministic), no grace, fast table sync. */
const ARGS = [`--heartbeat.default_ms=${X}`, `--heartbeat.min_ms=${MIN}`, '--heartbeat.grace_ms=0', '--heartbeat.probe_share=0', '--heartbeat.sync_ms=1000'];
const CELL_4G = moor.v1.NetworkKind.CELL_4G;
const network = (carrier: string) => ({ kind: CELL_4G, carrier });
/** How a NAT death reads from the device: its first PING unanswered, noticed a PONG timeout later. */
const natDeath = { intervalMs: X, timedOut: true, livedMs: X + 500 };

async function ping(conn: Awaited<ReturnType<typeof connect>>['conn']): Promise<Buffer> {
  conn.sendFrame(FrameType.PING);
  return expectFrame(conn, FrameType.PONG);
}

/** Two devices come back on `carrier` saying their previous session died of its NAT. */
async function twoNatDeaths(gw: Gateway, carrier: string): Promise<number[]> {
  const advised: number[] = [];
  for (const id of [`${carrier}-a`, `${carrier}-b`]) {
    const first = await connect(gw, 'tcp', id, { network: network(carrier) });
    assert.equal(first.welcome.heartbeatMs, X);
    first.conn.close();
    await first.conn.closed(2000);
    const again = await connect(gw, 'tcp', id, { network: network(carrier), previous: natDeath });
    advised.push(again.welcome.heartbeatMs);
    again.conn.close();
  }
  return advised;
}

describe('smart heartbeat, one worker', () => {
  let gw: Gateway;
  const storePath = mkdtempSync(path.join(os.tmpdir(), 'moor-test-hb-'));
  before(async () => {
    gw = await startGateway(ARGS, { workers: 1, storePath });
  });
  after(async () => {
    await gw?.stop();
    rmSync(storePath, { recursive: true, force: true });
  });

  it('previous.timed_out at X: the next WELCOME for that class advises less than X', async () => {
    const advised = await twoNatDeaths(gw, 'nat-short');
    // F = 2: the first report is one failure, the second backs the class off.
    assert.deepEqual(advised, [X, MIN]);
    const other = await connect(gw, 'ws', 'nat-short-c', { network: network('nat-short') });
    assert.ok(other.welcome.heartbeatMs < X);
    other.conn.close();
    // Another carrier of the same kind is its own class.
    const elsewhere = await connect(gw, 'ws', 'nat-long-a', { network: network('nat-long') });
    assert.equal(elsewhere.welcome.heartbeatMs, X);
    elsewhere.conn.close();
    // Foreground sessions get the fixed foreground interval.
    const fg = await connect(gw, 'ws', 'nat-short-fg', { network: network('nat-short'), foreground: true });
    assert.equal(fg.welcome.heartbeatMs, 60_000);
    fg.conn.close();
  });

  it('a live session gets PONG + HeartbeatAdvice after its class changes, and a nearer idle deadline', async () => {
    const live = await connect(gw, 'tcp', 'live-1', { network: network('nat-live') });
    assert.equal(live.welcome.heartbeatMs, X);
    assert.equal((await ping(live.conn)).length, 0, 'nothing to advise yet');
    await twoNatDeaths(gw, 'nat-live');
    assert.equal((await gw.api('GET', '/v1/devices/live-1')).body.heartbeat_ms, X);
    const advice = moor.v1.HeartbeatAdvice.decode(await ping(live.conn));
    assert.equal(advice.heartbeatMs, MIN);
    // The API reports the interval the session runs on now, not the one of its HELLO.
    assert.equal((await gw.api('GET', '/v1/devices/live-1')).body.heartbeat_ms, MIN);
    const pinged = Date.now();
    assert.equal((await ping(live.conn)).length, 0, 'advised once');
    // Silent from now on: closed after 2 x MIN (+ one wheel tick), not after the 2 x X it was scheduled with.
    const closed = await live.conn.closed(2 * X + 2_000);
    const after = Date.now() - pinged;
    assert.ok(closed !== undefined);
    assert.ok(after >= 2 * MIN - 100 && after < 2 * MIN + 1_600, `idle close after ${after} ms`);
    const metrics = (await gw.api('GET', '/metrics')).body as string;
    assert.match(metrics, /moor_heartbeat_class_changes_total\{change="back_off"\} 2/);
    assert.match(metrics, /moor_heartbeat_advised_seconds_count\{kind="4g"\} \d+/);
  });

  it('the class table survives a restart', async () => {
    // The decision is saved about a second after it is made.
    await new Promise((r) => setTimeout(r, 1_500));
    await gw.stop();
    gw = await startGateway(ARGS, { workers: 1, storePath });
    const d = await connect(gw, 'tcp', 'nat-short-d', { network: network('nat-short') });
    assert.equal(d.welcome.heartbeatMs, MIN);
    d.conn.close();
  });
});

describe('smart heartbeat, two workers', () => {
  let gw: Gateway;
  before(async () => {
    gw = await startGateway(ARGS, { workers: 2 });
  });
  after(async () => {
    await gw?.stop();
  });

  it('what one worker learns reaches the other through the store', async () => {
    // The reports land on either worker (evidence merges; test/heartbeat-policy.test.ts
    // pins the sum); within a few syncs every worker advises the backed-off interval.
    await twoNatDeaths(gw, 'shared');
    const deadline = Date.now() + 8_000;
    let advised: number[] = [];
    while (Date.now() < deadline) {
      advised = [];
      for (let i = 0; i < 6; i++) {
        const d = await connect(gw, i % 2 ? 'ws' : 'tcp', `shared-${i}`, { network: network('shared') });
        advised.push(d.welcome.heartbeatMs);
        d.conn.close();
      }
      if (advised.every((ms) => ms === MIN)) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.deepEqual(advised, Array(6).fill(MIN));
  });
});

describe('smart heartbeat, SIGHUP', () => {
  let gw: Gateway;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'moor-test-hb-reload-'));
  const file = path.join(dir, 'moor.toml');
  const write = (foregroundMs: number, minMs: number) =>
    writeFileSync(
      file,
      `workers = 1
[ws]
host = "127.0.0.1"
port = 0
[tcp]
port = 0
[api]
port = 0
keys = ["${API_KEY}"]
[auth]
jwt_secret = "${JWT_SECRET}"
[store]
path = "${path.join(dir, 'data')}"
[node]
advertise = "127.0.0.1"
[heartbeat]
default_ms = ${X}
min_ms = ${minMs}
foreground_ms = ${foregroundMs}
probe_share = 0
`,
    );
  before(async () => {
    write(30_000, MIN);
    gw = await startGateway(['--config', file], { bare: true });
  });
  after(async () => {
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('live heartbeat keys reach the policy: new sessions and live ones', async () => {
    const fg = await connect(gw, 'ws', 'reload-fg', { network: network('reload'), foreground: true });
    assert.equal(fg.welcome.heartbeatMs, 30_000);
    fg.conn.close();
    const live = await connect(gw, 'ws', 'reload-live', { network: network('reload') });
    assert.equal(live.welcome.heartbeatMs, X);
    write(45_000, 5_000);
    const from = gw.logs.length;
    gw.proc.kill('SIGHUP');
    await gw.waitForLog((l) => gw.logs.indexOf(l) >= from && l.msg === 'config reloaded' && typeof l.worker === 'number', 10_000);
    const again = await connect(gw, 'ws', 'reload-fg', { network: network('reload'), foreground: true });
    assert.equal(again.welcome.heartbeatMs, 45_000);
    again.conn.close();
    // min_ms rose above the class's interval: the live session is told on its next PING.
    assert.equal(moor.v1.HeartbeatAdvice.decode(await ping(live.conn)).heartbeatMs, 5_000);
    live.conn.close();
  });
});
