/**
 * A worker's gateway: the sessions it holds, its shard of the presence directory,
 * and the mesh that joins it to the other workers. Frame handling lives in
 * handlers.ts, delivery in delivery.ts; this file owns the session lifecycle.
 */

import { GatewayCompression } from '../compression/gateway';
import { Flow } from '../flow/flow';
import { Directory } from '../mesh/directory';
import { Mesh, type MeshHandler, type MeshMessage, type MeshReply } from '../mesh/mesh';
import { Op, shardOf } from '../mesh/ops';
import type { HandshakeResult } from '../metrics/registry';
import { DEVICE_TO_GATEWAY, ErrorCode, type ErrorCodeValue, FLAG_CODEC_MASK, FRAME_TYPE_NAMES, FrameType } from '../protocol/constants';
import { headerSize } from '../protocol/encoder';
import { deliverLocal, fanoutLocal } from './delivery';
import type { GatewayDeps } from './deps';
import { errorFrame } from './frames';
import { handleHello, handleOpenFrame } from './handlers';
import { GatewayHeartbeat } from './heartbeat';
import { Hub } from './hub';
import { SendResult, Session, SessionState, type SessionStateValue, type Transport } from './session';
import { TimingWheel } from './wheel';

/** Frames a device may pipeline behind HELLO before its token is verified. */
const MAX_EARLY_FRAMES = 32;

export class Gateway implements MeshHandler {
  readonly hub = new Hub();
  readonly directory = new Directory();
  readonly mesh: Mesh;
  readonly wheel: TimingWheel<Session>;
  /** Smart heartbeat: advice per network class, learnt from how sessions end. */
  readonly heartbeat: GatewayHeartbeat;
  /** Payload compression: negotiation, per-frame codecs, dictionaries (src/compression/). */
  readonly compression: GatewayCompression;
  /** Flow control: accept and inbound limits, push pacing, priority lanes, slow consumers (src/flow/). */
  readonly flow: Flow;
  /** Set by the WebSocket transport: publishes a frame to a topic's WS subscribers. */
  publish: (topic: string, frame: Uint8Array) => number = () => 0;
  /** Set by startDraining: HELLOs from now on are refused with OVERLOADED. */
  draining = false;
  /** Connections not yet OPEN (preface, HELLO or its checks under way): a drain refuses them. */
  private readonly handshaking = new Set<Session>();
  private nextSid = 1;
  private readonly sidPrefix: string;
  /** Presence changes per shard, flushed once per tick so a reconnect storm batches. */
  private readonly presenceOut: Array<Array<[number, string, number, number]>>;
  private readonly presenceDone: Array<Array<() => void>>;
  private presenceFlush = false;
  /** Sessions whose wheel deadline passed, decided after this loop turn's socket reads (expire). */
  private late: Session[] = [];

  constructor(readonly deps: GatewayDeps) {
    const { workerIndex, workerCount, meshDir, log, config } = deps;
    this.sidPrefix = `${config.node.id}.${workerIndex}.${Date.now().toString(36)}.`;
    this.mesh = new Mesh(workerIndex, workerCount, meshDir, this, log.child({ component: 'mesh' }));
    this.wheel = new TimingWheel<Session>(1000, 1024, (s, now) => this.expire(s, now));
    this.heartbeat = new GatewayHeartbeat(this);
    this.compression = new GatewayCompression(this);
    this.flow = new Flow(this);
    this.presenceOut = Array.from({ length: workerCount }, () => []);
    this.presenceDone = Array.from({ length: workerCount }, () => []);
  }

  async start(): Promise<void> {
    await this.heartbeat.start();
    await this.compression.start();
    this.wheel.start();
    this.flow.start();
    await this.mesh.listen();
    await this.deps.fleet?.start(this);
  }

  stop(): void {
    this.heartbeat.stop();
    this.compression.stop();
    this.wheel.stop();
    this.flow.stop();
    this.mesh.close();
  }

  sessionId(s: Session): string {
    return this.sidPrefix + s.sid.toString(36);
  }

