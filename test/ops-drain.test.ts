/**
 * SIGTERM drain: devices get GOAWAY with reconnect_after_ms spread evenly over
 * drain.window_ms (measured), stay served until they leave or window + grace runs out,
 * the API keeps taking pushes meanwhile, the process exits 0 — and a durable push
 * accepted during the drain reaches its device after it reconnects to the next gateway.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { MoorClient } from '../src/client';
import { ErrorCode, FrameType, GoAwayReason } from '../src/protocol/constants';
import { moor } from '../src/protocol/generated/moor';
import { connect, type Device, expectFrame, open } from './helpers/device';
import { API_KEY, freePort, startGateway } from './helpers/gateway';
import { until } from './helpers/until';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `n` consecutive free ports (for resume ports that must stay the same across gateways). */
/** `n` consecutive free ports (the per-worker resume ports). */
const freeRun = (n: number): Promise<number> => freePort(Array.from({ length: n - 1 }, (_, i) => i + 1));

describe('SIGTERM drain', () => {
  test('a SIGTERM to every process at once (the whole group) still drains: devices get GOAWAY, exit 0', async () => {
    const gw = await startGateway(['--drain.window_ms=1000', '--drain.grace_ms=300']);
    const devices = [await connect(gw, 'ws', 'group-ws'), await connect(gw, 'tcp', 'group-tcp')];
    // As `kill -TERM -<pgid>` or a unit with KillMode=control-group: workers first.
    for (const pid of gw.workerPids().values()) process.kill(pid, 'SIGTERM');
    gw.proc.kill('SIGTERM');
    for (const d of devices) assert.equal(moor.v1.GoAway.decode(await expectFrame(d.conn, FrameType.GOAWAY, 3_000)).reason, GoAwayReason.DRAINING);
    assert.equal(await gw.stop(), 0);
    assert.ok(gw.logs.some((l) => l.msg === 'SIGTERM ignored: the primary drains the workers (send it to the primary)'));
  });

  test('a connection still waiting for its HELLO when the drain begins gets ERROR OVERLOADED with a 5-10 s retry, no device connected', async () => {
    const gw = await startGateway(['--drain.window_ms=1000', '--drain.grace_ms=300']);
    // Transport ready (upgraded; preface sent), no HELLO yet: the workers hold no session.
    const pending = [await open(gw, 'ws'), await open(gw, 'tcp')];
    await sleep(100);
    gw.proc.kill('SIGTERM');
    for (const conn of pending) {
      const err = moor.v1.Error.decode(await expectFrame(conn, FrameType.ERROR, 3_000));
      assert.equal(err.code, ErrorCode.OVERLOADED);
      assert.ok(err.retryAfterMs >= 5_000 && err.retryAfterMs < 10_000, `retry_after_ms ${err.retryAfterMs}`);
      await conn.closed(3_000);
    }
    assert.equal(await gw.stop(), 0);
  });

  test('GOAWAY reconnect_after_ms is spread evenly over the window; stragglers are closed after window + grace; exit 0', async () => {
    const WINDOW = 2_000;
    const GRACE = 600;
    const gw = await startGateway([`--drain.window_ms=${WINDOW}`, `--drain.grace_ms=${GRACE}`]);
    const devices: Device[] = [];
    for (let i = 0; i < 80; i++) devices.push(await connect(gw, i % 2 ? 'ws' : 'tcp', `drain-${i}`));
    const closedAt = new Map<number, number>();
    for (const [i, d] of devices.entries()) {
      d.conn.closed(60_000).then(
        () => closedAt.set(i, Date.now()),
        () => {},
      );
    }

    const t0 = Date.now();
    gw.proc.kill('SIGTERM');
    const goaways = await Promise.all(devices.map(async (d) => moor.v1.GoAway.decode(await expectFrame(d.conn, FrameType.GOAWAY, 3_000))));
    for (const g of goaways) {
      assert.equal(g.reason, GoAwayReason.DRAINING);
      assert.ok(g.reconnectAfterMs >= 0 && g.reconnectAfterMs < WINDOW, `${g.reconnectAfterMs} within the window`);
    }
    // Each worker spreads its own devices one per slice of the window, so every quarter
    // of it gets about a quarter of the devices: no crowd at any moment.
    const quarters = [0, 0, 0, 0];
    for (const g of goaways) quarters[Math.floor((g.reconnectAfterMs / WINDOW) * 4)]++;
    for (const q of quarters) assert.ok(q >= 16 && q <= 24, `quarters of the window got ${quarters.join(', ')} of 80`);

    // Meanwhile: not ready, no new devices, but the API still stores pushes.
    const ready = await gw.api('GET', '/readyz', undefined, null);
    assert.equal(ready.status, 503);
    assert.equal(ready.body.error.code, 'NOT_READY');
    assert.match(ready.body.error.message, /draining/);
    await assert.rejects(open(gw, 'ws'), 'the WebSocket listener is closed');
    const push = await gw.api('POST', '/v1/push', { device_id: 'drain-0', body: 'during the drain' }, API_KEY);
    assert.equal(push.status, 202);

    // These devices ignore GOAWAY: they are served until window + grace, then closed.
    await until(() => closedAt.size === devices.length, WINDOW + GRACE + 3_000, 'every straggler closed');
    const first = Math.min(...closedAt.values()) - t0;
    assert.ok(first >= WINDOW, `closed after ${first} ms, not before the window ended`);
    assert.equal(await gw.stop(), 0);
    assert.ok(Date.now() - t0 < WINDOW + GRACE + 3_000);
  });

  test('durable pushes accepted during the drain reach their devices after they reconnect; reconnects follow reconnect_after_ms', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moor-ops-drain-'));
    const [ws, tcp, api, resume] = [await freePort(), await freePort(), await freePort(), await freeRun(2)];
    const WINDOW = 1_500;
    const fixed = [`--ws.port=${ws}`, `--tcp.port=${tcp}`, `--api.port=${api}`, `--ws.resume_port_base=${resume}`, `--drain.window_ms=${WINDOW}`, '--drain.grace_ms=500'];
    const gw1 = await startGateway(fixed, { storePath: dir });

    const ids = Array.from({ length: 10 }, (_, i) => `survivor-${i}`);
    const clients = ids.map((id, i) => {
      const c = new MoorClient({
        transport: i % 2 ? 'ws' : 'tcp',
        ...(i % 2 ? { url: `ws://127.0.0.1:${ws}/ws` } : { host: '127.0.0.1', port: tcp }),
        deviceId: id,
        token: () => gw1.token(id),
        reconnect: { baseMs: 100, maxMs: 400 },
      });
      const got = new Set<number>();
      const leftAt: number[] = [];
      const goaway: number[] = [];
      c.on('push', (p) => got.add(p.seq));
      c.on('goaway', (g) => goaway.push(g.reconnectAfterMs));
      c.on('close', () => leftAt.push(Date.now()));
      c.on('error', () => {});
      return { id, c, got, leftAt, goaway };
    });
    await Promise.all(clients.map((x) => x.c.connect()));

    const accepted = new Map<string, number[]>();
    const pushTo = async (id: string, body: string): Promise<boolean> => {
      try {
        const r = await fetch(`http://127.0.0.1:${api}/v1/push`, {
          method: 'POST',
          headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ device_id: id, body }),
        });
        if (r.status !== 202) return r.status === 503;
        const { seqs } = (await r.json()) as { seqs: number[] };
        accepted.set(id, [...(accepted.get(id) ?? []), ...seqs]);
        return true;
      } catch {
        return false; // the API closed: the gateway is gone
      }
    };
    for (const { id } of clients) assert.ok(await pushTo(id, 'before'));

    const t0 = Date.now();
    const exited = gw1.stop();
    let during = 0;
    for (let k = 0; ; k++) {
      if (!(await pushTo(ids[k % ids.length], `during-${k}`))) break;
      during++;
      await sleep(20);
    }
    assert.equal(await exited, 0);
    assert.ok(during >= 20, `${during} pushes accepted during the drain`);

    // Each client left when its GOAWAY said, so the departures spread over the window.
    const departures = clients.map((x) => x.leftAt[0] - t0);
    for (const x of clients) assert.equal(x.goaway.length, 1);
    assert.ok(Math.max(...departures) - Math.min(...departures) >= WINDOW / 3, `departures at ${departures.join(', ')} ms`);
    for (const x of clients) {
      const left = x.leftAt[0] - t0;
      assert.ok(left >= x.goaway[0] && left < x.goaway[0] + 1_500, `left at ${left} ms after SIGTERM, told ${x.goaway[0]} ms`);
    }

    const gw2 = await startGateway(fixed, { storePath: dir });
    try {
      for (const x of clients) {
        const want = accepted.get(x.id) ?? [];
        await until(() => want.every((seq) => x.got.has(seq)), 20_000, `every accepted push for ${x.id} (${want.length})`);
      }
      await Promise.all(clients.map((x) => x.c.close()));
    } finally {
      await gw2.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
