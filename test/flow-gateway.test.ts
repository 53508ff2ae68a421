/**
 * Flow control end to end, against the real gateway (one worker, so one set of
 * per-worker budgets): the accept rate (503 + Retry-After, ERROR OVERLOADED, and the
 * client library waiting as told), the inbound limit, per-key and per-unit push
 * pacing (queued, not dropped; 429 only when full; durable pushes paced through the
 * inbox), and the slow-consumer policy.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MoorClient } from '../src/client/client';
import { hello, RawConnection } from '../src/client/raw';
import { ErrorCode, FrameType } from '../src/protocol/constants';
import { moor } from '../src/protocol/generated/moor';
import { connect, expectFrame, expectPush, TRANSPORTS } from './helpers/device';
import { type Gateway, startGateway } from './helpers/gateway';
import { openPausable, rssAnon } from './helpers/slow-device';
import { until } from './helpers/until';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A WebSocket upgrade by hand, to read the refusal's status and Retry-After. */
function upgrade(gw: Gateway): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.get({
      host: '127.0.0.1',
      port: gw.wsPort,
      path: '/ws',
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Protocol': 'moor.v1' },
    });
    req.on('upgrade', (res, sock) => {
      sock.destroy();
      resolve({ status: res.statusCode ?? 0, retryAfter: undefined });
    });
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] });
    });
    req.on('error', reject);
  });
}

describe('flow control: accept rate', { timeout: 30_000 }, () => {
  let gw: Gateway;
  before(async () => {
    gw = await startGateway(['--limits.accept_per_s=1', '--limits.accept_burst=2', '--limits.accept_retry_max_ms=3000'], { workers: 1 });
  });
  after(() => gw.stop());

  test('over the rate: 503 + Retry-After before the upgrade, ERROR OVERLOADED with retry_after_ms on TCP; the client waits as told', async () => {
    // 1 connection/s, bursts of 2: a few upgrades in a row empty the bucket, whatever the clock did before.
    let refused = await upgrade(gw);
    for (let i = 0; i < 10 && refused.status === 101; i++) refused = await upgrade(gw);
    assert.equal(refused.status, 503);
    const after = Number(refused.retryAfter);
    assert.ok(after >= 1 && after <= 3, `Retry-After ${refused.retryAfter}`);
    // TCP right behind it (a token may have come back meanwhile: then that connection gets in).
    let err: moor.v1.Error | null = null;
    for (let i = 0; i < 5 && err === null; i++) {
      const tcp = await RawConnection.tcp('127.0.0.1', gw.tcpPort);
      tcp.send(hello({ deviceId: `accept-tcp-${i}`, token: await gw.token(`accept-tcp-${i}`) }));
      const f = await tcp.nextFrame(3000);
      if (f.type === FrameType.ERROR) {
        err = moor.v1.Error.decode(f.payload);
        await tcp.closed(3000);
      }
      tcp.close();
    }
    assert.ok(err);
    assert.equal(err.code, ErrorCode.OVERLOADED);
    assert.ok(err.retryAfterMs >= 1000 && err.retryAfterMs <= 3000, `retry_after_ms ${err.retryAfterMs}`);

    // The client library is refused too, waits the delay it was given, and gets in.
    await Promise.all([upgrade(gw), upgrade(gw), upgrade(gw)]);
    const c = new MoorClient({ url: gw.wsUrl, deviceId: 'accept-1', token: await gw.token('accept-1'), reconnect: { baseMs: 10, maxMs: 40 } });
    const delays: number[] = [];
    c.on('reconnecting', (r) => delays.push(r.delayMs));
    c.on('error', () => {});
    const t0 = Date.now();
    await c.connect();
    c.close();
    assert.ok(delays.length >= 1 && delays[0] >= 1000, `the client waited ${delays.join(', ')} ms`);
    assert.ok(Date.now() - t0 >= 1000);
    const m = await gw.api('GET', '/metrics');
    assert.match(m.body, /moor_flow_refused_total\{reason="accept"\} [1-9]/);
  });
});

