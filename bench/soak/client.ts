/**
 * One client process of `bench soak`: `count` devices from one source address, each a
 * raw `net` (or `tls`) socket with a few bytes of state in typed arrays — the lean
 * client of bench/lib/idle-client.ts grown what a soak needs: raw TCP as well as
 * WebSocket (bench/lib/ws-wire.ts frames), PUSH receipt and ACKs, heartbeats at the
 * advised interval, and reconnects with jittered backoff (and `last_seq`) when a
 * session is lost. The dial test and the storm pusher (pushers.ts) run in here too,
 * so a push and its receipt are timed on one clock.
 *
 * Forked by bench/soak/pool.ts with its spec (messages.ts) as argv[2]; reports over
 * IPC. It exits when told to stop, when its parent goes away, or after `maxLifeMs`.
 */
import net from 'node:net';
import tls from 'node:tls';
import { ERROR_CODE_NAMES, FrameType, TCP_PREFACE } from '../../src/protocol/constants';
import { parseHeader } from '../../src/protocol/decoder';
import { encodeFrame } from '../../src/protocol/encoder';
import { moor } from '../../src/protocol/generated/moor';
import { maskedFrame, mintToken, OP_BINARY, parseFrames, upgradeRequest } from '../lib/ws-wire';
import { ReceiveCoalescer } from './coalesce';
import type { ClientStats, FromClient, SoakClientSpec, ToClient } from './messages';
import { pushFields } from './push-fields';
import { Pushers } from './pushers';

/** Per-connection state, one byte each. */
const St = { IDLE: 0, CONNECTING: 1, UPGRADING: 2, WAITING: 3, OPEN: 4, RETRY: 5, DEAD: 6 } as const;
const MAX_ATTEMPTS = 40;
/**
 * Local ports are chosen here, not by the kernel: bind(port 0), which a connect from a
 * given source address does, searches the port range under a lock and slows to tens
 * per second once ~10,000 ports of an address are taken (measured: 15,000 connections
 * in 50 s against 5 s with explicit ports). Connection i binds PORT_A + i, or PORT_B + i
 * on its next attempt (so a reconnect never meets its own TIME_WAIT), or lets the
 * kernel choose when both are taken (a wildcard listener on that port elsewhere).
 */
const PORT_A = 10_000;
const PORT_B = 30_000;
const PORT_KERNEL = 2;
const MAX_FRAME = 16 * 1024 * 1024;
const NO_WORKER = 255;

type Sock = net.Socket & { idx: number };

const spec = JSON.parse(process.argv[2] ?? '{}') as SoakClientSpec;
const N = spec.count;
const st = new Uint8Array(N);
const isTcp = new Uint8Array(N);
const everUp = new Uint8Array(N);
const attempts = new Uint8Array(N);
/** 0: PORT_A + i, 1: PORT_B + i, 2: the kernel's choice. */
const portMode = new Uint8Array(N);
const worker = new Uint8Array(N).fill(NO_WORKER);
const startedAt = new Float64Array(N);
const nextPing = new Float64Array(N);
const hbMs = new Uint32Array(N);
/** Highest durable seq with every seq below it received: HELLO.last_seq and Ack.up_to_seq. */
const lastSeq = new Float64Array(N);
const socks: Array<Sock | null> = new Array(N).fill(null);
/** Unparsed bytes per socket: rare (a split frame or header), so a sparse map. */
const tails = new Map<number, Buffer>();
/** Durable seqs received above a gap, per connection (rare). */
const ooo = new Map<number, Set<number>>();
/** GOAWAY reconnect_after_ms, kept until the close it announces. */
const goaway = new Map<number, number>();
/** Reconnects due, bucketed by 20 ms slot. */
const due = new Map<number, number[]>();
const SLOT_MS = 20;

const stats: ClientStats = {
  open: 0,
  started: 0,
  failed: 0,
  lost: 0,
  reopened: 0,
  down: 0,
  pending: 0,
  retrying: 0,
  dead: 0,
  backAt: 0,
  pings: 0,
  pongs: 0,
  reasons: {},
  perWorker: [],
  perTransport: [0, 0],
  rss: 0,
  cpuMs: 0,
  fanRound: -1,
  fanGot: 0,
  naps: 0,
};
let target = 0;
let allowance = 0;
/** Ramp order: device indices in the order they connect (spec.mixedFirst). */
const order = new Uint32Array(N);
const fanout = new Map<number, number[]>();

