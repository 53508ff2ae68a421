/**
 * Pushes end to end on the real gateway (2 workers, embedded store): live delivery
 * on either worker, the durable inbox, replay and SYNC, at-least-once redelivery,
 * REPLACED across workers, topic and broadcast fan-out.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ErrorCode, FrameType } from '../src/protocol/constants';
import { moor } from '../src/protocol/generated/moor';
import { ack, connect, expectError, expectFrame, expectPush, expectSilence, TRANSPORTS } from './helpers/device';
import { type Gateway, startGateway } from './helpers/gateway';
import { until } from './helpers/until';

let gw: Gateway;
before(async () => {
  gw = await startGateway();
});
after(async () => {
  await gw?.stop();
});

/** The worker index in a session id (`node.worker.epoch.sid`). */
function workerOf(sessionId: string): number {
  return Number(sessionId.split('.').at(-3));
}

describe('push to devices', () => {
  for (const t of TRANSPORTS) {
    it(`a durable push reaches an online ${t} device and answers 202 with its seq`, async () => {
      const id = `live-${t}`;
      const { conn } = await connect(gw, t, id);
      const r = await gw.api('POST', '/v1/push', { device_id: id, body: 'hello device', priority: 'high' });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      assert.equal(r.body.accepted, 1);
      assert.equal(r.body.online, 1);
      assert.deepEqual(r.body.seqs, [1]);
      assert.equal(typeof r.body.id, 'string');
      const p = await expectPush(conn);
      assert.equal(p.seq, 1);
      assert.equal(Buffer.from(p.body).toString(), 'hello device');
      assert.equal(p.priority, moor.v1.Priority.HIGH);
      assert.equal(p.id, r.body.id);
      conn.close();
    });
  }

  it('reaches devices held by either worker (O(1) routing through the directory)', async () => {
    const devices = [];
    const workers = new Set<number>();
    for (let i = 0; i < 24 && (workers.size < 2 || devices.length < 6); i++) {
      const d = await connect(gw, i % 2 ? 'tcp' : 'ws', `spread-${i}`);
      workers.add(workerOf(d.welcome.sessionId));
      devices.push({ id: `spread-${i}`, ...d });
    }
    assert.equal(workers.size, 2, 'devices landed on both workers');
    for (const d of devices) {
      const r = await gw.api('POST', '/v1/push', { device_id: d.id, body: `to ${d.id}`, durable: false });
      assert.equal(r.status, 202);
      assert.equal(r.body.online, 1);
      assert.equal(r.body.seqs, undefined);
      const p = await expectPush(d.conn);
      assert.equal(p.seq, 0);
      assert.equal(Buffer.from(p.body).toString(), `to ${d.id}`);
    }
    const info = await gw.api('GET', `/v1/devices/${devices[0].id}`);
    assert.equal(info.status, 200);
    assert.equal(info.body.online, true);
    assert.equal(info.body.worker, workerOf(devices[0].welcome.sessionId));
    for (const d of devices) d.conn.close();
  });

  it('device_ids pushes to many devices at once, with one seq each', async () => {
    const a = await connect(gw, 'ws', 'many-a');
    const r = await gw.api('POST', '/v1/push', { device_ids: ['many-a', 'many-b'], body_b64: Buffer.from([0, 1, 2, 255]).toString('base64') });
    assert.equal(r.status, 202);
    assert.equal(r.body.accepted, 2);
    assert.equal(r.body.online, 1);
    assert.deepEqual(r.body.seqs, [1, 1]);
    assert.deepEqual([...(await expectPush(a.conn)).body], [0, 1, 2, 255]);
    a.conn.close();
  });

  it('a durable push to an offline device is delivered on its next connect', async () => {
    const r = await gw.api('POST', '/v1/push', { device_id: 'offline-1', body: 'while you were away' });
    assert.equal(r.status, 202);
    assert.equal(r.body.online, 0);
    const { conn, welcome } = await connect(gw, 'tcp', 'offline-1');
    assert.equal(welcome.headSeq, 1);
    const p = await expectPush(conn);
    assert.equal(p.seq, 1);
    assert.equal(Buffer.from(p.body).toString(), 'while you were away');
    conn.close();
  });

  it('an unacknowledged push is delivered again; an acknowledged one is not', async () => {
    await gw.api('POST', '/v1/push', { device_id: 'alo-1', body: 'one' });
    await gw.api('POST', '/v1/push', { device_id: 'alo-1', body: 'two' });
    let d = await connect(gw, 'ws', 'alo-1');
    assert.equal((await expectPush(d.conn)).seq, 1);
    assert.equal((await expectPush(d.conn)).seq, 2);
    d.conn.close();
    await d.conn.closed(2000);
    // No ACK and last_seq 0: both again (at-least-once).
    d = await connect(gw, 'tcp', 'alo-1');
    assert.equal((await expectPush(d.conn)).seq, 1);
    assert.equal((await expectPush(d.conn)).seq, 2);
    ack(d.conn, 2);
    await until(async () => (await gw.api('GET', '/v1/devices/alo-1')).body.acked_seq === 2, 5000, 'the ACK to be stored');
    d.conn.close();
    await d.conn.closed(2000);
    d = await connect(gw, 'ws', 'alo-1');
    await expectSilence(d.conn, 400);
    const info = await gw.api('GET', '/v1/devices/alo-1');
    assert.equal(info.body.acked_seq, 2);
    assert.equal(info.body.head_seq, 2);
    d.conn.close();
  });

  it('HELLO.last_seq skips what the device already processed', async () => {
    for (const body of ['a', 'b', 'c']) await gw.api('POST', '/v1/push', { device_id: 'last-1', body });
    const d = await connect(gw, 'ws', 'last-1', { lastSeq: 2 });
    const p = await expectPush(d.conn);
    assert.equal(p.seq, 3);
    await expectSilence(d.conn);
    d.conn.close();
  });

  it('SYNC pages through the inbox and ends with SYNC_DONE', async () => {
    for (let i = 0; i < 5; i++) await gw.api('POST', '/v1/push', { device_id: 'sync-1', body: `m${i}` });
    const d = await connect(gw, 'tcp', 'sync-1');
    for (let seq = 1; seq <= 5; seq++) assert.equal((await expectPush(d.conn)).seq, seq);
    d.conn.sendFrame(FrameType.SYNC, moor.v1.SyncRequest.encode({ afterSeq: 1, limit: 2 }).finish());
    assert.equal((await expectPush(d.conn)).seq, 2);
    assert.equal((await expectPush(d.conn)).seq, 3);
    const done = moor.v1.SyncDone.decode(await expectFrame(d.conn, FrameType.SYNC_DONE));
    assert.equal(done.headSeq, 5);
    assert.equal(done.more, true);
    d.conn.close();
  });

  it('a new session for the same device replaces the old one with REPLACED, across workers', async () => {
    const first = await connect(gw, 'ws', 'replace-1');
    let second = await connect(gw, 'tcp', 'replace-1');
    assert.equal((await expectError(first.conn)).code, ErrorCode.REPLACED);
    // Keep reconnecting until the newest session is on the other worker than its predecessor.
    let prev = second;
    for (let i = 0; i < 20 && workerOf(prev.welcome.sessionId) === workerOf(second.welcome.sessionId); i++) {
      prev = second;
      second = await connect(gw, i % 2 ? 'ws' : 'tcp', 'replace-1');
      assert.equal((await expectError(prev.conn)).code, ErrorCode.REPLACED);
    }
    assert.notEqual(workerOf(prev.welcome.sessionId), workerOf(second.welcome.sessionId), 'saw a cross-worker replacement');
    const r = await gw.api('POST', '/v1/push', { device_id: 'replace-1', body: 'to the newest' });
    assert.equal(r.body.online, 1);
    assert.equal(Buffer.from((await expectPush(second.conn)).body).toString(), 'to the newest');
    second.conn.close();
  });

  it('topic and broadcast pushes reach subscribers on both transports', async () => {
    const tok = async (id: string, topics: string[]) => gw.token(id, { topics });
    const devs = [];
    for (const [i, t] of (['ws', 'tcp', 'ws', 'tcp'] as const).entries()) {
      const id = `topic-${i}`;
      devs.push((await connect(gw, t, id, { token: await tok(id, i < 2 ? ['news'] : ['sports']) })).conn);
    }
    const r = await gw.api('POST', '/v1/push', { topic: 'news', body: 'headline' });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.online, 2);
    for (const c of devs.slice(0, 2)) {
      const p = await expectPush(c);
      assert.equal(p.topic, 'news');
      assert.equal(p.seq, 0);
    }
    for (const c of devs.slice(2)) await expectSilence(c, 200);
    const all = await gw.api('POST', '/v1/push', { all: true, body: 'everyone' });
    assert.equal(all.status, 202);
    assert.ok(all.body.online >= 4);
    for (const c of devs) assert.equal(Buffer.from((await expectPush(c)).body).toString(), 'everyone');
    for (const c of devs) c.close();
  });
});