describe('flow control: inbound limit', { timeout: 30_000 }, () => {
  let gw: Gateway;
  before(async () => {
    // The byte burst asked for is below one max_frame, so the max_frame floor applies.
    gw = await startGateway(['--limits.in_frames_per_s=5', '--limits.in_frames_burst=20', '--limits.in_bytes_per_s=1024', '--limits.in_bytes_burst=1024'], { workers: 1 });
  });
  after(() => gw.stop());

  for (const t of TRANSPORTS) {
    test(`${t}: a burst is tolerated; a device that keeps going gets RATE_LIMITED, then a close`, async () => {
      const calm = await connect(gw, t, `calm-${t}`);
      for (let i = 0; i < 15; i++) calm.conn.sendFrame(FrameType.PING, new Uint8Array(0));
      for (let i = 0; i < 15; i++) await expectFrame(calm.conn, FrameType.PONG);
      calm.conn.close();

      const loud = await connect(gw, t, `loud-${t}`);
      for (let i = 0; i < 100; i++) loud.conn.sendFrame(FrameType.PING, new Uint8Array(0));
      let pongs = 0;
      let f = await loud.conn.nextFrame(3000);
      while (f.type === FrameType.PONG) {
        pongs++;
        f = await loud.conn.nextFrame(3000);
      }
      assert.equal(f.type, FrameType.ERROR);
      const e = moor.v1.Error.decode(f.payload);
      assert.equal(e.code, ErrorCode.RATE_LIMITED);
      assert.ok(e.retryAfterMs >= 1000, `retry_after_ms ${e.retryAfterMs}`);
      // The message states the limits that apply: the byte burst is the max_frame floor, not the 1024 configured.
      const burst = /^over the inbound limit: 5 frames\/s and 1024 bytes\/s, bursts of 20 frames and (\d+) bytes$/.exec(e.message);
      assert.ok(burst && Number(burst[1]) > 65_536, e.message);
      // 20 tokens, HELLO took one; a second boundary passing meanwhile adds 5.
      assert.ok(pongs >= 19 && pongs <= 30, `${pongs} PINGs answered before the ERROR`);
      await loud.conn.closed(3000);
    });
  }
});

describe('flow control: push pacing per API key and unit', { timeout: 60_000 }, () => {
  let gw: Gateway;
  const OTHER = 'other-api-key';
  before(async () => {
    gw = await startGateway(
      [
        `--api.keys=test-api-key,${OTHER}`,
        '--limits.push_per_s=10',
        '--limits.push_burst=5',
        '--limits.push_queue=20',
        '--units=[{name="promo", rate=2, burst=1, queue=3, rules=[{scope="topic", match="promo-*"}]}]',
      ],
      { workers: 1 },
    );
  });
  after(() => gw.stop());

  test('over a key limit pushes are queued and paced, not dropped; 429 only when the queue is full; other keys are untouched', async () => {
    const d = await connect(gw, 'ws', 'paced-1');
    // All at once: sent one by one, the HTTP round trips would refill the bucket meanwhile.
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => gw.api('POST', '/v1/push', { device_id: 'paced-1', body: `p${i}`, durable: false, id: `p${i}` })));
    const passed = answers.filter((a) => a.status === 202 && a.body.queued === undefined);
    const queued = answers.filter((a) => a.status === 202 && a.body.queued === true);
    const refused = answers.filter((a) => a.status === 429);
    assert.equal(passed.length, 5, 'the burst');
    assert.ok(queued.length >= 20 && queued.length <= 22, `${queued.length} queued (20, plus any slot freed meanwhile)`);
    assert.equal(passed.length + queued.length + refused.length, 30);
    assert.ok(passed.every((a) => a.body.online === 1));
    assert.ok(queued.every((a) => a.body.online === 0));
    for (const r of refused) {
      assert.equal(r.body.error.code, 'RATE_LIMITED');
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
    }
    const accepted = [...passed, ...queued].map((a) => a.body.id as string);

    const other = await gw.api('POST', '/v1/push', { device_id: 'paced-1', body: 'other', durable: false }, OTHER);
    assert.equal(other.status, 202);
    assert.equal(other.body.queued, undefined, 'another key has its own budget');

    const got = new Set<string>();
    const t0 = Date.now();
    while (got.size < accepted.length + 1) got.add((await expectPush(d.conn, 5000)).id);
    const took = Date.now() - t0;
    for (const id of accepted) assert.ok(got.has(id), `${id} arrived`);
    assert.ok(took >= 1500, `20 queued pushes at 10/s were paced (${took} ms)`);
    d.conn.close();
  });

  test('durable pushes over the limit are stored first and reach the device from its inbox, in order', async () => {
    await sleep(600); // the burst refills (5 at 10/s)
    const d = await connect(gw, 'tcp', 'paced-2');
    const seqs: number[] = [];
    let queued = 0;
    for (let i = 0; i < 15; i++) {
      const r = await gw.api('POST', '/v1/push', { device_id: 'paced-2', body: `d${i}` });
      assert.equal(r.status, 202);
      if (r.body.queued) queued++;
      seqs.push(r.body.seqs[0]);
    }
    assert.ok(queued >= 5 && queued <= 11, `${queued} queued`);
    assert.deepEqual(
      seqs,
      Array.from({ length: 15 }, (_, i) => i + 1),
    );
    const got: number[] = [];
    while (got.length < 15) got.push((await expectPush(d.conn, 5000)).seq);
    assert.deepEqual(got, seqs);
    d.conn.close();
  });

  test('a unit has its own budget: topic pushes coloured into it queue, others do not; metrics per unit', async () => {
    // The other key: paced durable notices of the previous test may still be queued for the first one.
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await gw.api('POST', '/v1/push', { topic: 'promo-spring', body: `x${i}` }, OTHER));
    assert.deepEqual(
      answers.map((a) => [a.status, a.body.queued ?? false]),
      [
        [202, false],
        [202, true],
        [202, true],
        [202, true],
        [429, false],
      ],
    );
    const news = await gw.api('POST', '/v1/push', { topic: 'news', body: 'n' }, OTHER);
    assert.equal(news.body.queued, undefined);
    const m = (await gw.api('GET', '/metrics')).body as string;
    assert.match(m, /moor_flow_pushes_total\{unit="promo",result="queued"\} 3/);
    assert.match(m, /moor_flow_pushes_total\{unit="promo",result="rejected"\} 1/);
    assert.match(m, /moor_flow_pushes_total\{unit="default",result="passed"\} \d+/);
  });
});

