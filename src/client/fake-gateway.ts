/**
 * FakeGateway: a scripted moor/1 gateway for testing device code (this library's tests,
 * and apps built on MoorClient) without the real one. A real `ws` WebSocketServer or a
 * real net server on 127.0.0.1, frames decoded with the TS codec; every reply is sent by
 * the script, so a test controls timing, order and misbehaviour exactly.
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import net from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { WebSocketServer } from 'ws';
import { FrameType, TCP_PREFACE, WS_SUBPROTOCOL } from '../protocol/constants';
import { encodeFrame } from '../protocol/encoder';
import { moor } from '../protocol/generated/moor';
import { type Frame, FrameReader } from './frames';

/** PEM key and certificate for a TLS fake. */
export interface FakeTls {
  key: string | Buffer;
  cert: string | Buffer;
}

/** A received frame and when it arrived (performance.now()). */
export type ReceivedFrame = Frame & { at: number };

/** One accepted device connection, seen from the gateway's side. */
export class FakeConn {
  private readonly frames: ReceivedFrame[] = [];
  private readonly waiters: Array<(f: ReceivedFrame | null) => void> = [];
  closed = false;
  /** Why the connection was dropped by the fake itself (a malformed frame from the device). */
  fault: Error | null = null;
  /** Answer each PING with an empty PONG (the PING is still recorded). */
  autoPong = true;

  constructor(
    private readonly write: (b: Buffer) => void,
    /** Close politely: WebSocket close with `code`, or TCP FIN. */
    readonly end: (code?: number) => void,
    /** Drop the connection without a close. */
    readonly destroy: () => void,
  ) {}

  /** @internal */
  rx(f: Frame): void {
    if (f.type === FrameType.PING && this.autoPong) this.send(FrameType.PONG);
    const r = { ...f, at: performance.now() };
    const w = this.waiters.shift();
    if (w) w(r);
    else this.frames.push(r);
  }

  /** @internal */
  bad(e: Error): void {
    this.fault ??= e;
  }

  /** @internal */
  gone(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w(null);
  }

  /** The next frame of `type`, skipping PINGs; throws on any other type, on close, on timeout. */
  async expect(type: number, timeoutMs = 1000): Promise<ReceivedFrame> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const f = this.frames.shift() ?? (await this.wait(deadline - performance.now()));
      if (f === null) throw this.fault ?? new Error(`fake gateway: connection ended while waiting for type ${type}`);
      if (f.type === type) return f;
      if (f.type !== FrameType.PING) throw new Error(`fake gateway: expected type ${type}, got ${f.type}`);
    }
  }

  /** Frames of `type` received and not yet taken by expect(). */
  pending(type: number): ReceivedFrame[] {
    return this.frames.filter((f) => f.type === type);
  }

  send(type: number, payload?: Uint8Array, stream = 0): void {
    if (!this.closed) this.write(encodeFrame(type, 0, stream, payload));
  }

  async hello(): Promise<moor.v1.Hello> {
    return moor.v1.Hello.decode((await this.expect(FrameType.HELLO)).payload);
  }

  welcome(w: moor.v1.IWelcome = {}): void {
    this.send(FrameType.WELCOME, moor.v1.Welcome.encode({ sessionId: 's', heartbeatMs: 60_000, maxFrame: 65_536, ...w }).finish());
  }

  push(p: moor.v1.IPush): void {
    this.send(FrameType.PUSH, moor.v1.Push.encode({ id: `p${p.seq ?? 0}`, topic: 't', ...p }).finish());
  }

  /** ERROR, then close, as the gateway does. */
  error(e: moor.v1.IError): void {
    this.send(FrameType.ERROR, moor.v1.Error.encode(e).finish());
    this.end(1000);
  }

  // uint64 fields decode as Long objects (the `long` package is installed): hand out numbers.

  async ack(timeoutMs = 1000): Promise<{ upToSeq: number; seqs: number[] }> {
    const a = moor.v1.Ack.decode((await this.expect(FrameType.ACK, timeoutMs)).payload);
    return { upToSeq: Number(a.upToSeq), seqs: a.seqs.map(Number) };
  }

  async sync(timeoutMs = 1000): Promise<[afterSeq: number, limit: number]> {
    const r = moor.v1.SyncRequest.decode((await this.expect(FrameType.SYNC, timeoutMs)).payload);
    return [Number(r.afterSeq), r.limit];
  }

  private wait(ms: number): Promise<ReceivedFrame | null> {
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const w = (f: ReceivedFrame | null) => {
        clearTimeout(t);
        resolve(f);
      };
      // A timed-out waiter leaves the queue, or it would swallow the next frame.
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error('fake gateway: no frame in time'));
      }, Math.max(1, ms));
      this.waiters.push(w);
    });
  }
}