const UPGRADE = upgradeRequest(spec.host, spec.wsPort, spec.wsPath, spec.mode === 'moor' ? 'moor.v1' : '');
const PING = encodeFrame(FrameType.PING, 0, 0);
const BARE_MSG = maskedFrame(OP_BINARY, Buffer.from('hello'));
/** What a bare raw TCP connection sends, to be echoed (bare-net.ts). */
const BARE_TCP_MSG = Buffer.from('hello');
const EXP_S = Math.floor(Date.now() / 1000) + 48 * 3600;
const CRLF2 = Buffer.from('\r\n\r\n');
const header = { type: 0, flags: 0, stream: 0, length: 0, size: 0, fault: 0 as never };

const wallNow = (): number => performance.timeOrigin + performance.now();
const deviceId = (i: number): string => `${spec.prefix}${spec.first + i}`;

function send(m: FromClient): void {
  process.send?.(m);
}

function reason(r: string): void {
  stats.reasons[r] = (stats.reasons[r] ?? 0) + 1;
}

/** One moor/1 frame to connection i, framed for its transport. */
function write(i: number, frame: Buffer): void {
  const s = socks[i];
  if (!s || s.destroyed) return;
  s.write(isTcp[i] ? frame : maskedFrame(OP_BINARY, frame));
}

function countOpen(i: number, d: 1 | -1): void {
  stats.open += d;
  stats.perTransport[isTcp[i]] += d;
  const w = worker[i];
  if (w !== NO_WORKER) stats.perWorker[w] = (stats.perWorker[w] ?? 0) + d;
}

function schedule(i: number, delayMs: number): void {
  st[i] = St.RETRY;
  stats.retrying++;
  const slot = Math.ceil((performance.now() + delayMs) / SLOT_MS);
  const list = due.get(slot);
  if (list) list.push(i);
  else due.set(slot, [i]);
}

function fail(i: number, why: string, retryAfterMs = 0): void {
  const s0 = st[i];
  if (s0 === St.DEAD || s0 === St.RETRY || s0 === St.IDLE) return;
  if (s0 === St.OPEN) {
    stats.lost++;
    stats.down++;
    countOpen(i, -1);
    reason(`lost: ${why}`);
  } else {
    stats.failed++;
    stats.pending--;
    reason(why);
  }
  worker[i] = NO_WORKER;
  tails.delete(i);
  const s = socks[i];
  socks[i] = null;
  s?.destroy();
  const ga = goaway.get(i);
  goaway.delete(i);
  if (portMode[i] !== PORT_KERNEL) portMode[i] ^= 1;
  if (attempts[i] >= MAX_ATTEMPTS) {
    st[i] = St.DEAD;
    stats.dead++;
    reason('gave up');
    return;
  }
  const a = attempts[i]++;
  const backoff = Math.random() * Math.min(spec.reconnectMaxMs, spec.reconnectJitterMs * 2 ** Math.min(a, 10));
  schedule(i, ga ?? (retryAfterMs > 0 ? retryAfterMs : backoff));
}

function opened(i: number): void {
  st[i] = St.OPEN;
  stats.pending--;
  attempts[i] = 0;
  countOpen(i, 1);
  if (everUp[i]) {
    stats.reopened++;
    if (--stats.down === 0) stats.backAt = wallNow();
  }
  everUp[i] = 1;
}

function helloFrame(i: number): Buffer {
  const id = deviceId(i);
  const hello = moor.v1.Hello.encode({ deviceId: id, token: mintToken(spec.secret, id, EXP_S), client: 'bench-soak', lastSeq: lastSeq[i] }).finish();
  return encodeFrame(FrameType.HELLO, 0, 0, hello);
}

