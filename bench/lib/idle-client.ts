/**
 * One client process of `bench idle`: opens `count` WebSocket connections from one
 * source address with raw `net` sockets (a hand-made upgrade and masked frames: no
 * ws library, one socket and a few bytes of state per connection), then holds them.
 *
 * - mode "moor": HELLO with a freshly minted HS256 token, wait for WELCOME, then a PING
 *   every `pingEveryMs` per socket (spread evenly: one interval timer for all sockets).
 * - mode "bare": one binary message each way (sent, echoed), then silence.
 * - `tls`: the same over node:tls (no certificate check; the TLS version capped at
 *   `tls`, so '1.2' or '1.3'); the upgrade goes out once the handshake is done.
 *
 * Forked by bench/idle.ts with its spec as argv[2] (JSON); reports over IPC. It exits
 * when told to stop, when its parent goes away, or after `maxLifeMs`.
 */
import net from 'node:net';
import tls from 'node:tls';
import { FrameType } from '../../src/protocol/constants';
import { encodeFrame } from '../../src/protocol/encoder';
import { moor } from '../../src/protocol/generated/moor';
import { maskedFrame, mintToken, OP_BINARY, parseFrames, upgradeRequest } from './ws-wire';

export interface ClientSpec {
  mode: 'moor' | 'bare';
  host: string;
  port: number;
  path: string;
  localAddress: string;
  /** Device ids are `${prefix}${first + i}` for i < count. */
  prefix: string;
  first: number;
  count: number;
  secret: string;
  /** Handshakes in flight at most. */
  inflight: number;
  /** Per socket, moor mode; 0 = no PINGs. */
  pingEveryMs: number;
  handshakeTimeoutMs: number;
  maxLifeMs: number;
  /** TLS with this version at most; absent: plain TCP. */
  tls?: '1.2' | '1.3';
}

export interface ClientStats {
  up: number;
  failed: number;
  /** Sessions that were up and then closed by the server or the network. */
  lost: number;
  pending: number;
  pongs: number;
  pings: number;
  reasons: Record<string, number>;
  rss: number;
  /** TLS only: the negotiated protocol of the first connection up (e.g. "TLSv1.3"). */
  protocol?: string;
}

export type FromClient = { t: 'ready'; rss: number } | { t: 'progress'; s: ClientStats } | { t: 'done'; s: ClientStats };
export type ToClient = { t: 'stop' };

/** Per-socket state, one byte each. */
const St = { IDLE: 0, CONNECTING: 1, UPGRADING: 2, WAITING: 3, OPEN: 4, DEAD: 5 } as const;

type Sock = net.Socket & { idx: number };

const spec = JSON.parse(process.argv[2] ?? '{}') as ClientSpec;
const N = spec.count;
const states = new Uint8Array(N);
const started = new Float64Array(N);
const socks: Array<Sock | null> = new Array(N).fill(null);
/** Unparsed bytes per socket: rare (a split frame or header), so a sparse map. */
const tails = new Map<number, Buffer>();
const stats: ClientStats = { up: 0, failed: 0, lost: 0, pending: 0, pongs: 0, pings: 0, reasons: {}, rss: 0 };
let next = 0;
let doneSent = false;

const UPGRADE = upgradeRequest(spec.host, spec.port, spec.path, spec.mode === 'moor' ? 'moor.v1' : '');
const PING = maskedFrame(OP_BINARY, encodeFrame(FrameType.PING, 0, 0));
const BARE_MSG = maskedFrame(OP_BINARY, Buffer.from('idle'));
const EXP_S = Math.floor(Date.now() / 1000) + 24 * 3600;
const CRLF2 = Buffer.from('\r\n\r\n');
/** A self-signed bench certificate: no check. No SNI (the devices dial an IP). */
const TLS_OPTIONS: tls.ConnectionOptions = { rejectUnauthorized: false, minVersion: 'TLSv1.2', maxVersion: spec.tls === '1.2' ? 'TLSv1.2' : 'TLSv1.3' };

function send(m: FromClient): void {
  process.send?.(m);
}

function reason(r: string): void {
  stats.reasons[r] = (stats.reasons[r] ?? 0) + 1;
}

function helloFrame(i: number): Buffer {
  const deviceId = `${spec.prefix}${spec.first + i}`;
  const payload = moor.v1.Hello.encode({ deviceId, token: mintToken(spec.secret, deviceId, EXP_S), client: 'bench-idle' }).finish();
  return maskedFrame(OP_BINARY, encodeFrame(FrameType.HELLO, 0, 0, payload));
}

function fail(i: number, why: string): void {
  const st = states[i];
  if (st === St.DEAD) return;
  states[i] = St.DEAD;
  if (st === St.OPEN) stats.lost++;
  else {
    stats.failed++;
    stats.pending--;
  }
  reason(why);
  tails.delete(i);
  socks[i]?.destroy();
  socks[i] = null;
  pump();
}

