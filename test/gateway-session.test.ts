/**
 * The gateway started for real (2 workers), driven over both transports exactly as
 * protocol.md says: handshake, heartbeat, and every bad input of §1-§5.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { hello, RawConnection } from '../src/client/raw';
import { ErrorCode, FrameType } from '../src/protocol/constants';
import { encodeFrame } from '../src/protocol/encoder';
import { connect, expectError, expectFrame, open, TRANSPORTS } from './helpers/device';
import { type Gateway, JWT_SECRET, startGateway } from './helpers/gateway';

let gw: Gateway;
before(async () => {
  gw = await startGateway(['--limits.handshake_timeout_ms=800']);
});
after(async () => {
  await gw?.stop();
});

for (const t of TRANSPORTS) {
  describe(`session over ${t}`, () => {
    it('HELLO gets WELCOME with the advertised fields', async () => {
      const before = Date.now();
      const { conn, welcome } = await connect(gw, t, `hello-${t}`);
      assert.ok(welcome.sessionId.length > 0);
      assert.equal(welcome.heartbeatMs, 270_000);
      assert.equal(welcome.maxFrame, 65_536);
      assert.equal(welcome.codec, 0);
      assert.equal(welcome.headSeq, 0);
      assert.ok(welcome.serverTimeMs >= before - 1000 && welcome.serverTimeMs <= Date.now() + 1000);
      assert.match(welcome.resumeEndpoint, /^127\.0\.0\.1:\d+$/);
      conn.close();
    });

    it('PING is answered with the 4-byte PONG', async () => {
      const { conn } = await connect(gw, t, `ping-${t}`);
      conn.send(Buffer.from([0x03, 0x00, 0x00, 0x00]));
      const f = await conn.nextFrame(2000);
      assert.equal(f.type, FrameType.PONG);
      assert.equal(f.payload.length, 0);
      conn.close();
    });

    it('a bad token is AUTH_FAILED and closed', async () => {
      const conn = await open(gw, t);
      const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('dev-x').setExpirationTime('1h').sign(new TextEncoder().encode('wrong-secret'));
      conn.send(hello({ deviceId: 'dev-x', token }));
      const e = await expectError(conn);
      assert.equal(e.code, ErrorCode.AUTH_FAILED);
      await conn.closed(3000);
    });

    it('an expired token is AUTH_FAILED', async () => {
      const conn = await open(gw, t);
      const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('dev-exp').setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(new TextEncoder().encode(JWT_SECRET));
      conn.send(hello({ deviceId: 'dev-exp', token }));
      assert.equal((await expectError(conn)).code, ErrorCode.AUTH_FAILED);
      await conn.closed(3000);
    });

    it("a token for another device is AUTH_FAILED", async () => {
      const conn = await open(gw, t);
      conn.send(hello({ deviceId: 'dev-a', token: await gw.token('dev-b') }));
      assert.equal((await expectError(conn)).code, ErrorCode.AUTH_FAILED);
      await conn.closed(3000);
    });

    it('a frame before HELLO is PROTOCOL_ERROR', async () => {
      const conn = await open(gw, t);
      conn.send(Buffer.from([0x03, 0x00, 0x00, 0x00]));
      assert.equal((await expectError(conn)).code, ErrorCode.PROTOCOL_ERROR);
      await conn.closed(3000);
    });

    it('a compressed frame before HELLO is PROTOCOL_ERROR too (not UNSUPPORTED)', async () => {
      for (const flags of [0x01, 0x02]) {
        const conn = await open(gw, t);
        conn.send(Buffer.from([0x03, flags, 0x00, 0x00]));
        const err = await expectError(conn);
        assert.equal(err.code, ErrorCode.PROTOCOL_ERROR, err.message);
        await conn.closed(3000);
      }
    });

    it('a compressed HELLO is UNSUPPORTED (no codec is negotiated before WELCOME)', async () => {
      const conn = await open(gw, t);
      conn.send(Buffer.from([0x01, 0x01, 0x00, 0x01, 0x00]));
      assert.equal((await expectError(conn)).code, ErrorCode.UNSUPPORTED);
      await conn.closed(3000);
    });

    it('HELLO.device_id: 128 bytes is fine; empty or 129 bytes is PROTOCOL_ERROR', async () => {
      const ok = `${'é'.repeat(62)}-${t}`.padEnd(128 - 62, 'x'); // 62 two-byte chars + ASCII: 128 bytes
      assert.equal(Buffer.byteLength(ok), 128);
      const d = await connect(gw, t, ok);
      d.conn.close();
      for (const deviceId of ['', `${ok}y`]) {
        const conn = await open(gw, t);
        conn.send(hello({ deviceId, token: await gw.token(deviceId || 'nobody') }));
        const err = await expectError(conn);
        assert.equal(err.code, ErrorCode.PROTOCOL_ERROR, err.message);
        assert.match(err.message, /device_id/);
        await conn.closed(3000);
      }
    });

    if (t === 'tcp') {
      it('frames pipelined behind HELLO run after WELCOME, in order; more than 32 before WELCOME is PROTOCOL_ERROR', async () => {
        const ping = Buffer.from([0x03, 0x00, 0x00, 0x00]);
        const ok = await open(gw, t);
        ok.send(Buffer.concat([hello({ deviceId: 'pipelined-32', token: await gw.token('pipelined-32') }), ...Array(32).fill(ping)]));
        await expectFrame(ok, FrameType.WELCOME);
        for (let i = 0; i < 32; i++) await expectFrame(ok, FrameType.PONG);
        ok.close();
        const over = await open(gw, t);
        over.send(Buffer.concat([hello({ deviceId: 'pipelined-33', token: await gw.token('pipelined-33') }), ...Array(33).fill(ping)]));
        const err = await expectError(over);
        assert.equal(err.code, ErrorCode.PROTOCOL_ERROR);
        assert.match(err.message, /too many frames before WELCOME/);
        await over.closed(3000);
      });
    }

    it('a second HELLO is PROTOCOL_ERROR', async () => {
      const { conn } = await connect(gw, t, `twice-${t}`);
      conn.send(hello({ deviceId: `twice-${t}`, token: await gw.token(`twice-${t}`) }));
      assert.equal((await expectError(conn)).code, ErrorCode.PROTOCOL_ERROR);
      await conn.closed(3000);
    });

    it('an unknown frame type is PROTOCOL_ERROR', async () => {
      const { conn } = await connect(gw, t, `unknown-${t}`);
      conn.send(Buffer.from([0x0d, 0x00, 0x00, 0x00]));
      assert.equal((await expectError(conn)).code, ErrorCode.PROTOCOL_ERROR);
      await conn.closed(3000);
    });

    it('reserved flag bits are PROTOCOL_ERROR', async () => {
      const { conn } = await connect(gw, t, `flags-${t}`);
      conn.send(Buffer.from([0x03, 0x04, 0x00, 0x00]));
      assert.equal((await expectError(conn)).code, ErrorCode.PROTOCOL_ERROR);
      await conn.closed(3000);
    });

    it('a 6-byte varint is PROTOCOL_ERROR', async () => {
      const { conn } = await connect(gw, t, `varint-${t}`);
      conn.send(Buffer.from([0x03, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00]));
      assert.equal((await expectError(conn)).code, ErrorCode.PROTOCOL_ERROR);
      await conn.closed(3000);
    });

    it('a gateway-to-device frame type from a device is PROTOCOL_ERROR', async () => {
      const { conn } = await connect(gw, t, `dir-${t}`);
      conn.send(encodeFrame(FrameType.PONG, 0, 0));
      assert.equal((await expectError(conn)).code, ErrorCode.PROTOCOL_ERROR);
      await conn.closed(3000);
    });

    it('a declared length above max_frame is FRAME_TOO_LARGE', async () => {
      const { conn } = await connect(gw, t, `big-${t}`);
      // Header only (length 65537 = 0x81 0x80 0x04): the verdict must not wait for the payload.
      const header = Buffer.from([0x07, 0x00, 0x01, 0x81, 0x80, 0x04]);
      conn.send(t === 'ws' ? Buffer.concat([header, Buffer.alloc(65_537)]) : header);
      assert.equal((await expectError(conn)).code, ErrorCode.FRAME_TOO_LARGE);
      await conn.closed(3000);
    });

    it('no HELLO within the handshake timeout closes the connection, counted once as a timeout', async () => {
      const handshakes = async () => {
        const text = (await gw.api('GET', '/metrics')).body as string;
        const n = (r: string) => Number(new RegExp(`^moor_handshakes_total\\{result="${r}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
        return { timeout: n('timeout'), protocolError: n('protocol_error') };
      };
      const before = await handshakes();
      const conn = await open(gw, t);
      const e = await expectError(conn, 3000);
      assert.equal(e.code, ErrorCode.PROTOCOL_ERROR);
      await conn.closed(3000);
      const after = await handshakes();
      assert.deepEqual({ timeout: after.timeout - before.timeout, protocolError: after.protocolError - before.protocolError }, { timeout: 1, protocolError: 0 });
    });

    it('bad input leaves other sessions untouched', async () => {
      const { conn } = await connect(gw, t, `survivor-${t}`);
      const bad = await open(gw, t);
      bad.send(Buffer.from([0xff, 0xff, 0xff]));
      await bad.closed(3000);
      conn.send(encodeFrame(FrameType.PING, 0, 0));
      await expectFrame(conn, FrameType.PONG);
      conn.close();
    });
  });
}

describe('transport specifics', () => {
  it('a WebSocket text message is PROTOCOL_ERROR with close 1003', async () => {
    const { conn } = await connect(gw, 'ws', 'text-ws');
    conn.sendText('hello');
    assert.equal((await expectError(conn)).code, ErrorCode.PROTOCOL_ERROR);
    assert.equal((await conn.closed(3000)).code, 1003);
  });

  it('a WebSocket message with two frames is PROTOCOL_ERROR', async () => {
    const { conn } = await connect(gw, 'ws', 'two-ws');
    conn.send(Buffer.from([0x03, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00]));
    assert.equal((await expectError(conn)).code, ErrorCode.PROTOCOL_ERROR);
  });

  it('a WebSocket upgrade offering only another subprotocol is refused', async () => {
    await assert.rejects(RawConnection.ws(gw.wsUrl, { protocol: 'chat' }));
  });

  it('the WebSocket subprotocol moor.v1 is echoed; none offered is accepted', async () => {
    const { conn } = await connect(gw, 'ws', 'proto-ws');
    conn.close();
    const bare = await RawConnection.ws(gw.wsUrl, { protocol: null });
    bare.send(hello({ deviceId: 'proto-none', token: await gw.token('proto-none') }));
    await expectFrame(bare, FrameType.WELCOME);
    bare.close();
  });

  it('TCP frames split at every byte decode the same', async () => {
    const conn = await RawConnection.tcp('127.0.0.1', gw.tcpPort);
    const bytes = Buffer.concat([hello({ deviceId: 'split-tcp', token: await gw.token('split-tcp') }), encodeFrame(FrameType.PING, 0, 0)]);
    for (const b of bytes) {
      conn.send(Buffer.from([b]));
      await new Promise((r) => setImmediate(r));
    }
    await expectFrame(conn, FrameType.WELCOME);
    await expectFrame(conn, FrameType.PONG);
    conn.close();
  });

  for (const [name, bytes, http] of [
    ['garbage', Buffer.from('\x00\x01garbage!'), false],
    ['HTTP', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), true],
  ] as const) {
    it(`a TCP client without the preface (${name}) gets no frame and is closed`, async () => {
      const sock = net.connect(gw.tcpPort, '127.0.0.1');
      const chunks: Buffer[] = [];
      sock.on('data', (d) => chunks.push(d));
      sock.write(bytes);
      await new Promise<void>((resolve) => sock.on('close', () => resolve()));
      const got = Buffer.concat(chunks).toString('latin1');
      if (http) assert.match(got, /^HTTP\/1\.1 400 /);
      else assert.equal(got, '');
    });
  }
});
