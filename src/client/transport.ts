/**
 * Transport adapters: a WebSocket (one frame per binary message) or a raw TCP/TLS
 * byte stream (the MOOR/1 preface, then frames back to back), both reporting the
 * same three events. Used by MoorClient and RawConnection.
 */
import type { ClientRequestArgs } from 'node:http';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from 'node:tls';
import WebSocket from 'ws';
import { MAX_HEADER_BYTES, MAX_MAX_FRAME, TCP_PREFACE, WS_CLOSE_TEXT_MESSAGE, WS_SUBPROTOCOL } from '../protocol/constants';
import type { Endpoint } from './endpoint';
import { parseRetryAfter } from './endpoint';
import { MoorClientError } from './errors';
import { type Frame, FrameReader } from './frames';

export interface CloseInfo {
  /** WebSocket close code (1006 when the connection died without one). */
  code?: number;
  reason?: string;
  /** What went wrong locally or on the socket, if anything. */
  error?: Error;
  /** Ended without a close: WebSocket 1006, or a TCP/TLS socket error. */
  abnormal: boolean;
  /** HTTP status of a rejected WebSocket upgrade, and its Retry-After in ms. */
  status?: number;
  retryAfterMs?: number;
}

export interface TransportHandlers {
  open(): void;
  frame(frame: Frame): void;
  /** Called exactly once, also when the connection never opened. */
  close(info: CloseInfo): void;
  /** TLS: the server gave a session to resume with (TLS 1.3 sends tickets after the handshake, often two). */
  tlsSession?(session: Buffer): void;
}

export interface TransportOptions {
  /** WebSocket subprotocol to offer; null offers none. Default `moor.v1`. */
  protocol?: string | null;
  /** Raw TCP: send the `MOOR/1\r\n` preface on connect. Default true. */
  preface?: boolean;
  /** Extra headers for the WebSocket upgrade request. */
  headers?: Record<string, string>;
  /** TLS: a session saved from an earlier connection (tlsSession handler), offered for resumption. */
  tlsSession?: Buffer | null;
}

export interface Transport {
  /** Queue bytes: one binary message (WebSocket) or raw bytes (TCP). Dropped once closing. */
  send(bytes: Uint8Array): void;
  /** A text WebSocket message (only to probe a server's handling of it). */
  sendText(text: string): void;
  /** Close politely: a WebSocket close frame, or a TCP FIN. */
  end(code?: number, reason?: string): void;
  /** Drop the connection at once. */
  destroy(): void;
  /** TLS: whether the handshake resumed a session (null before it finished, or without TLS). */
  tlsResumed(): boolean | null;
}

export function openTransport(ep: Endpoint, h: TransportHandlers, opts: TransportOptions = {}): Transport {
  return ep.kind === 'ws' ? openWs(ep, h, opts) : openTcp(ep, h, opts);
}