describe('device API', () => {
  it('GET /v1/devices/{id} is 404 for a device never seen', async () => {
    const r = await gw.api('GET', '/v1/devices/nobody-here');
    assert.equal(r.status, 404);
    assert.equal(typeof r.body.error.code, 'string');
  });

  it('GET /v1/devices/{id} describes a connected device', async () => {
    const d = await connect(gw, 'tcp', 'info-1', { network: { kind: moor.v1.NetworkKind.CELL_4G, carrier: '460-01' } });
    const r = await gw.api('GET', '/v1/devices/info-1');
    assert.equal(r.status, 200);
    assert.equal(r.body.online, true);
    assert.equal(typeof r.body.node, 'string');
    // What WELCOME advised: the class's interval, or (probe_share of sessions) its probe.
    assert.equal(r.body.heartbeat_ms, d.welcome.heartbeatMs);
    assert.ok([270_000, 330_000].includes(d.welcome.heartbeatMs));
    assert.deepEqual(r.body.network, { kind: 'CELL_4G', carrier: '460-01' });
    assert.ok(Date.parse(r.body.connected_at) > 0);
    d.conn.close();
    await d.conn.closed(2000);
    await new Promise((res) => setTimeout(res, 100));
    const later = await gw.api('GET', '/v1/devices/info-1');
    assert.equal(later.body.online, false);
  });

  it('DELETE /v1/devices/{id}/session kicks the session; 404 when none', async () => {
    const d = await connect(gw, 'ws', 'kick-1');
    const r = await gw.api('DELETE', '/v1/devices/kick-1/session');
    assert.equal(r.status, 204);
    assert.equal((await expectError(d.conn)).code, ErrorCode.REPLACED);
    await new Promise((res) => setTimeout(res, 100));
    assert.equal((await gw.api('DELETE', '/v1/devices/kick-1/session')).status, 404);
  });

  it('API input errors: 401 without a key, 400 naming the field', async () => {
    assert.equal((await gw.api('POST', '/v1/push', { device_id: 'x', body: 'y' }, null)).status, 401);
    assert.equal((await gw.api('POST', '/v1/push', { device_id: 'x', body: 'y' }, 'wrong')).status, 401);
    const bad = await gw.api('POST', '/v1/push', { device_id: 'x', body: 'y', priority: 'urgent' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /priority/);
    const none = await gw.api('POST', '/v1/push', { body: 'y' });
    assert.equal(none.status, 400);
    const big = await gw.api('POST', '/v1/push', { device_id: 'x', body: 'z'.repeat(70_000) });
    assert.equal(big.status, 413);
  });

  it('413 exactly when the PUSH payload would pass max_frame (transient: measured exactly)', async () => {
    // The payload of a transient push: id, body, sent_at (seq 0, no topic, no expiry, priority normal).
    const size = (n: number) => moor.v1.Push.encode({ id: 'x', body: Buffer.alloc(n), sentAtMs: Date.now() }).finish().length;
    let n = 65_536 - 32;
    while (size(n + 1) <= 65_536) n++;
    const fits = await gw.api('POST', '/v1/push', { device_id: 'edge', id: 'x', durable: false, body: 'z'.repeat(n) });
    assert.equal(fits.status, 202, JSON.stringify(fits.body));
    const over = await gw.api('POST', '/v1/push', { device_id: 'edge', id: 'y', durable: false, body: 'z'.repeat(n + 1) });
    assert.equal(over.status, 413);
    assert.match(over.body.error.message, /would be up to 65537 bytes; devices accept at most limits\.max_frame = 65536/);
  });

  it('an idempotency id answers the same push once', async () => {
    const body = { device_id: 'idem-1', body: 'once', id: 'order-42' };
    const a = await gw.api('POST', '/v1/push', body);
    const b = await gw.api('POST', '/v1/push', body);
    assert.equal(a.status, 202);
    assert.deepEqual(b.body, a.body);
    const d = await connect(gw, 'ws', 'idem-1');
    assert.equal((await expectPush(d.conn)).id, 'order-42');
    await expectSilence(d.conn);
    d.conn.close();
  });

  it('the same id sent concurrently is stored and delivered once, and every request gets its answer', async () => {
    const body = { device_id: 'idem-race', body: 'once', id: 'order-race' };
    const answers = await Promise.all(Array.from({ length: 8 }, () => gw.api('POST', '/v1/push', body)));
    for (const a of answers) {
      assert.equal(a.status, 202, JSON.stringify(a.body));
      assert.deepEqual(a.body, answers[0].body);
    }
    assert.deepEqual(answers[0].body.seqs, [1]);
    const d = await connect(gw, 'tcp', 'idem-race');
    assert.equal(d.welcome.headSeq, 1);
    assert.equal((await expectPush(d.conn)).id, 'order-race');
    await expectSilence(d.conn);
    d.conn.close();
  });

  it('durable pushes entering through both workers at once reach an online device in seq order', async () => {
    const id = 'order-live';
    const { conn } = await connect(gw, 'ws', id);
    const n = 120;
    const sent: Array<Promise<unknown>> = [];
    for (let i = 0; i < n; i++) {
      sent.push(gw.api('POST', '/v1/push', { device_id: id, body: `n${i}` }));
      await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(sent);
    const seqs: number[] = [];
    for (let i = 0; i < n; i++) seqs.push((await expectPush(conn)).seq);
    assert.deepEqual(
      seqs,
      Array.from({ length: n }, (_, i) => i + 1),
      'last_seq is a cumulative ACK: a device must never see a seq before a lower one',
    );
    await expectSilence(conn);
    conn.close();
  });

  it('metrics, healthz and readyz answer', async () => {
    assert.equal((await gw.api('GET', '/healthz', undefined, null)).status, 200);
    assert.equal((await gw.api('GET', '/readyz', undefined, null)).status, 200);
    const m = await gw.api('GET', '/metrics', undefined, null);
    assert.equal(m.status, 200);
    assert.match(String(m.body), /moor_connections/);
    assert.match(String(m.body), /moor_pushes_accepted_total/);
  });
});