  /** A session object for a connection being accepted (no side effects until `opened`). */
  newSession(transport: Transport, state: SessionStateValue): Session {
    return new Session(transport, null, this.nextSid++, Date.now(), state);
  }

  /** The transport has the connection: start the handshake clock. */
  opened(s: Session, conn: unknown): void {
    const now = Date.now();
    s.conn = conn;
    s.lastSeen = now;
    this.wheel.schedule(s, now + this.deps.config.limits.handshake_timeout_ms);
    this.handshaking.add(s);
    this.deps.metrics.connOpened(s.transport.kind);
  }

  /** retry_after_ms for a session refused by a drain: 5-10 s, jittered, so the refused do not come back together. */
  drainRetryMs(): number {
    return 5_000 + Math.floor(Math.random() * 5_000);
  }

  /** Handshakes under way (connections not yet OPEN). */
  get handshakes(): number {
    return this.handshaking.size;
  }

  /**
   * The drain begins: no new session. A connection still waiting for its HELLO is told
   * ERROR OVERLOADED with a jittered retry now, rather than dropped when the worker exits;
   * one still sending its TCP preface is closed (no frame before the preface, protocol.md
   * §1). A HELLO whose checks are under way is refused when they finish (handlers.ts).
   */
  startDraining(): void {
    this.draining = true;
    for (const s of [...this.handshaking]) {
      if (s.state === SessionState.PREFACE) this.drop(s);
      else if (s.state === SessionState.HANDSHAKE) this.fail(s, ErrorCode.OVERLOADED, 'the gateway is draining', this.drainRetryMs());
    }
  }

  /** Send a frame, counting it. */
  send(s: Session, type: number, frame: Uint8Array): number {
    this.deps.metrics.frameOut(type, frame.length);
    const r = s.transport.send(s, frame);
    if (r !== SendResult.OK) this.flow.sendBlocked(s);
    return r;
  }

  /**
   * Answer with ERROR `code` and close (protocol.md: the server closes right after it).
   * Before WELCOME it also counts as the handshake's result, once (`outcome`).
   */
  fail(s: Session, code: ErrorCodeValue, message: string, retryAfterMs = 0, wsCloseCode = 0, outcome: HandshakeResult = handshakeOutcome(code)): void {
    if (s.state >= SessionState.CLOSING) return;
    this.deps.metrics.error(code);
    if (s.state < SessionState.OPEN) this.deps.metrics.handshake(outcome);
    this.deps.log.debug({ device: s.deviceId || undefined, code, message }, 'session error');
    const frame = errorFrame(code, message, retryAfterMs);
    this.deps.metrics.frameOut(FrameType.ERROR, frame.length);
    this.beginClose(s);
    s.transport.close(s, frame, code, wsCloseCode);
  }

  /** Close without an ERROR frame (idle, shutdown, bad preface). */
  drop(s: Session): void {
    if (s.state >= SessionState.CLOSING) return;
    this.beginClose(s);
    s.transport.close(s, null, 0, 0);
  }

  private beginClose(s: Session): void {
    s.state = SessionState.CLOSING;
    this.wheel.cancel(s);
  }

  /** The transport reports the connection gone (whatever the cause). */
  closed(s: Session): void {
    if (s.state === SessionState.CLOSED) return;
    s.state = SessionState.CLOSED;
    this.wheel.cancel(s);
    this.handshaking.delete(s);
    if (s.waiter) {
      const w = s.waiter;
      s.waiter = null;
      w();
    }
    if (s.deviceId && this.hub.remove(s)) this.presence(0, s);
    // Idle closes and replaced sessions alike: how a session ended is heartbeat evidence.
    if (s.hb !== 0) this.heartbeat.closed(s, Date.now());
    if (s.cx !== 0) this.compression.closed(s);
    this.deps.metrics.connClosed(s.transport.kind);
  }

