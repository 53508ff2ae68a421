/**
 * TLS operations against the real gateway: a certificate reload (SIGHUP) that keeps
 * live sessions, bad certificate and ticket-key config refused at start, and plaintext
 * or broken clients on TLS ports closed quickly without harming a worker.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RawConnection } from '../src/client/raw';
import { FrameType } from '../src/protocol/constants';
import { expectFrame, expectPush } from './helpers/device';
import { type Gateway, type LogLine, startGateway } from './helpers/gateway';
import { type CertDir, certShownAt, leave, makeCerts, tlsConnect, tlsOptions, waitForLogCount } from './helpers/tls';

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'moor.js');
const reloaded = (l: LogLine) => typeof l.msg === 'string' && l.msg.startsWith('tls certificate reloaded');

describe('TLS certificate reload (SIGHUP)', { timeout: 60_000 }, () => {
  let certs: CertDir;
  let gw: Gateway;
  before(async () => {
    certs = makeCerts();
    gw = await startGateway(certs.args, { workers: 2 });
  });
  after(async () => {
    await gw?.stop();
    certs?.remove();
  });

  test('new handshakes get the new certificate; live sessions stay up and still get pushes', async () => {
    const oldCa = certs.ca;
    const oldFp = certs.fingerprint;
    const tls = tlsOptions(certs, 'TLSv1.3');
    const devices = {
      ws: await tlsConnect(gw, 'ws', 'reload-ws', tls, { token: await gw.token('reload-ws', { topics: ['news'] }) }),
      tcp: await tlsConnect(gw, 'tcp', 'reload-tcp', tls, { token: await gw.token('reload-tcp', { topics: ['news'] }) }),
    };
    const tcpTicket = devices.tcp.conn.tlsSession;
    assert.ok(tcpTicket);
    for (const port of [gw.wsPort, gw.tcpPort, ...gw.resumePorts]) assert.equal(await certShownAt(port), oldFp);

    // A SIGHUP that finds the same files changes nothing.
    gw.proc.kill('SIGHUP');
    await gw.waitForLog((l) => l.msg === 'config reloaded' && l.worker === 1);
    assert.equal(gw.logs.filter(reloaded).length, 0);
    // The primary's summary says the files were re-read (only the workers know whether they changed).
    const summary = await gw.waitForLog((l) => l.process === 'primary' && typeof l.msg === 'string' && l.msg.startsWith('config reloaded'));
    assert.match(summary.msg as string, /TLS certificate and key files re-read/);
    assert.deepEqual(summary.reread, ['tls.cert', 'tls.key']);

    certs.renew();
    assert.notEqual(certs.fingerprint, oldFp);
    gw.proc.kill('SIGHUP');
    await waitForLogCount(gw, reloaded, 2);
    for (const port of [gw.wsPort, gw.tcpPort, ...gw.resumePorts]) assert.equal(await certShownAt(port), certs.fingerprint, `port ${port} shows the new certificate`);

    // Live sessions: heartbeat answered, topic pushes still reach both (the old uWS app included).
    for (const d of Object.values(devices)) {
      d.conn.sendFrame(FrameType.PING);
      await expectFrame(d.conn, FrameType.PONG);
    }
    const push = await gw.api('POST', '/v1/push', { topic: 'news', body: 'after reload' });
    assert.equal(push.status, 202);
    assert.equal(push.body.online, 2);
    for (const d of Object.values(devices)) assert.equal(Buffer.from((await expectPush(d.conn)).body).toString(), 'after reload');

    // Raw TCP ticket keys do not depend on the certificate: the old ticket still resumes.
    const again = await tlsConnect(gw, 'tcp', 'reload-tcp-2', tlsOptions(certs, 'TLSv1.3'), { session: tcpTicket });
    assert.equal(again.resumed, true);
    await leave(again);
    // A client that only trusts the old certificate is refused now.
    await assert.rejects(tlsConnect(gw, 'tcp', 'reload-old-ca', { ...tls, ca: oldCa }));
    for (const d of Object.values(devices)) await leave(d);
  });
});

function checkConfig(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'check-config', ...args], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

describe('bad TLS config fails at start with a clear error', { timeout: 60_000 }, () => {
  let a: CertDir;
  let b: CertDir;
  before(() => {
    a = makeCerts();
    b = makeCerts();
  });
  after(() => {
    a?.remove();
    b?.remove();
  });

  test('check-config names the key and the problem', () => {
    const cases: Array<[string[], RegExp]> = [
      [[`--tls.cert=${a.cert}`, `--tls.key=${b.key}`], /tls\.key .*cannot be used with tls\.cert: .*key values mismatch/],
      [[`--tls.cert=${a.dir}/missing.pem`, `--tls.key=${a.key}`], /tls\.cert .*cannot read .*missing\.pem/],
      [[`--tls.cert=${a.cert}`], /tls\.key.*is required when tls\.cert is set/],
      [[`--tls.cert=${a.key}`, `--tls.key=${a.key}`], /tls\.cert .*holds no PEM certificate/],
    ];
    for (const [args, re] of cases) {
      const r = checkConfig(args);
      assert.equal(r.status, 1, `${args.join(' ')} refused`);
      assert.match(r.stderr, re);
    }
  });

  test('a ticket keys file must be owner-only and 48 or 96 bytes; its bytes are never shown', () => {
    const file = path.join(a.dir, 'keys.bin');
    const secret = Buffer.alloc(48, 0x41); // "AAAA…": would show up if echoed
    writeFileSync(file, secret, { mode: 0o644 });
    chmodSync(file, 0o644);
    let r = checkConfig([...a.args, `--tls.ticket_keys_file=${file}`]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /tls\.ticket_keys_file .*mode 644.*owner only/);
    assert.match(r.stderr, /chmod 600/);
    chmodSync(file, 0o600);
    writeFileSync(file, secret.subarray(0, 40));
    r = checkConfig([...a.args, `--tls.ticket_keys_file=${file}`]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /holds 40 bytes; expected 48 .* or 96/);
    assert.doesNotMatch(r.stderr, /AAAA/);
    writeFileSync(file, secret);
    assert.equal(checkConfig([...a.args, `--tls.ticket_keys_file=${file}`]).status, 0);
  });

  test('serve refuses a mismatched pair before forking a worker', () => {
    const r = spawnSync(
      process.execPath,
      [BIN, 'serve', '--workers=1', `--tls.cert=${a.cert}`, `--tls.key=${b.key}`, '--ws.port=0', '--api.port=0', '--tcp.port=0', `--store.path=${a.dir}/store`],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /tls\.key .*cannot be used with tls\.cert/);
  });
});

/** Connects, writes `bytes`, and resolves with what came back and how long the server took to close. */
function poke(port: number, bytes: Buffer | string, waitMs = 5_000): Promise<{ reply: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const chunks: Buffer[] = [];
    const sock = net.connect(port, '127.0.0.1', () => sock.write(bytes));
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ reply: Buffer.concat(chunks).toString('latin1'), closedAfterMs: performance.now() - t0 });
    });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`port ${port} still open after ${waitMs} ms`));
    }, waitMs);
  });
}