describe('flow control: slow consumers', { timeout: 120_000 }, () => {
  let gw: Gateway;
  const MAX_BUFFERED = 65_536;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'moor-flow-slow-'));
  const file = path.join(dir, 'moor.toml');
  // slow_ms comes from the file so SIGHUP can lower it: the memory is measured first, with time to spare.
  const writeConfig = (slowMs: number) => writeFileSync(file, `[limits]\nslow_ms = ${slowMs}\n`);
  before(async () => {
    writeConfig(600_000);
    gw = await startGateway(['--config', file, `--limits.max_buffered=${MAX_BUFFERED}`, '--limits.push_per_s=100000', '--limits.push_burst=100000'], { workers: 1 });
  });
  after(async () => {
    await gw.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a TCP device that stops reading: memory stays bounded, it is closed with the reason, durable pushes come later from the inbox', async (t) => {
    const dev = await openPausable(gw, 'slow-1');
    const pid = [...gw.workerPids().values()][0];
    const body = 'x'.repeat(16 * 1024);
    const push = (durable: boolean) => gw.api('POST', '/v1/push', { device_id: 'slow-1', body, durable });
    const flood = async (n: number) => {
      for (let i = 0; i < n; i += 16) await Promise.all(Array.from({ length: 16 }, () => push(false)));
    };
    dev.pause();
    // 16 MB to fill the kernel's buffers and the gateway's, and to grow the heap to its working size.
    await flood(1000);
    const plateau = rssAnon(pid);
    // 48 MB more to a device that reads nothing: bounded memory does not grow with it
    // (with the buffer unbounded the worker grew 44 MB for 32 MB).
    await flood(1500);
    const mid = rssAnon(pid);
    await flood(1500);
    const durable: number[] = [];
    for (let i = 0; i < 20; i++) durable.push((await push(true)).body.seqs[0]);
    const grown = rssAnon(pid) - plateau;
    const mb = (b: number) => (b / 1048576).toFixed(1);
    t.diagnostic(`worker RssAnon: +${mb(mid - plateau)} MB, +${mb(grown)} MB after 24 and 48 MB more pushed to a paused device`);
    // Half of what was pushed: GC timing moves RSS by ~10 MB; unbounded buffering grows ~1.4x what is pushed.
    assert.ok(grown < 24 * 1024 * 1024, `the worker grew ${mb(grown)} MB (${mb(mid - plateau)} MB after the first 24) for 48 MB more pushed to a device that reads nothing`);
    let m = '';
    await until(async () => /moor_flow_slow_sessions 1/.test((m = (await gw.api('GET', '/metrics')).body as string)), 10_000, 'a sweep to count the slow session', 100);
    const held = Number(/moor_flow_slow_buffered_bytes (\d+)/.exec(m)?.[1] ?? -1);
    assert.ok(held >= MAX_BUFFERED / 4 && held <= MAX_BUFFERED + 20_000, `bytes held for the slow session: ${held}`);
    assert.match(m, /moor_flow_slow_sessions 1/);
    assert.match(m, /moor_flow_deferred_total [1-9]/);

    // Now let the policy act: slow_ms drops to 1 s, live.
    writeConfig(1000);
    gw.proc.kill('SIGHUP');
    const closed = await gw.waitForLog((l) => l.msg === 'slow consumer closed' && l.device === 'slow-1', 15_000);
    assert.ok((closed.slow_ms as number) >= 1000);
    // Reading again 3 s later, the device finds the ERROR after what was buffered (the socket
    // has 10 s to flush; at 2 s it was cut mid-frame, without the ERROR).
    await sleep(3000);
    const frames = await dev.resumeUntilClosed(10_000);
    const last = frames[frames.length - 1];
    assert.equal(last?.type, FrameType.ERROR, 'the last frame is the ERROR');
    const e = moor.v1.Error.decode(last.payload);
    assert.equal(e.code, ErrorCode.OVERLOADED);
    assert.match(e.message, /slow consumer: \d+ bytes unread for \d+ ms/);
    assert.ok(e.retryAfterMs >= 1000);
    assert.ok(frames.every((f) => f.type !== FrameType.PUSH || moor.v1.Push.decode(f.payload).seq === 0), 'no durable push was buffered while it was slow');

    // Its next session gets the durable pushes from the inbox.
    const again = await connect(gw, 'tcp', 'slow-1', { lastSeq: 0 });
    const got: number[] = [];
    while (got.length < durable.length) got.push((await expectPush(again.conn, 5000)).seq);
    assert.deepEqual(got, durable);
    again.conn.close();
  });
});
