/**
 * systemd notifications: the native sd_notify binding on path and abstract sockets, and
 * the real gateway under a stand-in NOTIFY_SOCKET: READY once every worker listens,
 * WATCHDOG only while the workers report, STATUS with live counts, RELOADING/READY
 * around SIGHUP, STOPPING with a longer stop timeout on SIGTERM, all from the primary.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { formatState, sdNotify, watchdogMs } from '../src/cluster/sd-notify';
import { connect } from './helpers/device';
import { type Gateway, startGateway } from './helpers/gateway';
import { type NotifySocket, notifySocket } from './helpers/notify-socket';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('sd_notify binding', () => {
  test('is a no-op without NOTIFY_SOCKET', () => {
    const saved = process.env.NOTIFY_SOCKET;
    delete process.env.NOTIFY_SOCKET;
    try {
      assert.deepEqual(sdNotify({ READY: 1 }), { sent: false });
    } finally {
      if (saved !== undefined) process.env.NOTIFY_SOCKET = saved;
    }
  });

  for (const abstract of [false, true]) {
    test(`sends one datagram to ${abstract ? 'an abstract (@name)' : 'a path'} socket`, async () => {
      const sock = await notifySocket({ abstract });
      const saved = process.env.NOTIFY_SOCKET;
      process.env.NOTIFY_SOCKET = sock.address;
      try {
        assert.deepEqual(sdNotify({ READY: 1, STATUS: 'two\nlines' }), { sent: true });
        const n = await sock.waitFor((x) => x.fields.READY === '1');
        assert.deepEqual(n.fields, { READY: '1', STATUS: 'two lines' });
        assert.equal(n.pid, process.pid, 'the kernel names the sender, as systemd checks for NotifyAccess=main');
      } finally {
        if (saved === undefined) delete process.env.NOTIFY_SOCKET;
        else process.env.NOTIFY_SOCKET = saved;
        sock.close();
      }
    });
  }

  test('reports a socket nobody listens on', () => {
    const saved = process.env.NOTIFY_SOCKET;
    process.env.NOTIFY_SOCKET = '/nonexistent/moor/notify.sock';
    try {
      const r = sdNotify({ READY: 1 });
      assert.equal(r.sent, false);
      assert.match(r.error ?? '', /cannot send to NOTIFY_SOCKET/);
    } finally {
      if (saved === undefined) delete process.env.NOTIFY_SOCKET;
      else process.env.NOTIFY_SOCKET = saved;
    }
  });

  test('formatState and watchdogMs', () => {
    assert.equal(formatState({ READY: 1, STATUS: 'a=b' }), 'READY=1\nSTATUS=a=b');
    assert.equal(watchdogMs({}), 0);
    assert.equal(watchdogMs({ WATCHDOG_USEC: '30000000' }, 42), 30_000);
    assert.equal(watchdogMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42), 30_000);
    assert.equal(watchdogMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 42), 0, 'meant for another process');
    assert.equal(watchdogMs({ WATCHDOG_USEC: 'x' }), 0);
  });
});

describe('the gateway under systemd (Type=notify)', () => {
  let sock: NotifySocket;
  let gw: Gateway;
  let readyLogAt = 0;
  before(async () => {
    sock = await notifySocket({ abstract: true });
    // A 2 s watchdog: pings every 500 ms while healthy.
    gw = await startGateway(['--drain.window_ms=300', '--drain.grace_ms=300'], { env: { NOTIFY_SOCKET: sock.address, WATCHDOG_USEC: '2000000' } });
    readyLogAt = Date.parse((gw.logs.find((l) => l.msg === 'moor ready')?.time as string) ?? '');
  });
  after(async () => {
    await gw?.stop();
    sock?.close();
  });

  test('READY=1 once every worker listens, with a STATUS line, from the primary only', async () => {
    const ready = await sock.waitFor((n) => n.fields.READY === '1');
    // Workers log "worker listening" before they tell the primary; the lines reach this
    // test through a pipe, possibly after the datagram, so wait for them, then compare times.
    const countListening = () => gw.logs.filter((l) => l.msg === 'worker listening').length;
    for (let i = 0; i < 100 && countListening() < 2; i++) await sleep(20);
    const listening = gw.logs.filter((l) => l.msg === 'worker listening');
    assert.equal(listening.length, 2);
    for (const l of listening) assert.ok(Date.parse(l.time as string) <= ready.at, 'READY came after every worker listened');
    assert.ok(ready.at >= readyLogAt);
    assert.match(ready.fields.STATUS, /0 connections \(ws 0, tcp 0\); 2\/2 workers listening/);
    const pids = new Set(sock.received.map((n) => n.pid));
    assert.deepEqual([...pids], [gw.proc.pid], 'workers never notify (NotifyAccess=main)');
    assert.equal(sock.received.filter((n) => n.fields.READY === '1').length, 1);
  });

  test('STATUS carries the live connection counts', async () => {
    const a = await connect(gw, 'ws', 'notify-a');
    const b = await connect(gw, 'tcp', 'notify-b');
    await sock.waitFor((n) => /2 connections \(ws 1, tcp 1\)/.test(n.fields.STATUS ?? ''), 5_000);
    const from = sock.received.length;
    a.conn.close();
    b.conn.close();
    await sock.waitFor((n) => sock.received.indexOf(n) >= from && /^0 connections/.test(n.fields.STATUS ?? ''), 5_000);
  });

  test('WATCHDOG=1 while the workers report; withheld while one is frozen', async () => {
    const pings = () => sock.received.filter((n) => n.fields.WATCHDOG === '1').length;
    const before = pings();
    await sleep(1_600);
    assert.ok(pings() - before >= 2, `pinged ${pings() - before} times in 1.6 s with a 2 s watchdog`);

    const victim = gw.workerPids().get(1) as number;
    process.kill(victim, 'SIGSTOP');
    try {
      await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('workers unhealthy: worker 1 has not reported'), 10_000);
      const frozenAt = pings();
      await sleep(1_500);
      assert.equal(pings(), frozenAt, 'no WATCHDOG=1 while worker 1 is frozen');
    } finally {
      process.kill(victim, 'SIGCONT');
    }
    await gw.waitForLog((l) => l.msg === 'workers healthy again', 5_000);
    const thawed = pings();
    await sleep(1_200);
    assert.ok(pings() > thawed, 'pings resume');
  });

  test('SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1', async () => {
    const from = sock.received.length;
    gw.proc.kill('SIGHUP');
    const reloading = await sock.waitFor((n) => n.fields.RELOADING === '1');
    assert.match(reloading.fields.MONOTONIC_USEC, /^\d+$/);
    await sock.waitFor((n) => sock.received.indexOf(n) > from && n.fields.READY === '1' && n.at >= reloading.at);
  });

  test('SIGTERM: STOPPING=1 with EXTEND_TIMEOUT_USEC covering window + grace, then exit 0', async () => {
    const code = gw.stop();
    const stopping = await sock.waitFor((n) => n.fields.STOPPING === '1');
    assert.equal(Number(stopping.fields.EXTEND_TIMEOUT_USEC), (300 + 300 + 10_000) * 1000);
    assert.match(stopping.fields.STATUS, /^draining; /);
    assert.equal(await code, 0);
    const last = sock.received.filter((n) => n.fields.WATCHDOG === '1').at(-1);
    assert.ok(!last || last.at <= stopping.at + 50, 'no watchdog pings after STOPPING');
  });
});