function openWs(ep: Extract<Endpoint, { kind: 'ws' }>, h: TransportHandlers, opts: TransportOptions): Transport {
  const protocol = opts.protocol === undefined ? WS_SUBPROTOCOL : opts.protocol;
  let tlsSock: TLSSocket | null = null;
  const secure = ep.url.startsWith('wss:');
  const ws = new WebSocket(ep.url, protocol === null ? [] : [protocol], {
    ...ep.tls,
    // wss://: our own TLS connect (as ws's own, plus the saved session and its 'session' events).
    createConnection: secure
      ? (options: ClientRequestArgs): Socket => {
          tlsSock = secureConnect(options as ConnectionOptions, opts.tlsSession, h);
          return tlsSock;
        }
      : undefined,
    // Per-frame compression is the protocol's job; permessage-deflate costs memory per socket.
    perMessageDeflate: false,
    maxPayload: MAX_MAX_FRAME + MAX_HEADER_BYTES,
    headers: opts.headers,
  });
  const reader = new FrameReader();
  let error: Error | undefined;
  let status: number | undefined;
  let retryAfterMs: number | undefined;
  ws.on('unexpected-response', (_req, res) => {
    status = res.statusCode;
    const ra = res.headers['retry-after'];
    retryAfterMs = parseRetryAfter(Array.isArray(ra) ? ra[0] : ra, Date.now());
    error ??= new MoorClientError('UPGRADE_REJECTED', `upgrade rejected: HTTP ${status}`, status);
    ws.terminate();
  });
  ws.on('open', () => h.open());
  ws.on('message', (data, isBinary) => {
    if (ws.readyState !== WebSocket.OPEN) return; // closing after a violation: the rest is moot
    if (!isBinary) {
      error ??= new MoorClientError('BAD_FRAME', 'text WebSocket message');
      ws.close(WS_CLOSE_TEXT_MESSAGE);
      return;
    }
    let frame: Frame;
    try {
      frame = reader.message(Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data));
    } catch (e) {
      error ??= e as Error;
      ws.close(1002);
      return;
    }
    h.frame(frame);
  });
  ws.on('error', (e) => {
    error ??= e;
  });
  ws.on('close', (code, reason) => {
    h.close({ code, reason: reason.toString(), error, abnormal: code === 1006, status, retryAfterMs });
  });
  return {
    send(bytes) {
      if (ws.readyState === WebSocket.OPEN) ws.send(bytes, { binary: true });
    },
    sendText(text) {
      if (ws.readyState === WebSocket.OPEN) ws.send(text, { binary: false });
    },
    end(code = 1000, reason) {
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(code, reason);
    },
    destroy() {
      ws.terminate();
    },
    tlsResumed() {
      return tlsSock === null || ws.readyState === WebSocket.CONNECTING ? null : (tlsSock as TLSSocket).isSessionReused();
    },
  };
}

/** tls.connect as the ws library does it (no path; SNI unless the host is an IP), offering `session`. */
function secureConnect(options: ConnectionOptions & { path?: string }, session: Buffer | null | undefined, h: TransportHandlers): TLSSocket {
  options.path = undefined;
  if (!options.servername && options.servername !== '') options.servername = isIP(options.host ?? '') ? '' : options.host;
  if (session) options.session = session;
  const sock = tlsConnect(options);
  if (h.tlsSession) sock.on('session', (s: Buffer) => h.tlsSession?.(s));
  return sock;
}

function openTcp(ep: Extract<Endpoint, { kind: 'tcp' }>, h: TransportHandlers, opts: TransportOptions): Transport {
  const secure = ep.tls !== undefined && ep.tls !== false;
  const sock: Socket = secure
    ? secureConnect({ host: ep.host, port: ep.port, ...(typeof ep.tls === 'object' ? ep.tls : {}) }, opts.tlsSession, h)
    : netConnect({ host: ep.host, port: ep.port });
  let opened = false;
  sock.setNoDelay(true);
  const reader = new FrameReader();
  let error: Error | undefined;
  sock.once(secure ? 'secureConnect' : 'connect', () => {
    opened = true;
    if (opts.preface !== false) sock.write(TCP_PREFACE);
    h.open();
  });
  sock.on('data', (chunk: Buffer) => {
    // A handler may close the connection mid-chunk: later frames are then moot.
    for (const f of reader.feed(chunk)) if (!sock.destroyed) h.frame(f);
    if (reader.error !== null && !sock.destroyed) {
      error ??= reader.error;
      sock.destroy();
    }
  });
  sock.on('error', (e) => {
    error ??= e;
  });
  sock.on('close', (hadError) => h.close({ error, abnormal: hadError }));
  return {
    send(bytes) {
      if (!sock.destroyed && sock.writable) sock.write(bytes);
    },
    sendText() {
      throw new Error('sendText: raw TCP has no text messages');
    },
    end() {
      sock.end();
    },
    destroy() {
      sock.destroy();
    },
    tlsResumed() {
      return secure && opened ? (sock as TLSSocket).isSessionReused() : null;
    },
  };
}