/** Contiguous durable seqs and the ACK for one received seq. */
function ack(i: number, seq: number): boolean {
  let fresh = true;
  if (seq === lastSeq[i] + 1) {
    lastSeq[i] = seq;
    const set = ooo.get(i);
    if (set) {
      while (set.delete(lastSeq[i] + 1)) lastSeq[i]++;
      if (set.size === 0) ooo.delete(i);
    }
  } else if (seq > lastSeq[i]) {
    let set = ooo.get(i);
    if (!set) ooo.set(i, (set = new Set()));
    if (set.has(seq)) fresh = false;
    set.add(seq);
  } else fresh = false;
  const payload = moor.v1.Ack.encode({ upToSeq: lastSeq[i], seqs: seq > lastSeq[i] ? [seq] : [] }).finish();
  write(i, encodeFrame(FrameType.ACK, 0, 0, payload));
  return fresh;
}

function onPushBody(_i: number, seq: number, body: Uint8Array): void {
  const kind = body[0];
  const n = Number(Buffer.from(body.buffer, body.byteOffset + 1, body.length - 1).toString('latin1'));
  if (kind === 0x66 /* f */) {
    let list = fanout.get(n);
    if (!list) fanout.set(n, (list = []));
    list.push(wallNow());
    if (n > stats.fanRound) {
      stats.fanRound = n;
      stats.fanGot = 0;
    }
    if (n === stats.fanRound) stats.fanGot++;
    return;
  }
  if (kind === 0x64 /* d */) pushers.dialReceived(n);
  else if (kind === 0x73 /* s */) pushers.stormReceived(n, seq);
}

function onMoorFrame(i: number, type: number, payload: Buffer): void {
  switch (type) {
    case FrameType.WELCOME: {
      if (st[i] !== St.WAITING) return;
      const w = moor.v1.Welcome.decode(payload);
      // Session ids are `${node}.${worker}.${time}.${sid}` (src/gateway/gateway.ts): the
      // worker index lets the storm aim at the killed worker's devices. Not a contract.
      const parts = w.sessionId.split('.');
      const wi = Number(parts[parts.length - 3]);
      worker[i] = Number.isInteger(wi) && wi >= 0 && wi < NO_WORKER ? wi : NO_WORKER;
      hbMs[i] = w.heartbeatMs || 60_000;
      nextPing[i] = performance.now() + hbMs[i];
      opened(i);
      return;
    }
    case FrameType.PONG:
      stats.pongs++;
      if (payload.length > 0) hbMs[i] = moor.v1.HeartbeatAdvice.decode(payload).heartbeatMs || hbMs[i];
      return;
    case FrameType.PUSH: {
      const p = pushFields(payload);
      if (p === null) return fail(i, 'malformed PUSH');
      if (p.seq > 0 && !ack(i, p.seq) && p.body[0] === 0x73) pushers.stormDuplicate();
      else onPushBody(i, p.seq, p.body);
      return;
    }
    case FrameType.GOAWAY:
      goaway.set(i, moor.v1.GoAway.decode(payload).reconnectAfterMs);
      return;
    case FrameType.ERROR: {
      const e = moor.v1.Error.decode(payload);
      // The message without numbers, so reasons group: "ERROR PROTOCOL_ERROR: no HELLO within # ms".
      fail(i, `ERROR ${ERROR_CODE_NAMES[e.code] ?? e.code}: ${e.message.slice(0, 60).replace(/\d+/g, '#')}`, e.retryAfterMs);
      return;
    }
    default:
      return; // SYNC_DONE, RESPONSE: nothing to do here
  }
}

/** Frames back to back (TCP): returns the unparsed tail, or null. */
function tcpFrames(i: number, buf: Buffer): Buffer | null {
  let off = 0;
  while (off < buf.length) {
    const r = parseHeader(buf, off, buf.length, MAX_FRAME, header);
    if (r === 0) {
      fail(i, 'malformed frame');
      return null;
    }
    if (r < 0 || off + r + header.length > buf.length) break;
    onMoorFrame(i, header.type, buf.subarray(off + r, off + r + header.length));
    off += r + header.length;
    if (st[i] !== St.OPEN && st[i] !== St.WAITING) return null;
  }
  return off === buf.length ? null : buf.subarray(off);
}

