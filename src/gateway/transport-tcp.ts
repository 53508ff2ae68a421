/**
 * The raw TCP transport (node:net, shared between workers by node:cluster): the
 * `MOOR/1\r\n` preface, then frames back to back, decoded per socket read.
 *
 * Memory per idle session (bench soak measures it next to a bare node:net server): a
 * socket sitting between frames holds no decoder. Every such socket's reads go through
 * one decoder per worker; a socket gets a decoder of its own only while a frame is
 * split across its reads (or after a decode fault, until it closes), and gives it back
 * once the frame is complete. A decoder (TypeScript + Rust halves) is ~400 B of JS heap
 * and ~250 B of malloc, the size of a third of a bare node:net socket.
 *
 * Plain sockets' reads land in one buffer per worker (node's `onread` mode, see
 * sharedReads), not in a fresh 64 KiB allocation per read shrunk to its size, which cost
 * a malloc, a realloc, an ArrayBuffer and a 'data' event per read. Measured with 500
 * sockets sending 4-byte frames (150,000 reads): 4.4-5.2 us of server CPU per read
 * against 6.2-7.5. RSS per session did not move measurably.
 */
import net from 'node:net';
import tls from 'node:tls';
import { createDecoder } from '../protocol/codec';
import { DECODE_FAULT_MESSAGES, type DecodeFaultValue, ErrorCode, errorCodeForFault, TCP_PREFACE } from '../protocol/constants';
import { type FrameDecoderLike, IN_SPILL, OUT_HEADER, OUT_STRIDE, outSizeFor } from '../protocol/decoder';
import { errorFrame } from './frames';
import type { Gateway } from './gateway';
import { SendResult, type SendResultValue, type Session, SessionState, type Transport, TransportKind } from './session';

/**
 * How long a closing session's socket may take to flush what is queued, its ERROR last,
 * before it is destroyed. A slow consumer's ERROR waits behind up to max_buffered unread
 * bytes: 2 s cut such devices mid-frame and without it when they resumed reading.
 */
const CLOSE_LINGER_MS = 10_000;
/** The same for a connection refused before it became a session (a storm: keep it short). */
const REFUSE_LINGER_MS = 2_000;
const HTTP_400 = 'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 38\r\n\r\nthis port speaks moor/1, not HTTP/1.x\n';

/** Per-socket transport state, hung on the socket object (no closures per connection). */
interface TcpConn extends net.Socket {
  moorSession: Session;
  moorGateway: Gateway;
  /** Preface bytes matched so far (8 = done). */
  moorPreface: number;
  /** This socket's own decoder while it holds a partial frame (or failed); null between frames. */
  moorDecoder: FrameDecoderLike | null;
}

const tcpTransport: Transport = {
  kind: TransportKind.TCP,
  send(s: Session, frame: Uint8Array): SendResultValue {
    const sock = s.conn as TcpConn | null;
    if (!sock || sock.destroyed) return SendResult.DROPPED;
    if (sock.writableLength > sock.moorGateway.deps.config.limits.max_buffered) return SendResult.DROPPED;
    return sock.write(frame) ? SendResult.OK : SendResult.BACKPRESSURE;
  },
  close(s: Session, frame: Uint8Array | null): void {
    const sock = s.conn as TcpConn | null;
    if (!sock || sock.destroyed) return;
    // end() flushes the ERROR and sends FIN; reading continues (discarded) so the
    // kernel does not answer unread bytes with a RST that would eat the ERROR.
    if (frame) sock.end(frame);
    else sock.end();
    setTimeout(() => sock.destroy(), CLOSE_LINGER_MS).unref();
  },
  subscribe(): void {
    // TCP sessions are found through the hub's topic index (Session.topics).
  },
  bufferedAmount(s: Session): number {
    const sock = s.conn as TcpConn | null;
    return sock ? sock.writableLength : 0;
  },
  cork(s: Session, fn: () => void): void {
    const sock = s.conn as TcpConn | null;
    if (!sock) return fn();
    sock.cork();
    try {
      fn();
    } finally {
      sock.uncork();
    }
  },
};

let out = new Uint32Array(outSizeFor(64 * 1024));

/** The decoder of sockets between frames (holds no state between reads), and its max_frame. */
let idleDecoder: FrameDecoderLike | null = null;
let idleMaxFrame = -1;

function sharedDecoder(maxFrame: number): FrameDecoderLike {
  if (idleDecoder === null || idleMaxFrame !== maxFrame) {
    idleDecoder = createDecoder(maxFrame);
    idleMaxFrame = maxFrame;
  }
  return idleDecoder;
}

/**
 * node:net's `onread` option (one caller-owned buffer for every read, and a callback in
 * place of 'data' events) exists for sockets a program creates, not for the ones a
 * net.Server accepts. Every net.Socket carries the option's state under two symbols,
 * found here by their descriptions. Where they are missing (another node), sockets fall
 * back to 'data' events (test/transport-tcp.test.ts checks the fast path on this node).
 */
let kBuffer: symbol | undefined;
let kBufferCb: symbol | undefined;
let looked = false;

function findSymbols(sock: net.Socket): void {
  const symbols = Object.getOwnPropertySymbols(sock);
  kBuffer = symbols.find((x) => x.description === 'kBuffer');
  kBufferCb = symbols.find((x) => x.description === 'kBufferCb');
  looked = true;
}

/** Every plain socket's reads, one at a time: frames are decoded before the next read. */
const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024);

