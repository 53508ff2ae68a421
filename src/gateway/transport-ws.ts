/**
 * The WebSocket transport on uWebSockets.js: exactly one moor/1 frame per binary
 * message (protocol.md §1). A connection costs uWS's socket plus one small Session.
 *
 * uWS.js copies the own properties of the user data given to upgrade() onto its
 * WebSocket object (getUserData() returns the WebSocket itself). Copied one keyed store
 * at a time, more than 15 properties turn that object into a dictionary: with the
 * Session's ~20 fields that was ~830 bytes per connection (bench idle, docs/memory.md).
 * So the user data is `{ s }`: one fast property pointing at the Session.
 */
import type { TemplatedApp, us_listen_socket, WebSocket } from '@trufflesuite/uws-js-unofficial';
import { shardTopic } from '../flow/jobs';
import {
  DECODE_FAULT_MESSAGES,
  type DecodeFaultValue,
  ErrorCode,
  type ErrorCodeValue,
  errorCodeForFault,
  MAX_HEADER_BYTES,
  WS_CLOSE_FOR_ERROR,
  WS_CLOSE_TEXT_MESSAGE,
  WS_SUBPROTOCOL,
} from '../protocol/constants';
import { parseHeader } from '../protocol/decoder';
import type { Gateway } from './gateway';
import { SendResult, type SendResultValue, type Session, SessionState, type Transport, TransportKind } from './session';

/** Slack above max_frame so a slightly oversized frame is answered FRAME_TOO_LARGE, not cut by uWS. */
const OVERSIZE_SLACK = 64 * 1024;

/** The user data handed to upgrade(); its one property ends up on the WebSocket. */
interface WsData {
  s: Session;
}
type Ws = WebSocket<WsData>;

const wsTransport: Transport = {
  kind: TransportKind.WS,
  send(s: Session, frame: Uint8Array): SendResultValue {
    const ws = s.conn as Ws | null;
    if (!ws) return SendResult.DROPPED;
    return ws.send(frame, true, false) as SendResultValue;
  },
  close(s: Session, frame: Uint8Array | null, errorCode: number, wsCloseCode: number): void {
    const ws = s.conn as Ws | null;
    if (!ws) return;
    if (frame) ws.send(frame, true, false);
    ws.end(wsCloseCode || WS_CLOSE_FOR_ERROR[errorCode as ErrorCodeValue] || 1000);
  },
  subscribe(s: Session, topic: string): void {
    // One shard of the topic, so a fan-out can be published a shard at a time (src/flow/jobs.ts).
    (s.conn as Ws | null)?.subscribe(shardTopic(topic, s.sid));
  },
  bufferedAmount(s: Session): number {
    const ws = s.conn as Ws | null;
    return ws ? ws.getBufferedAmount() : 0;
  },
  cork(s: Session, fn: () => void): void {
    const ws = s.conn as Ws | null;
    if (ws) ws.cork(fn);
    else fn();
  },
};

/** Reused for every message: parseHeader fills it. */
const header = { type: 0, flags: 0, stream: 0, length: 0, size: 0, fault: 0 as DecodeFaultValue };

function onMessage(gw: Gateway, s: Session, message: ArrayBuffer, isBinary: boolean, maxFrame: number): void {
  if (s.state >= SessionState.CLOSING) return;
  if (!isBinary) return gw.fail(s, ErrorCode.PROTOCOL_ERROR, 'text messages are not part of moor/1', 0, WS_CLOSE_TEXT_MESSAGE);
  const buf = Buffer.from(message);
  const r = parseHeader(buf, 0, buf.length, maxFrame, header);
  if (r === 0) {
    const f = header.fault as DecodeFaultValue;
    return gw.fail(s, errorCodeForFault(f), DECODE_FAULT_MESSAGES[f]);
  }
  if (r < 0 || r + header.length > buf.length) return gw.fail(s, ErrorCode.PROTOCOL_ERROR, 'message holds a truncated frame');
  if (r + header.length < buf.length) return gw.fail(s, ErrorCode.PROTOCOL_ERROR, 'a WebSocket message carries exactly one frame');
  gw.frame(s, header.type, header.flags, header.stream, buf.subarray(r));
}

/** True when the Sec-WebSocket-Protocol header is absent or offers moor.v1. */
function offersSubprotocol(header: string): boolean {
  if (!header) return true;
  return header.split(',').some((p) => p.trim() === WS_SUBPROTOCOL);
}

export interface WsListener {
  app: TemplatedApp;
  close(): void;
}

export function attachWebSocket(gw: Gateway, app: TemplatedApp, path: string): void {
  const maxFrame = gw.deps.config.limits.max_frame;
  app.ws<WsData>(path, {
    maxPayloadLength: maxFrame + MAX_HEADER_BYTES + OVERSIZE_SLACK,
    // Liveness is ours (timing wheel, 2 x heartbeat + grace); uWS's own timer would cut long heartbeats.
    idleTimeout: 0,
    sendPingsAutomatically: false,
    maxBackpressure: gw.deps.config.limits.max_buffered,
    closeOnBackpressureLimit: 0,
    upgrade: (res, req, context) => {
      const proto = req.getHeader('sec-websocket-protocol');
      if (!offersSubprotocol(proto)) {
        res.writeStatus('400 Bad Request').writeHeader('Content-Type', 'text/plain').end(`unsupported subprotocol: use ${WS_SUBPROTOCOL}\n`);
        return;
      }
      if (gw.draining) {
        const retry = 5 + Math.floor(Math.random() * 25);
        res.writeStatus('503 Service Unavailable').writeHeader('Retry-After', String(retry)).end('draining\n');
        return;
      }
      const retryMs = gw.flow.admitConnection();
      if (retryMs > 0) {
        res.writeStatus('503 Service Unavailable').writeHeader('Retry-After', String(Math.ceil(retryMs / 1000))).end('overloaded: too many new connections\n');
        return;
      }
      const s = gw.newSession(wsTransport, SessionState.HANDSHAKE);
      res.upgrade<WsData>({ s }, req.getHeader('sec-websocket-key'), proto ? WS_SUBPROTOCOL : '', req.getHeader('sec-websocket-extensions'), context);
    },
    open: (ws: Ws) => gw.opened(ws.getUserData().s, ws),
    message: (ws: Ws, message, isBinary) => onMessage(gw, ws.getUserData().s, message, isBinary, maxFrame),
    drain: (ws: Ws) => {
      const s = ws.getUserData().s;
      if (s.waiter && ws.getBufferedAmount() < gw.deps.config.limits.max_buffered / 4) {
        const w = s.waiter;
        s.waiter = null;
        w();
      }
    },
    close: (ws: Ws) => {
      const s = ws.getUserData().s;
      s.conn = null;
      gw.closed(s);
    },
  });
  gw.publish = (topic, frame) => {
    const n = app.numSubscribers(topic);
    if (n > 0) app.publish(topic, frame, true, false);
    return n;
  };
}

export function listen(app: TemplatedApp, host: string, port: number): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (sock) => {
      if (sock) resolve(sock);
      else reject(new Error(`cannot listen on ${host}:${port}`));
    });
  });
}