function onWsMessage(i: number, opcode: number, payload: Buffer): void {
  if (opcode !== OP_BINARY) return; // a close frame: the 'close' event follows
  if (spec.mode === 'bare') {
    if (st[i] === St.WAITING) opened(i);
    else if (payload[0] === 0x66) onPushBody(i, 0, payload);
    return;
  }
  const r = parseHeader(payload, 0, payload.length, MAX_FRAME, header);
  if (r <= 0 || r + header.length !== payload.length) return fail(i, 'malformed frame');
  onMoorFrame(i, header.type, payload.subarray(r));
}

/** Naps while data trickles in, so a wake-up reads a batch (coalesce.ts says why). */
const coalescer = new ReceiveCoalescer(spec.napUs);

function onData(this: Sock, d: Buffer): void {
  coalescer.read();
  const i = this.idx;
  if (socks[i] !== this) return;
  const tail = tails.get(i);
  let buf = tail ? Buffer.concat([tail, d]) : d;
  tails.delete(i);
  if (isTcp[i]) {
    if (spec.mode === 'bare') {
      if (st[i] === St.WAITING) opened(i);
      return;
    }
    const rest = tcpFrames(i, buf);
    if (rest && socks[i] === this) tails.set(i, Buffer.from(rest));
    return;
  }
  if (st[i] === St.UPGRADING) {
    const end = buf.indexOf(CRLF2);
    if (end < 0) {
      if (buf.length > 4096) fail(i, 'upgrade response too long');
      else tails.set(i, Buffer.from(buf));
      return;
    }
    const status = buf.toString('latin1', 0, Math.min(end, 16));
    if (!status.startsWith('HTTP/1.1 101')) {
      const m = /Retry-After:\s*(\d+)/i.exec(buf.toString('latin1', 0, end));
      fail(i, `upgrade answered ${status.slice(9, 12)}`, m ? Number(m[1]) * 1000 : 0);
      return;
    }
    st[i] = St.WAITING;
    this.write(spec.mode === 'moor' ? maskedFrame(OP_BINARY, helloFrame(i)) : BARE_MSG);
    buf = buf.subarray(end + 4);
  }
  const rest = parseFrames(buf, (op, p) => {
    if (socks[i] === this) onWsMessage(i, op, p);
  });
  if (rest && socks[i] === this) tails.set(i, Buffer.from(rest));
}

const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

function onRead(this: Sock, n: number, buf: Buffer): boolean {
  onData.call(this, buf.subarray(0, n));
  return true;
}

function onConnect(this: Sock): void {
  const i = this.idx;
  if (socks[i] !== this) return;
  if (isTcp[i]) {
    st[i] = St.WAITING;
    this.write(spec.mode === 'moor' ? Buffer.concat([TCP_PREFACE, helloFrame(i)]) : BARE_TCP_MSG);
  } else {
    st[i] = St.UPGRADING;
    this.write(UPGRADE);
  }
}

function onError(this: Sock, err: NodeJS.ErrnoException): void {
  const i = this.idx;
  if (socks[i] !== this) return;
  if (err.code === 'EADDRINUSE' && st[i] === St.CONNECTING && portMode[i] !== PORT_KERNEL) {
    // Our choice of local port was taken: not the server's doing, so not a failure.
    reason('local port taken (another port tried)');
    socks[i] = null;
    this.destroy();
    stats.pending--;
    portMode[i] = portMode[i] === 0 ? 1 : PORT_KERNEL;
    connect(i);
    return;
  }
  fail(i, err.code ?? err.message);
}

function onClose(this: Sock): void {
  const i = this.idx;
  if (socks[i] === this) fail(i, st[i] === St.OPEN ? 'closed' : 'closed before open');
}

function connect(i: number): void {
  st[i] = St.CONNECTING;
  startedAt[i] = performance.now();
  stats.pending++;
  const port = isTcp[i] ? spec.tcpPort : spec.wsPort;
  const m = portMode[i];
  const opts = { host: spec.host, port, localAddress: spec.localAddress, localPort: m === PORT_KERNEL ? 0 : (m ? PORT_B : PORT_A) + i };
  // Plain sockets read into one buffer for the process (node:net's `onread`), without a
  // Buffer and a stream 'data' event per read: onData never keeps `d` (tails are copies).
  const s = (spec.tls ? tls.connect({ ...opts, rejectUnauthorized: false }) : net.connect({ ...opts, onread: { buffer: READ_BUFFER, callback: onRead } })) as Sock;
  s.idx = i;
  socks[i] = s;
  s.setNoDelay(true);
  s.on(spec.tls ? 'secureConnect' : 'connect', onConnect);
  if (spec.tls) s.on('data', onData);
  s.on('error', onError);
  s.on('close', onClose);
}

