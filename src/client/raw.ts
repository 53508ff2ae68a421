/**
 * RawConnection: a bare moor/1 connection for tests and tools. It sends exactly the bytes
 * it is given (malformed ones included) and hands back what arrives, frame by frame, so a
 * test can script both sides of a conversation with a gateway.
 */
import type { ConnectionOptions } from 'node:tls';
import { FrameType } from '../protocol/constants';
import { encodeFrame } from '../protocol/encoder';
import { moor } from '../protocol/generated/moor';
import { MoorClientError } from './errors';
import type { Frame } from './frames';
import { type CloseInfo, openTransport, type Transport } from './transport';

export type RawFrame = Frame;

export interface RawClosed {
  /** WebSocket close code; absent for TCP. */
  code?: number;
  reason?: string;
}

/** A HELLO frame (type, flags, stream, length, payload) from Hello fields. */
export function hello(fields: moor.v1.IHello): Buffer {
  return encodeFrame(FrameType.HELLO, 0, 0, moor.v1.Hello.encode(fields).finish());
}

interface FrameWaiter {
  resolve(f: RawFrame): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export class RawConnection {
  private transport!: Transport;
  private readonly frames: RawFrame[] = [];
  private readonly waiters: FrameWaiter[] = [];
  private closeInfo: CloseInfo | null = null;
  private readonly closeWaiters: Array<() => void> = [];
  private error: Error | null = null;
  private session: Buffer | null = null;

  private constructor() {}

  /** TLS: the newest session the server gave on this connection (null if none yet). */
  get tlsSession(): Buffer | null {
    return this.session;
  }

  /** TLS: whether the handshake resumed the offered session (null without TLS). */
  get tlsResumed(): boolean | null {
    return this.transport.tlsResumed();
  }

  /**
   * Open a WebSocket; protocol: the subprotocol to offer (default `moor.v1`, null for none).
   * Rejects with MoorClientError UPGRADE_REJECTED (its .status set) if the server refuses.
   */
  static ws(
    url: string,
    opts: { protocol?: string | null; headers?: Record<string, string>; tls?: ConnectionOptions; tlsSession?: Buffer | null } = {},
  ): Promise<RawConnection> {
    return new RawConnection().open({ kind: 'ws', url, tls: opts.tls }, { protocol: opts.protocol, headers: opts.headers, tlsSession: opts.tlsSession });
  }

  /** Open raw TCP; preface: send `MOOR/1\r\n` first (default true); tls: TLS (true, or tls.connect options). */
  static tcp(host: string, port: number, opts: { preface?: boolean; tls?: boolean | ConnectionOptions; tlsSession?: Buffer | null } = {}): Promise<RawConnection> {
    return new RawConnection().open({ kind: 'tcp', host, port, tls: opts.tls }, { preface: opts.preface, tlsSession: opts.tlsSession });
  }

  private open(ep: Parameters<typeof openTransport>[0], opts: Parameters<typeof openTransport>[2]): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      let opened = false;
      this.transport = openTransport(
        ep,
        {
          open: () => {
            opened = true;
            resolve(this);
          },
          frame: (f) => this.onFrame(f),
          tlsSession: (session) => {
            this.session = session;
          },
          close: (info) => {
            if (!opened) reject(info.error ?? new Error('connection closed before it opened'));
            this.onClose(info);
          },
        },
        opts,
      );
    });
  }

  /** Bytes as they are: one binary message (WebSocket) or a write (TCP). */
  send(bytes: Uint8Array): void {
    this.transport.send(bytes);
  }

  /** A text WebSocket message (the protocol forbids them: for testing the server's answer). */
  sendText(text: string): void {
    this.transport.sendText(text);
  }

  sendFrame(type: number, payload?: Uint8Array, opts: { flags?: number; stream?: number } = {}): void {
    this.transport.send(encodeFrame(type, opts.flags ?? 0, opts.stream ?? 0, payload));
  }

  /** The next frame received. Rejects on timeout, on a malformed frame, or when the connection closed with none left. */
  nextFrame(timeoutMs = 1000): Promise<RawFrame> {
    const f = this.frames.shift();
    if (f !== undefined) return Promise.resolve(f);
    if (this.closeInfo !== null) return Promise.reject(this.endError());
    return new Promise((resolve, reject) => {
      const w: FrameWaiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          reject(new MoorClientError('TIMEOUT', `no frame within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** Resolves once the connection is closed: the WebSocket close code and reason, or {} for TCP. */
  closed(timeoutMs = 1000): Promise<RawClosed> {
    const done = (): RawClosed => {
      const c = this.closeInfo as CloseInfo;
      return c.code === undefined ? {} : { code: c.code, reason: c.reason };
    };
    if (this.closeInfo !== null) return Promise.resolve(done());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new MoorClientError('TIMEOUT', `still open after ${timeoutMs} ms`)), timeoutMs);
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve(done());
      });
    });
  }

  /** Close politely (WebSocket 1000, or TCP FIN). */
  close(): void {
    this.transport.end();
  }

  private onFrame(f: RawFrame): void {
    const w = this.waiters.shift();
    if (w === undefined) {
      this.frames.push(f);
      return;
    }
    clearTimeout(w.timer);
    w.resolve(f);
  }

  private onClose(info: CloseInfo): void {
    this.closeInfo = info;
    this.error = info.error ?? null;
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(this.endError());
    }
    for (const c of this.closeWaiters.splice(0)) c();
  }

  private endError(): Error {
    return this.error ?? new MoorClientError('DISCONNECTED', 'connection closed');
  }
}