  /** Every decoded frame from a device. The payload is only valid during this call. */
  frame(s: Session, type: number, flags: number, stream: number, payload: Buffer): void {
    if (s.state >= SessionState.CLOSING) return;
    const bytes = headerSize(stream, payload.length) + payload.length;
    this.deps.metrics.frameIn(type, bytes);
    const now = Date.now();
    if (!this.flow.inbound(s, bytes, now)) return;
    const quietMs = now - s.lastSeen;
    s.lastSeen = now;
    if (!DEVICE_TO_GATEWAY.has(type)) {
      return this.fail(s, ErrorCode.PROTOCOL_ERROR, `${FRAME_TYPE_NAMES[type]} frames are not sent by devices`);
    }
    // protocol.md §3: any frame before HELLO is PROTOCOL_ERROR, compressed or not (checked before the codec).
    if (s.state === SessionState.HANDSHAKE && type !== FrameType.HELLO) return this.fail(s, ErrorCode.PROTOCOL_ERROR, 'the first frame must be HELLO');
    if ((flags & FLAG_CODEC_MASK) !== 0) {
      // UNSUPPORTED without a negotiated codec (a compressed HELLO included); FRAME_TOO_LARGE past max_frame; PROTOCOL_ERROR if corrupt.
      const plain = this.compression.inflate(s, flags, payload);
      if (plain === null) return;
      payload = plain;
    }
    if ((type === FrameType.REQUEST) !== (stream !== 0)) {
      return this.fail(s, ErrorCode.PROTOCOL_ERROR, type === FrameType.REQUEST ? 'REQUEST needs a stream id other than 0' : `stream must be 0 on ${FRAME_TYPE_NAMES[type]}`);
    }
    switch (s.state) {
      case SessionState.HANDSHAKE:
        handleHello(this, s, payload);
        return;
      case SessionState.AUTHENTICATING:
        if (type === FrameType.HELLO) return this.fail(s, ErrorCode.PROTOCOL_ERROR, 'second HELLO');
        if (!s.early) s.early = [];
        if (s.early.length >= MAX_EARLY_FRAMES) return this.fail(s, ErrorCode.PROTOCOL_ERROR, 'too many frames before WELCOME');
        s.early.push({ type, stream, payload: Buffer.from(payload) });
        return;
      case SessionState.OPEN:
        if (type === FrameType.HELLO) return this.fail(s, ErrorCode.PROTOCOL_ERROR, 'second HELLO');
        handleOpenFrame(this, s, type, stream, payload, quietMs);
        return;
      default:
        return this.fail(s, ErrorCode.PROTOCOL_ERROR, 'frame before the preface');
    }
  }

  /**
   * HELLO verified: make `s` the device's session here and in the directory.
   * Resolves once the directory shard has the entry (or could not be reached).
   */
  register(s: Session): Promise<void> {
    this.handshaking.delete(s);
    const displaced = this.hub.add(s);
    if (displaced) this.fail(displaced, ErrorCode.REPLACED, 'the device connected again');
    return new Promise((resolve) => this.presence(1, s, resolve));
  }

  idleTimeoutMs(s: Session): number {
    return 2 * s.heartbeatMs + this.deps.config.heartbeat.grace_ms;
  }

  private expire(s: Session, now: number): void {
    if (s.state >= SessionState.CLOSING) return;
    if (s.state === SessionState.OPEN) {
      const deadline = s.lastSeen + this.idleTimeoutMs(s);
      if (deadline > now) return this.wheel.schedule(s, deadline);
    } else if (s.state === SessionState.AUTHENTICATING) {
      // HELLO came in time but we could not finish it (store or token checks backed up):
      // that is our overload, so the device is told to come back later, spread out.
      return this.fail(s, ErrorCode.OVERLOADED, 'the gateway is overloaded; retry later', 1_000 + Math.floor(Math.random() * 9_000));
    }
    // The wheel runs in the timers phase, before the poll phase reads sockets: after an
    // event-loop stall (a storm) the PING or HELLO that came in time may still be unread.
    // Decide in the check phase, after this turn's reads.
    if (this.late.push(s) === 1) setImmediate(() => this.expireLate());
  }