function rampTick(dtMs: number): void {
  allowance = Math.min(allowance + (spec.ratePerS * dtMs) / 1000, Math.max(1, spec.ratePerS / 20));
  while (allowance >= 1 && stats.pending < spec.inflight && stats.started < target) {
    allowance--;
    connect(order[stats.started++]);
  }
}

function retryTick(): void {
  const now = Math.floor(performance.now() / SLOT_MS);
  for (const [slot, list] of due) {
    if (slot > now) continue;
    due.delete(slot);
    for (const i of list) {
      if (st[i] !== St.RETRY) continue;
      stats.retrying--;
      connect(i);
    }
  }
}

/** Handshake timeouts and PINGs at each session's advised interval. */
function sweep(): void {
  const now = performance.now();
  for (let i = 0; i < N; i++) {
    const s = st[i];
    if (s === St.OPEN) {
      if (spec.mode === 'moor' && now >= nextPing[i]) {
        write(i, PING);
        stats.pings++;
        nextPing[i] = now + hbMs[i];
      }
    } else if (s >= St.CONNECTING && s <= St.WAITING && now - startedAt[i] > spec.handshakeTimeoutMs) fail(i, 'handshake timeout');
  }
}

function report(): void {
  const cpu = process.cpuUsage();
  stats.cpuMs = (cpu.user + cpu.system) / 1000;
  stats.rss = process.memoryUsage.rss();
  stats.naps = coalescer.naps;
  send({ t: 'progress', s: stats });
}

const pushers = new Pushers(spec, {
  isOpen: (i) => st[i] === St.OPEN,
  everUp: (i) => everUp[i] === 1,
  workerOf: (i) => worker[i],
  deviceId,
  sync: (i, afterSeq) => {
    if (st[i] === St.OPEN) write(i, encodeFrame(FrameType.SYNC, 0, 0, moor.v1.SyncRequest.encode({ afterSeq, limit: 1000 }).finish()));
  },
});

function onCommand(m: ToClient): void {
  switch (m.t) {
    case 'target':
      target = Math.min(N, m.n);
      return;
    case 'dial':
      pushers.dial(m.perS);
      return;
    case 'storm':
      pushers.storm(m.perS, m.victim);
      return;
    case 'fanout-times': {
      const times = fanout.get(m.round) ?? [];
      fanout.delete(m.round);
      send({ t: 'fanout-times', round: m.round, times });
      return;
    }
    case 'dial-report':
      send({ t: 'dial-report', r: pushers.dialResult() });
      return;
    case 'verify':
      pushers.verify(m.waitMs).then((r) => send({ t: 'verify', r }));
      return;
    case 'stop':
      process.exit(0);
  }
}

function main(): void {
  for (let i = 0; i < N; i++) isTcp[i] = spec.tcpPort > 0 && (spec.first + i) % 100 < spec.tcpPct ? 1 : 0;
  const mixed = Math.min(N, spec.mixedFirst ?? N);
  let k = 0;
  for (let i = 0; i < mixed; i++) order[k++] = i;
  for (const tcp of [0, 1]) for (let i = mixed; i < N; i++) if (isTcp[i] === tcp) order[k++] = i;
  process.on('message', onCommand);
  process.on('disconnect', () => process.exit(0));
  setTimeout(() => process.exit(3), spec.maxLifeMs).unref();
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    rampTick(now - last);
    last = now;
  }, 10);
  setInterval(retryTick, SLOT_MS);
  setInterval(sweep, 1000);
  setInterval(report, 500);
  (globalThis as { gc?: () => void }).gc?.();
  send({ t: 'ready', rss: process.memoryUsage.rss() });
}

if (require.main === module) main();
