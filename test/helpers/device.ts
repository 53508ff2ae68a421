/** Test devices speaking moor/1 to a real gateway over either transport. */

import { hello, RawConnection } from '../../src/client/raw';
import { FrameType } from '../../src/protocol/constants';
import { moor } from '../../src/protocol/generated/moor';
import type { Gateway } from './gateway';

export type TransportName = 'ws' | 'tcp';
export const TRANSPORTS: TransportName[] = ['ws', 'tcp'];

export function open(gw: Gateway, t: TransportName, opts: { port?: number } = {}): Promise<RawConnection> {
  if (t === 'ws') return RawConnection.ws(opts.port ? `ws://127.0.0.1:${opts.port}/ws` : gw.wsUrl);
  return RawConnection.tcp('127.0.0.1', opts.port ?? gw.tcpPort);
}

export interface Device {
  conn: RawConnection;
  welcome: moor.v1.Welcome;
}

/** Connect, HELLO, and expect WELCOME. */
export async function connect(gw: Gateway, t: TransportName, deviceId: string, fields: moor.v1.IHello = {}, opts: { port?: number } = {}): Promise<Device> {
  const conn = await open(gw, t, opts);
  conn.send(hello({ deviceId, token: await gw.token(deviceId), ...fields }));
  const f = await conn.nextFrame(5000);
  if (f.type !== FrameType.WELCOME) {
    const detail = f.type === FrameType.ERROR ? JSON.stringify(moor.v1.Error.decode(f.payload)) : '';
    throw new Error(`expected WELCOME, got type ${f.type} ${detail}`);
  }
  return { conn, welcome: moor.v1.Welcome.decode(f.payload) };
}

/** The next frame, which must be of `type`; returns its payload. */
export async function expectFrame(conn: RawConnection, type: number, timeoutMs = 3000): Promise<Buffer> {
  const f = await conn.nextFrame(timeoutMs);
  if (f.type !== type) {
    const detail = f.type === FrameType.ERROR ? JSON.stringify(moor.v1.Error.decode(f.payload)) : '';
    throw new Error(`expected frame type ${type}, got ${f.type} ${detail}`);
  }
  return Buffer.from(f.payload);
}

export async function expectPush(conn: RawConnection, timeoutMs = 3000): Promise<moor.v1.Push> {
  return moor.v1.Push.decode(await expectFrame(conn, FrameType.PUSH, timeoutMs));
}

export async function expectError(conn: RawConnection, timeoutMs = 3000): Promise<moor.v1.Error> {
  return moor.v1.Error.decode(await expectFrame(conn, FrameType.ERROR, timeoutMs));
}

/** Nothing arrives within `ms`. */
export async function expectSilence(conn: RawConnection, ms = 300): Promise<void> {
  try {
    const f = await conn.nextFrame(ms);
    throw new Error(`expected no frame, got type ${f.type}`);
  } catch (err) {
    if ((err as { code?: string }).code !== 'TIMEOUT') throw err;
  }
}

export function ack(conn: RawConnection, upToSeq: number, seqs: number[] = []): void {
  conn.sendFrame(FrameType.ACK, moor.v1.Ack.encode({ upToSeq, seqs }).finish());
}