function opened(i: number): void {
  if (spec.tls && stats.protocol === undefined) stats.protocol = (socks[i] as unknown as tls.TLSSocket).getProtocol() ?? '?';
  states[i] = St.OPEN;
  stats.up++;
  stats.pending--;
  pump();
}

function onFrame(i: number, opcode: number, payload: Buffer): void {
  if (opcode !== OP_BINARY) return; // close frames: the 'close' event follows
  if (spec.mode === 'bare') {
    if (states[i] === St.WAITING) opened(i);
    return;
  }
  const type = payload[0];
  if (type === FrameType.PONG) stats.pongs++;
  else if (type === FrameType.WELCOME && states[i] === St.WAITING) opened(i);
  else if (type === FrameType.ERROR) {
    // Error.code is field 1 (varint): header is type, flags, stream 0, 1-byte length here.
    const code = payload[4] === 0x08 ? payload[5] : -1;
    fail(i, `ERROR ${code}`);
  }
}

function onData(this: Sock, d: Buffer): void {
  const i = this.idx;
  const tail = tails.get(i);
  let buf = tail ? Buffer.concat([tail, d]) : d;
  tails.delete(i);
  if (states[i] === St.UPGRADING) {
    const end = buf.indexOf(CRLF2);
    if (end < 0) {
      if (buf.length > 4096) fail(i, 'upgrade response too long');
      else tails.set(i, Buffer.from(buf));
      return;
    }
    const status = buf.toString('latin1', 0, Math.min(end, 16));
    if (!status.startsWith('HTTP/1.1 101')) {
      fail(i, `upgrade answered ${status.slice(9, 12)}`);
      return;
    }
    states[i] = St.WAITING;
    this.write(spec.mode === 'moor' ? helloFrame(i) : BARE_MSG);
    buf = buf.subarray(end + 4);
  }
  const rest = parseFrames(buf, (op, p) => onFrame(i, op, p));
  if (rest && states[i] !== St.DEAD) tails.set(i, Buffer.from(rest));
}

function onConnect(this: Sock): void {
  states[this.idx] = St.UPGRADING;
  this.write(UPGRADE);
}

function onError(this: Sock, err: NodeJS.ErrnoException): void {
  fail(this.idx, err.code ?? err.message);
}

function onClose(this: Sock): void {
  fail(this.idx, states[this.idx] === St.OPEN ? 'closed after open' : 'closed before open');
}

function connect(i: number): void {
  states[i] = St.CONNECTING;
  started[i] = performance.now();
  stats.pending++;
  const to = { host: spec.host, port: spec.port, localAddress: spec.localAddress };
  // node:tls passes localAddress on to net (its types leave it out).
  const s = (spec.tls ? tls.connect({ ...TLS_OPTIONS, ...to } as tls.ConnectionOptions) : net.connect(to)) as Sock;
  s.idx = i;
  socks[i] = s;
  s.setNoDelay(true);
  s.on(spec.tls ? 'secureConnect' : 'connect', onConnect);
  s.on('data', onData);
  s.on('error', onError);
  s.on('close', onClose);
}

function pump(): void {
  while (stats.pending < spec.inflight && next < N) connect(next++);
  if (!doneSent && next === N && stats.pending === 0) {
    doneSent = true;
    setImmediate(() => {
      (globalThis as { gc?: () => void }).gc?.();
      stats.rss = process.memoryUsage.rss();
      send({ t: 'done', s: stats });
    });
  }
}

function sweep(): void {
  const now = performance.now();
  for (let i = 0; i < next; i++) {
    const st = states[i];
    if (st > St.IDLE && st < St.OPEN && now - started[i] > spec.handshakeTimeoutMs) fail(i, 'handshake timeout');
  }
}

/** Round-robin PINGs: every tick covers its share of the sockets, so each pings once per period. */
let cursor = 0;
function pingTick(tickMs: number): void {
  const share = Math.ceil((N * tickMs) / spec.pingEveryMs);
  for (let k = 0; k < share; k++) {
    const i = cursor;
    cursor = (cursor + 1) % N;
    if (states[i] !== St.OPEN) continue;
    socks[i]?.write(PING);
    stats.pings++;
  }
}

function main(): void {
  process.on('message', (m: ToClient) => {
    if (m.t === 'stop') process.exit(0);
  });
  process.on('disconnect', () => process.exit(0));
  setTimeout(() => process.exit(3), spec.maxLifeMs).unref();
  setInterval(() => {
    sweep();
    stats.rss = process.memoryUsage.rss();
    send({ t: 'progress', s: stats });
  }, 1000);
  if (spec.mode === 'moor' && spec.pingEveryMs > 0) setInterval(() => pingTick(100), 100);
  (globalThis as { gc?: () => void }).gc?.();
  send({ t: 'ready', rss: process.memoryUsage.rss() });
  pump();
}

if (require.main === module) main();