  private expireLate(): void {
    const late = this.late;
    this.late = [];
    const now = Date.now();
    const { handshake_timeout_ms } = this.deps.config.limits;
    for (const s of late) {
      switch (s.state) {
        case SessionState.OPEN: {
          const deadline = s.lastSeen + this.idleTimeoutMs(s);
          if (deadline > now) this.wheel.schedule(s, deadline);
          else {
            this.deps.log.debug({ device: s.deviceId, heartbeatMs: s.heartbeatMs }, 'idle timeout');
            this.drop(s);
          }
          break;
        }
        case SessionState.AUTHENTICATING:
          // Its HELLO was waiting unread: it came in time. Our own checks get a deadline of their own.
          this.wheel.schedule(s, now + handshake_timeout_ms);
          break;
        case SessionState.PREFACE:
        case SessionState.HANDSHAKE:
          if (s.state === SessionState.HANDSHAKE) this.fail(s, ErrorCode.PROTOCOL_ERROR, `no HELLO within ${handshake_timeout_ms} ms`, 0, 0, 'timeout');
          else {
            this.deps.metrics.handshake('timeout');
            this.drop(s);
          }
          break;
      }
    }
  }

  // ---- presence directory ----

  private presence(kind: 0 | 1, s: Session, done?: () => void): void {
    // Fleet mode: presence lives in Redis (fleet.ts), not in the node's directory shards.
    if (this.deps.fleet) return this.deps.fleet.track(kind, s, done);
    const shard = shardOf(s.deviceId, this.deps.workerCount);
    this.presenceOut[shard].push([kind, s.deviceId, this.deps.workerIndex, s.sid]);
    if (done) this.presenceDone[shard].push(done);
    if (!this.presenceFlush) {
      this.presenceFlush = true;
      setImmediate(() => this.flushPresence());
    }
  }

  private flushPresence(): void {
    this.presenceFlush = false;
    for (let shard = 0; shard < this.presenceOut.length; shard++) {
      const ops = this.presenceOut[shard];
      if (ops.length === 0) continue;
      const done = this.presenceDone[shard];
      this.presenceOut[shard] = [];
      this.presenceDone[shard] = [];
      // A shard that is down gets everything again from onPeerUp.
      const settle = () => {
        for (const d of done) d();
      };
      this.mesh.request(shard, Op.PRESENCE, { ops }).then(settle, settle);
    }
  }

  private applyPresence(ops: Array<[number, string, number, number]>): void {
    for (const [kind, d, w, sid] of ops) {
      if (kind === 0) {
        this.directory.remove(d, w, sid);
        continue;
      }
      const old = this.directory.add(d, w, sid);
      if (old) this.mesh.send(old.worker, Op.KICK, { d, sid: old.sid, code: ErrorCode.REPLACED, msg: 'the device connected again' });
    }
  }

  /** A worker died: forget its sessions in this shard. */
  peerDown(worker: number): void {
    const n = this.directory.dropWorker(worker);
    this.deps.log.info({ worker, dropped: n }, 'worker down: presence entries dropped');
  }

  onPeerUp(peer: number): void {
    if (this.deps.fleet) return;
    // The peer may have restarted with an empty shard: tell it every device it should know.
    const ops = this.sessionsOfShard(peer);
    if (ops.length) this.mesh.send(peer, Op.PRESENCE, { ops });
  }

  /** Presence registrations for every session held here whose directory shard is `shard`. */
  private sessionsOfShard(shard: number): Array<[number, string, number, number]> {
    const ops: Array<[number, string, number, number]> = [];
    for (const s of this.hub.byDevice.values()) {
      // Sessions still between HELLO and WELCOME count too: their registration may be the one that failed.
      if (s.state >= SessionState.AUTHENTICATING && s.state <= SessionState.OPEN && shardOf(s.deviceId, this.deps.workerCount) === shard) {
        ops.push([1, s.deviceId, this.deps.workerIndex, s.sid]);
      }
    }
    return ops;
  }

