/**
 * The raw TCP transport's decoder sharing (src/gateway/transport-tcp.ts): sockets between
 * frames share one decoder per worker, a socket holding a partial frame gets its own.
 * Many sockets with frames split across reads, interleaved, small frames (TypeScript
 * half) and large ones (Rust half), and one socket failing mid-stream, must each decode
 * exactly what it sent.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { hello, RawConnection } from '../src/client/raw';
import { sharedReads } from '../src/gateway/transport-tcp';
import { ErrorCode, FrameType } from '../src/protocol/constants';
import { encodeFrame } from '../src/protocol/encoder';
import { expectError, expectFrame, expectSilence } from './helpers/device';
import { type Gateway, startGateway } from './helpers/gateway';

let gw: Gateway;
before(async () => {
  gw = await startGateway([]);
});
after(async () => {
  await gw?.stop();
});

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('raw TCP reads into one buffer per worker', () => {
  it('an accepted plain socket reads through the onread callback, with no data events, on this node', async () => {
    const got: string[] = [];
    let taken: boolean | null = null;
    let dataEvents = 0;
    const srv = net.createServer((sock) => {
      taken = sharedReads(sock);
      // The transport's callback sits under node's kBufferCb; wrap it to see the bytes.
      const k = Object.getOwnPropertySymbols(sock).find((x) => x.description === 'kBufferCb') as symbol;
      const own = sock as unknown as Record<symbol, unknown>;
      own[k] = (n: number, buf: Buffer) => {
        got.push(buf.subarray(0, n).toString());
        if (got.join('') === 'abcdef') sock.end();
      };
      sock.on('data', () => dataEvents++);
      assert.equal(sharedReads(sock), false, 'a socket already in onread mode is left alone');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const c = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
    c.write('abc');
    await new Promise((r) => setTimeout(r, 20));
    c.write('def');
    await new Promise((r) => c.on('close', r));
    srv.close();
    assert.equal(taken, true, 'node 20 has the onread internals the transport relies on (else every read allocates again)');
    assert.equal(got.join(''), 'abcdef');
    assert.equal(dataEvents, 0);
  });
});

describe('raw TCP decoder sharing', () => {
  it('interleaved sockets with frames split across reads each decode their own frames', async () => {
    const n = 12;
    const conns = await Promise.all(Array.from({ length: n }, () => RawConnection.tcp('127.0.0.1', gw.tcpPort)));
    // HELLOs of ~100 B and, on every other socket, ~900 B (a long client string): reads of
    // 512 B or more go to the Rust decoder, smaller ones to TypeScript.
    const streams = await Promise.all(
      conns.map(async (_c, k) => {
        const id = `split-many-${k}`;
        return Buffer.concat([hello({ deviceId: id, token: await gw.token(id), client: k % 2 ? 'c'.repeat(800) : 'c' }), encodeFrame(FrameType.PING, 0, 0), encodeFrame(FrameType.PING, 0, 0)]);
      }),
    );
    // Round-robin over the sockets, a few bytes (varying) at a time, so each socket's
    // partial frame overlaps with the others' reads on the same worker.
    const sizes = [1, 3, 7, 2, 600, 5, 11, 4];
    const pos = new Array(n).fill(0);
    for (let round = 0; pos.some((p, k) => p < streams[k].length); round++) {
      for (let k = 0; k < n; k++) {
        if (pos[k] >= streams[k].length) continue;
        const len = sizes[(round + k) % sizes.length];
        conns[k].send(streams[k].subarray(pos[k], pos[k] + len));
        pos[k] += len;
      }
      await tick();
    }
    for (const c of conns) {
      await expectFrame(c, FrameType.WELCOME);
      await expectFrame(c, FrameType.PONG);
      await expectFrame(c, FrameType.PONG);
    }
    for (const c of conns) c.close();
  });

  it('a socket that fails mid-frame does not disturb the others', async () => {
    const good = await RawConnection.tcp('127.0.0.1', gw.tcpPort);
    const bad = await RawConnection.tcp('127.0.0.1', gw.tcpPort);
    good.send(hello({ deviceId: 'share-good', token: await gw.token('share-good') }));
    bad.send(hello({ deviceId: 'share-bad', token: await gw.token('share-bad') }));
    await expectFrame(good, FrameType.WELCOME);
    await expectFrame(bad, FrameType.WELCOME);
    // good: half a PING header; bad: an unknown frame type (PROTOCOL_ERROR); good: the rest.
    const ping = encodeFrame(FrameType.PING, 0, 0);
    good.send(ping.subarray(0, 2));
    await tick();
    bad.send(Buffer.from([0x7f, 0x00, 0x00, 0x00]));
    const err = await expectError(bad);
    assert.equal(err.code, ErrorCode.PROTOCOL_ERROR);
    good.send(ping.subarray(2));
    await expectFrame(good, FrameType.PONG);
    // And whole frames afterwards, on the shared decoder again.
    good.send(Buffer.concat([ping, ping]));
    await expectFrame(good, FrameType.PONG);
    await expectFrame(good, FrameType.PONG);
    await expectSilence(good, 100);
    good.close();
    bad.close();
  });
});
