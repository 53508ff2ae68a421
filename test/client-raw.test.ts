/**
 * RawConnection, the byte-exact test connection, against FakeGateway and, for
 * malformed input, a bare net server.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { afterEach, describe, test } from 'node:test';
import type { MoorClientError } from '../src/client/errors';
import { FakeGateway } from '../src/client/fake-gateway';
import { hello, RawConnection } from '../src/client/raw';
import { FrameType, TCP_PREFACE } from '../src/protocol/constants';
import { moor } from '../src/protocol/generated/moor';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function gateway(kind: 'ws' | 'tcp'): Promise<FakeGateway> {
  const g = kind === 'ws' ? await FakeGateway.ws() : await FakeGateway.tcp();
  cleanup.push(() => g.close());
  return g;
}

function track(r: RawConnection): RawConnection {
  cleanup.push(() => r.close());
  return r;
}

describe('RawConnection over WebSocket', { timeout: 10_000 }, () => {
  test('HELLO out, WELCOME back, frames with flags and stream', async () => {
    const g = await gateway('ws');
    const raw = track(await RawConnection.ws(g.url));
    raw.send(hello({ deviceId: 'd-raw', token: 't', lastSeq: 5 }));
    const conn = await g.next();
    const h = await conn.hello();
    assert.deepEqual([h.deviceId, Number(h.lastSeq)], ['d-raw', 5]);
    assert.deepEqual(g.protocols, ['moor.v1']);
    conn.welcome({ sessionId: 'raw-1' });
    const w = await raw.nextFrame();
    assert.equal(w.type, FrameType.WELCOME);
    assert.equal(moor.v1.Welcome.decode(w.payload).sessionId, 'raw-1');
    raw.sendFrame(FrameType.REQUEST, moor.v1.Request.encode({ method: 'm' }).finish(), { stream: 300 });
    assert.equal((await conn.expect(FrameType.REQUEST)).stream, 300);
  });

  test('protocol: null offers no subprotocol', async () => {
    const g = await gateway('ws');
    track(await RawConnection.ws(g.url, { protocol: null }));
    await g.next();
    assert.deepEqual(g.protocols, ['']);
  });

  test('a text message gets the connection closed; closed() reports the code', async () => {
    const g = await gateway('ws');
    const raw = track(await RawConnection.ws(g.url));
    raw.sendText('hello?');
    assert.equal((await raw.closed()).code, 1002);
    await assert.rejects(raw.nextFrame(), (e: MoorClientError) => e.code === 'DISCONNECTED');
  });

  test('a refused upgrade rejects with its HTTP status', async () => {
    const g = await gateway('ws');
    g.refuse = 1;
    await assert.rejects(RawConnection.ws(g.url), (e: MoorClientError) => e.code === 'UPGRADE_REJECTED' && e.status === 503);
  });

  test('nextFrame() and closed() reject on timeout', async () => {
    const g = await gateway('ws');
    const raw = track(await RawConnection.ws(g.url));
    await assert.rejects(raw.nextFrame(30), (e: MoorClientError) => e.code === 'TIMEOUT');
    await assert.rejects(raw.closed(30), (e: MoorClientError) => e.code === 'TIMEOUT');
  });
});

describe('RawConnection over TCP', { timeout: 10_000 }, () => {
  test('the preface goes first by default; a large frame arrives whole across reads', async () => {
    const g = await gateway('tcp');
    const raw = track(await RawConnection.tcp('127.0.0.1', g.port));
    raw.send(hello({ deviceId: 'd-tcp' }));
    const conn = await g.next();
    assert.equal((await conn.hello()).deviceId, 'd-tcp');
    assert.deepEqual(g.prefaceOk, [true]);
    const body = Buffer.alloc(200_000, 3);
    conn.push({ seq: 1, body });
    const f = await raw.nextFrame();
    assert.equal(f.type, FrameType.PUSH);
    assert.deepEqual(Buffer.from(moor.v1.Push.decode(f.payload).body), body);
  });

  test('preface: false sends only what the test writes, split anywhere', async () => {
    const g = await gateway('tcp');
    const raw = track(await RawConnection.tcp('127.0.0.1', g.port, { preface: false }));
    const bytes = Buffer.concat([TCP_PREFACE, hello({ deviceId: 'split' })]);
    raw.send(bytes.subarray(0, 3));
    raw.send(bytes.subarray(3, 11));
    raw.send(bytes.subarray(11));
    const conn = await g.next();
    assert.equal((await conn.hello()).deviceId, 'split');
    assert.deepEqual(g.prefaceOk, [true]);
    conn.end();
    assert.deepEqual(await raw.closed(), {});
  });

  test('a malformed frame from the server rejects nextFrame() with BAD_FRAME', async () => {
    const server = net.createServer((s) => {
      s.resume(); // read (and drop) the preface, so the client's FIN is seen and server.close() can finish
      s.on('error', () => {});
      s.end(Buffer.from([FrameType.PONG, 0, 0, 0, 0x0d, 0, 0, 0]));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
    const raw = track(await RawConnection.tcp('127.0.0.1', (server.address() as net.AddressInfo).port));
    assert.equal((await raw.nextFrame()).type, FrameType.PONG, 'frames before the fault are delivered');
    await assert.rejects(raw.nextFrame(), (e: MoorClientError) => e.code === 'BAD_FRAME');
  });
});