  /**
   * A (re)started worker pulls its shard from every peer before it announces itself,
   * so a push routed through it finds devices that were connected all along.
   */
  async loadShard(): Promise<void> {
    if (this.deps.fleet) return;
    const me = this.deps.workerIndex;
    await Promise.all(
      Array.from({ length: this.deps.workerCount }, (_, peer) => peer)
        .filter((peer) => peer !== me)
        .map((peer) =>
          this.mesh.request(peer, Op.SNAPSHOT, { shard: me }).then(
            (r) => this.applyPresence(r.hdr.ops),
            (err) => this.deps.log.warn({ err, peer }, 'could not load the directory shard from a peer'),
          ),
        ),
    );
  }

  onMessage(m: MeshMessage): void {
    switch (m.op) {
      case Op.PRESENCE:
        this.applyPresence(m.hdr.ops);
        return;
      case Op.KICK: {
        const s = this.hub.get(m.hdr.d);
        if (s && s.sid === m.hdr.sid) this.fail(s, m.hdr.code, m.hdr.msg);
        return;
      }
      case Op.DELIVER:
        deliverLocal(this, m.hdr.t, m.hdr.devs, m.raw);
        return;
      default:
        this.deps.log.warn({ op: m.op, from: m.from }, 'unknown mesh message');
    }
  }

  async onRequest(m: MeshMessage): Promise<MeshReply> {
    switch (m.op) {
      case Op.PRESENCE:
        this.applyPresence(m.hdr.ops);
        return { hdr: {} };
      case Op.ROUTE:
        return { hdr: { online: this.route(m.hdr.t, m.hdr.devs, m.raw) } };
      case Op.FANOUT:
        return { hdr: { online: await fanoutLocal(this, m.hdr.t, m.hdr.topic, m.raw) } };
      case Op.SNAPSHOT:
        return { hdr: { ops: this.sessionsOfShard(m.hdr.shard) } };
      case Op.DICTS:
        await this.compression.poll();
        return { hdr: {} };
      case Op.SAMPLES:
        await this.compression.flushSamples();
        return { hdr: {} };
      case Op.LOOKUP: {
        const loc = this.directory.get(m.hdr.d);
        return { hdr: loc ? { w: loc.worker, sid: loc.sid } : { w: -1, sid: 0 } };
      }
      case Op.SESSION: {
        const s = this.hub.get(m.hdr.d);
        return { hdr: { hb: s && s.sid === m.hdr.sid && s.open ? s.heartbeatMs : 0 } };
      }
      case Op.KICK_DEVICE: {
        const loc = this.directory.get(m.hdr.d);
        if (!loc) return { hdr: { kicked: false } };
        this.mesh.send(loc.worker, Op.KICK, { d: m.hdr.d, sid: loc.sid, code: m.hdr.code, msg: m.hdr.msg });
        return { hdr: { kicked: true } };
      }
      default:
        throw new Error(`unknown mesh request op ${m.op}`);
    }
  }

  /** As a directory shard: forward each device's push to the worker holding it. Returns the online indexes. */
  private route(t: unknown, devs: Array<[string, number]>, body: Buffer): number[] {
    const online: number[] = [];
    const byWorker = new Map<number, Array<[string, number]>>();
    for (let i = 0; i < devs.length; i++) {
      const loc = this.directory.get(devs[i][0]);
      if (!loc) continue;
      online.push(i);
      let list = byWorker.get(loc.worker);
      if (!list) byWorker.set(loc.worker, (list = []));
      list.push(devs[i]);
    }
    for (const [w, list] of byWorker) {
      if (w === this.deps.workerIndex) deliverLocal(this, t as never, list, body);
      else this.mesh.send(w, Op.DELIVER, { t, devs: list }, body);
    }
    return online;
  }
}

/** A handshake refused with ERROR `code`, as moor_handshakes_total counts it. */
function handshakeOutcome(code: ErrorCodeValue): HandshakeResult {
  if (code === ErrorCode.AUTH_FAILED) return 'auth_failed';
  if (code === ErrorCode.INTERNAL) return 'internal';
  if (code === ErrorCode.OVERLOADED) return 'overloaded';
  return 'protocol_error';
}