type UserBufferHandle = { useUserBuffer?: (b: Uint8Array) => void };
type OnreadSocket = Record<symbol, unknown> & { _handle?: UserBufferHandle | null };

/** Puts an accepted plain socket in onread mode on READ_BUFFER; false when this node cannot. */
export function sharedReads(sock: net.Socket): boolean {
  if (!looked) findSymbols(sock);
  const o = sock as unknown as OnreadSocket;
  const handle = o._handle;
  if (kBuffer === undefined || kBufferCb === undefined || !handle || typeof handle.useUserBuffer !== 'function') return false;
  if (o[kBuffer] !== null || o[kBufferCb] !== null) return false;
  o[kBuffer] = READ_BUFFER;
  o[kBufferCb] = onRead;
  handle.useUserBuffer(READ_BUFFER);
  return true;
}

function onRead(this: TcpConn, nread: number, buf: Buffer): void {
  onData.call(this, buf.subarray(0, nread));
}

/** One read: `chunk` is only valid until this returns (it may be READ_BUFFER's). */
function onData(this: TcpConn, chunk: Buffer): void {
  const s = this.moorSession;
  const gw = this.moorGateway;
  if (s.state >= SessionState.CLOSING) return;
  let start = 0;
  if (this.moorPreface < TCP_PREFACE.length) {
    while (this.moorPreface < TCP_PREFACE.length && start < chunk.length) {
      if (chunk[start] !== TCP_PREFACE[this.moorPreface]) {
        // Not a moor/1 client: no frame back (protocol.md §1); HTTP gets a 400.
        if (this.moorPreface === 0 && chunk[0] >= 0x41 && chunk[0] <= 0x5a) this.write(HTTP_400);
        gw.drop(s);
        return;
      }
      this.moorPreface++;
      start++;
    }
    if (this.moorPreface < TCP_PREFACE.length) return;
    s.state = SessionState.HANDSHAKE;
    if (start === chunk.length) return;
    chunk = chunk.subarray(start);
  }
  const own = this.moorDecoder;
  const dec = own ?? sharedDecoder(gw.deps.config.limits.max_frame);
  if (out.length < outSizeFor(chunk.length)) out = new Uint32Array(outSizeFor(chunk.length));
  dec.feed(chunk, out);
  // `out` is shared by all sockets of this worker: read it before any handler can run.
  const n = out[0];
  const fault = out[1] as DecodeFaultValue;
  if (own === null) {
    // The shared decoder now holds this socket's partial frame (out[3]: bytes pending),
    // or it failed: it becomes this socket's own; the next idle read makes a new one.
    if (out[3] > 0 || fault !== 0) {
      this.moorDecoder = dec;
      idleDecoder = null;
    }
  } else if (out[3] === 0 && fault === 0) this.moorDecoder = null;
  for (let i = 0; i < n; i++) {
    if (s.state >= SessionState.CLOSING) return;
    const o = OUT_HEADER + i * OUT_STRIDE;
    const off = out[o + 3];
    const payload = off === IN_SPILL ? dec.takeSpill() : chunk.subarray(off, off + out[o + 4]);
    gw.frame(s, out[o], out[o + 1], out[o + 2], payload);
  }
  if (fault !== 0) gw.fail(s, errorCodeForFault(fault), DECODE_FAULT_MESSAGES[fault]);
}

function onDrain(this: TcpConn): void {
  const s = this.moorSession;
  if (s.waiter) {
    const w = s.waiter;
    s.waiter = null;
    w();
  }
}

function onClose(this: TcpConn): void {
  const s = this.moorSession;
  s.conn = null;
  this.moorDecoder = null;
  this.moorGateway.closed(s);
}

function onError(): void {
  // 'close' follows every 'error'; nothing to add.
}

/** Over the accept rate (src/flow/): ERROR OVERLOADED with a jittered retry, at once, and no session. */
function refuse(gw: Gateway, sock: net.Socket, retryMs: number): void {
  gw.deps.metrics.error(ErrorCode.OVERLOADED);
  sock.on('error', onError);
  // Read and discard the preface and HELLO, so unread bytes do not turn the FIN into a RST.
  sock.resume();
  sock.end(errorFrame(ErrorCode.OVERLOADED, 'too many new connections', retryMs));
  setTimeout(() => sock.destroy(), REFUSE_LINGER_MS).unref();
}

/** Takes a connected socket (plain, or a TLSSocket once its handshake is done: src/tls/tcp.ts) as a session. */
export function acceptTcp(gw: Gateway, socket: net.Socket): void {
  const retryMs = gw.flow.admitConnection();
  if (retryMs > 0) return refuse(gw, socket, retryMs);
  const sock = socket as TcpConn;
  const s = gw.newSession(tcpTransport, SessionState.PREFACE);
  sock.moorSession = s;
  sock.moorGateway = gw;
  sock.moorPreface = 0;
  sock.moorDecoder = null;
  gw.opened(s, sock);
  // TLS sockets decrypt into buffers of their own: 'data' events for them.
  if (sock instanceof tls.TLSSocket || !sharedReads(sock)) sock.on('data', onData);
  sock.on('drain', onDrain);
  sock.on('close', onClose);
  sock.on('error', onError);
}

export function createTcpServer(gw: Gateway): net.Server {
  return net.createServer({ noDelay: true }, (socket) => acceptTcp(gw, socket));
}