describe('plaintext and broken clients on TLS ports', { timeout: 60_000 }, () => {
  let certs: CertDir;
  let gw: Gateway;
  before(async () => {
    certs = makeCerts();
    gw = await startGateway([...certs.args, '--limits.handshake_timeout_ms=800'], { workers: 2 });
  });
  after(async () => {
    await gw?.stop();
    certs?.remove();
  });

  test('a plaintext moor/1 client on the TLS TCP port is closed at once, with no frame', async () => {
    const conn = await RawConnection.tcp('127.0.0.1', gw.tcpPort);
    const t0 = performance.now();
    await assert.rejects(conn.nextFrame(3000), (e: { code?: string }) => e.code === 'DISCONNECTED');
    assert.ok(performance.now() - t0 < 1000);
  });

  test('plain HTTP on the TLS TCP port gets a 400 naming TLS', async () => {
    const r = await poke(gw.tcpPort, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(r.reply, /^HTTP\/1\.1 400 /);
    assert.match(r.reply, /over TLS/);
  });

  test('a plaintext WebSocket upgrade on the TLS WebSocket ports is refused quickly', async () => {
    for (const port of [gw.wsPort, gw.resumePorts[0]]) {
      const t0 = performance.now();
      await assert.rejects(RawConnection.ws(`ws://127.0.0.1:${port}/ws`));
      assert.ok(performance.now() - t0 < 2000, `port ${port}`);
    }
  });

  test('broken handshakes are closed quickly on both transports', async () => {
    // A handshake record whose ClientHello is garbage.
    const garbage = Buffer.from('16030100080100000401020304', 'hex');
    // A record header promising a long hello, then silence: the handshake timeout ends it.
    const stalled = Buffer.from('1603010200010001fc0303', 'hex');
    for (const port of [gw.tcpPort, gw.wsPort]) {
      const g = await poke(port, garbage);
      assert.ok(g.closedAfterMs < 1000, `garbage hello on ${port} closed after ${g.closedAfterMs} ms`);
    }
    const s = await poke(gw.tcpPort, stalled);
    assert.ok(s.closedAfterMs >= 700 && s.closedAfterMs < 3000, `stalled hello closed after ${s.closedAfterMs} ms`);
    // A client that distrusts the certificate aborts its own handshake.
    await assert.rejects(tlsConnect(gw, 'tcp', 'no-ca', { servername: 'localhost' }));
    await assert.rejects(tlsConnect(gw, 'ws', 'no-ca', { servername: 'localhost' }));
  });

  test('the workers are unharmed: same processes, TLS devices still welcome on both transports', async () => {
    const before = gw.workerPids();
    const storm: Array<Promise<unknown>> = [];
    for (let i = 0; i < 50; i++) {
      storm.push(poke(gw.tcpPort, Buffer.from('1603010005ffffffffff', 'hex')).catch(() => {}));
      storm.push(poke(gw.wsPort, 'MOOR/1\r\n').catch(() => {}));
    }
    await Promise.all(storm);
    for (const t of ['ws', 'tcp'] as const) {
      const d = await tlsConnect(gw, t, `after-${t}`, tlsOptions(certs));
      await leave(d);
    }
    assert.deepEqual(gw.workerPids(), before);
    assert.ok(!gw.logs.some((l) => l.msg === 'worker exited' || l.level === 50), 'no worker died and nothing logged an error');
  });
});