export class FakeGateway {
  /** Every connection accepted, in order. */
  readonly conns: FakeConn[] = [];
  /** Subprotocol chosen per WebSocket connection. */
  readonly protocols: string[] = [];
  /** Per TCP connection: did it start with the MOOR/1 preface? */
  readonly prefaceOk: boolean[] = [];
  /** Answer the next n WebSocket upgrades with HTTP 503 + Retry-After: 1. */
  refuse = 0;
  port = 0;
  private secure = false;
  private taken = 0;
  private readonly waiters: Array<() => void> = [];
  private stop: () => Promise<void> = async () => {};

  private constructor() {}

  /** A WebSocket gateway (wss:// when given a key and certificate). */
  static async ws(tls?: FakeTls): Promise<FakeGateway> {
    const g = new FakeGateway();
    g.secure = tls !== undefined;
    const http = tls ? createHttpsServer(tls) : createHttpServer();
    const wss = new WebSocketServer({
      server: http,
      handleProtocols: (set) => (set.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false),
      verifyClient: (_info, cb) => (g.refuse > 0 && g.refuse-- > 0 ? cb(false, 503, 'busy', { 'Retry-After': '1' }) : cb(true)),
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    g.port = (http.address() as net.AddressInfo).port;
    wss.on('connection', (ws) => {
      g.protocols.push(ws.protocol);
      const reader = new FrameReader();
      const c = new FakeConn(
        (b) => ws.send(b),
        (code) => ws.close(code),
        () => ws.terminate(),
      );
      ws.on('message', (m, isBinary) => {
        let f: Frame;
        try {
          if (!isBinary) throw new Error('fake gateway: text message');
          f = reader.message(m as Buffer);
        } catch (e) {
          c.bad(e as Error);
          ws.close(1002);
          return;
        }
        c.rx(f);
      });
      ws.on('close', () => c.gone());
      g.accept(c);
    });
    g.stop = async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise((r) => wss.close(r));
      await new Promise((r) => http.close(r));
    };
    return g;
  }

  /** A raw TCP gateway (TLS when given a key and certificate). */
  static async tcp(tls?: FakeTls): Promise<FakeGateway> {
    const g = new FakeGateway();
    g.secure = tls !== undefined;
    const socks = new Set<net.Socket>();
    const onSocket = (sock: net.Socket) => {
      socks.add(sock);
      const reader = new FrameReader();
      let head = Buffer.alloc(0);
      const c = new FakeConn(
        (b) => sock.write(b),
        () => sock.end(),
        () => sock.destroy(),
      );
      sock.on('data', (chunk: Buffer) => {
        if (head.length < TCP_PREFACE.length) {
          head = Buffer.concat([head, chunk]);
          if (head.length < TCP_PREFACE.length) return;
          g.prefaceOk.push(head.subarray(0, TCP_PREFACE.length).equals(TCP_PREFACE));
          chunk = head.subarray(TCP_PREFACE.length);
        }
        for (const f of reader.feed(chunk)) c.rx(f);
        if (reader.error !== null) {
          c.bad(reader.error);
          sock.destroy();
        }
      });
      sock.on('close', () => {
        socks.delete(sock);
        c.gone();
      });
      sock.on('error', () => {});
      g.accept(c);
    };
    const server = tls ? createTlsServer(tls, onSocket) : net.createServer(onSocket);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    g.port = (server.address() as net.AddressInfo).port;
    g.stop = () => {
      for (const s of socks) s.destroy();
      return new Promise((r) => server.close(() => r()));
    };
    return g;
  }

  /** `127.0.0.1:port`, as the gateway names endpoints. */
  get hostPort(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `${this.secure ? 'wss' : 'ws'}://${this.hostPort}/ws`;
  }

  /** The next connection not yet returned, waiting for it if needed. */
  async next(timeoutMs = 1000): Promise<FakeConn> {
    if (this.taken >= this.conns.length) {
      await new Promise<void>((resolve, reject) => {
        const w = () => {
          clearTimeout(t);
          resolve();
        };
        const t = setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          reject(new Error('fake gateway: no connection in time'));
        }, timeoutMs);
        this.waiters.push(w);
      });
    }
    return this.conns[this.taken++];
  }

  /** Connect `client`, take its HELLO, answer WELCOME; resolves once connect() has. */
  async handshake(client: { connect(): Promise<unknown> }, w?: moor.v1.IWelcome): Promise<FakeConn> {
    const connected = client.connect();
    const conn = await this.next();
    await conn.hello();
    conn.welcome(w);
    await connected;
    return conn;
  }

  /** Drop every connection and stop listening. */
  close(): Promise<void> {
    return this.stop();
  }

  private accept(c: FakeConn): void {
    this.conns.push(c);
    this.waiters.shift()?.();
  }
}

/** The next n emissions of `event` on `emitter`; rejects after timeoutMs. */
export function nextEvents<T>(emitter: { on(e: string, f: (v: T) => void): unknown; off(e: string, f: (v: T) => void): unknown }, event: string, n: number, timeoutMs = 2000): Promise<T[]> {
  const got: T[] = [];
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`only ${got.length} of ${n} '${event}' events in ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (v: T) => {
      got.push(v);
      if (got.length < n) return;
      clearTimeout(t);
      emitter.off(event, on);
      resolve(got);
    };
    emitter.on(event, on);
  });
}
