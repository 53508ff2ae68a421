/**
 * Handling of device frames (protocol.md §3, §5): HELLO and the frames of an open
 * session. Validation errors answer ERROR and close; store or upstream trouble never
 * kills the worker.
 */
import { MAX_DEVICE_ID_BYTES } from '../api/validate-push';
import { ErrorCode, FrameType } from '../protocol/constants';
import { moor } from '../protocol/generated/moor';
import { AuthError } from './auth';
import { replay, syncPage } from './delivery';
import { responseFrame, welcomeFrame } from './frames';
import type { Gateway } from './gateway';
import { type Session, SessionState, TransportKind } from './session';

const v1 = moor.v1;

export function handleHello(gw: Gateway, s: Session, payload: Buffer): void {
  let hello: moor.v1.Hello;
  try {
    hello = v1.Hello.decode(payload);
  } catch {
    return gw.fail(s, ErrorCode.PROTOCOL_ERROR, 'malformed HELLO payload');
  }
  const deviceId = hello.deviceId;
  if (!deviceId) return gw.fail(s, ErrorCode.PROTOCOL_ERROR, 'HELLO.device_id is empty');
  if (Buffer.byteLength(deviceId) > MAX_DEVICE_ID_BYTES) {
    return gw.fail(s, ErrorCode.PROTOCOL_ERROR, `HELLO.device_id is longer than ${MAX_DEVICE_ID_BYTES} bytes`);
  }
  s.state = SessionState.AUTHENTICATING;
  s.deviceId = deviceId;
  // HELLO arrived: the deadline now bounds our own work (token, store, directory).
  gw.wheel.schedule(s, Date.now() + gw.deps.config.limits.handshake_timeout_ms);
  // Negotiated now so frames pipelined behind HELLO may already be compressed.
  gw.compression.hello(s, hello.codecs, hello.dictIds);
  authenticate(gw, s, hello).catch((err) => {
    gw.deps.log.error({ err, device: deviceId }, 'handshake failed');
    gw.fail(s, ErrorCode.INTERNAL, 'internal error during handshake');
  });
}

async function authenticate(gw: Gateway, s: Session, hello: moor.v1.Hello): Promise<void> {
  const { deps } = gw;
  let topics: string[];
  try {
    topics = (await deps.verifier.verify(hello.token, hello.deviceId)).topics;
  } catch (err) {
    if (err instanceof AuthError) return gw.fail(s, ErrorCode.AUTH_FAILED, err.message);
    throw err;
  }
  if (s.state !== SessionState.AUTHENTICATING) return;
  if (gw.draining) return gw.fail(s, ErrorCode.OVERLOADED, 'the gateway is draining', gw.drainRetryMs());
  const now = Date.now();
  // The network is needed only here (device record, heartbeat class): not kept on the session.
  const netKind = hello.network?.kind ?? 0;
  const carrier = hello.network?.carrier ?? '';
  // HELLO.previous belongs to the network the previous session ran on: read its record
  // before this session's replaces it. Only reconnecting devices pay for the read.
  const prev = hello.previous?.intervalMs ? await deps.store.getDevice(s.deviceId).catch(() => null) : null;
  if (s.state !== SessionState.AUTHENTICATING) return;
  gw.heartbeat.hello(s, hello, prev, now);
  let heads: { headSeq: number; ackedSeq: number };
  try {
    // The device record is saved before WELCOME so the API can describe the device at once.
    [heads] = await Promise.all([
      deps.store.heads(s.deviceId),
      deps.store.putDevice({
        deviceId: s.deviceId,
        firstSeenMs: now,
        connectedAtMs: now,
        network: { kind: netKind, carrier },
        heartbeatMs: s.heartbeatMs,
        node: deps.config.node.id,
        worker: deps.workerIndex,
      }),
    ]);
  } catch (err) {
    deps.log.error({ err, device: s.deviceId }, 'store unavailable during handshake');
    return gw.fail(s, ErrorCode.OVERLOADED, 'store unavailable', 1_000 + Math.floor(Math.random() * 4_000));
  }
  if (s.state !== SessionState.AUTHENTICATING) return;

  // A device cannot have processed seqs that do not exist yet.
  const lastSeq = Math.min(hello.lastSeq, heads.headSeq);
  s.sentSeq = lastSeq;
  s.ackedSeq = heads.ackedSeq;
  // last_seq is what the device has processed: an implicit cumulative ACK.
  if (lastSeq > s.ackedSeq) ack(gw, s, lastSeq, []);
  // Broadcast walks the hub (src/flow/jobs.ts): only named topics are indexed or subscribed.
  if (s.transport.kind === TransportKind.TCP && topics.length) s.topics = topics.map((k) => gw.compression.topic(topicKey(k), s));
  // WELCOME waits until the directory shard knows this session: from then on the API
  // sees the device online and routes its pushes here. Until WELCOME the session is not
  // OPEN, so nothing is sent before it; durable pushes meanwhile are left to the replay.
  s.replaying++;
  await gw.register(s);
  s.replaying--;
  if (s.state !== SessionState.AUTHENTICATING) return;
  s.state = SessionState.OPEN;
  gw.send(
    s,
    FrameType.WELCOME,
    welcomeFrame({
      sessionId: gw.sessionId(s),
      heartbeatMs: s.heartbeatMs,
      ...gw.compression.welcome(s, hello.dictIds),
      resumeEndpoint: deps.resumeEndpoints[s.transport.kind],
      maxFrame: deps.config.limits.max_frame,
      serverTimeMs: now,
      headSeq: heads.headSeq,
    }),
  );
  if (s.transport.kind === TransportKind.WS) {
    for (const t of topics) s.transport.subscribe(s, gw.compression.topic(topicKey(t), s));
  }
  deps.metrics.handshake('ok');
  gw.wheel.schedule(s, now + gw.idleTimeoutMs(s));
  // Always replay: a push stored after the heads were read is found this way.
  replay(gw, s, lastSeq);
  const early = s.early;
  s.early = null;
  if (early) for (const f of early) gw.frame(s, f.type, 0, f.stream, f.payload);
}

/** uWS topic names: device topics are prefixed so no token topic can collide with broadcast. */
export const ALL_TOPIC = '*';
export function topicKey(topic: string): string {
  return `t:${topic}`;
}

/** `quietMs`: how long the device was silent before this frame (heartbeat evidence). */
export function handleOpenFrame(gw: Gateway, s: Session, type: number, stream: number, payload: Buffer, quietMs = 0): void {
  switch (type) {
    case FrameType.PING:
      if (payload.length !== 0) return gw.fail(s, ErrorCode.PROTOCOL_ERROR, 'PING carries no payload');
      gw.send(s, FrameType.PONG, gw.heartbeat.pong(s, quietMs));
      return;
    case FrameType.ACK: {
      let a: moor.v1.Ack;
      try {
        a = v1.Ack.decode(payload);
      } catch {
        return gw.fail(s, ErrorCode.PROTOCOL_ERROR, 'malformed ACK payload');
      }
      ack(gw, s, a.upToSeq, a.seqs);
      return;
    }
    case FrameType.SYNC: {
      let r: moor.v1.SyncRequest;
      try {
        r = v1.SyncRequest.decode(payload);
      } catch {
        return gw.fail(s, ErrorCode.PROTOCOL_ERROR, 'malformed SYNC payload');
      }
      syncPage(gw, s, r.afterSeq, r.limit);
      return;
    }
    case FrameType.REQUEST: {
      let r: moor.v1.Request;
      try {
        r = v1.Request.decode(payload);
      } catch {
        return gw.fail(s, ErrorCode.PROTOCOL_ERROR, 'malformed REQUEST payload');
      }
      request(gw, s, stream, r);
      return;
    }
  }
}

function ack(gw: Gateway, s: Session, upTo: number, seqs: number[]): void {
  const advanced = upTo > s.ackedSeq ? upTo - s.ackedSeq : 0;
  if (advanced === 0 && seqs.length === 0) return;
  if (upTo > s.ackedSeq) s.ackedSeq = upTo;
  gw.deps.metrics.pushesAcked(advanced + seqs.filter((q) => q > upTo).length);
  gw.deps.store.ack(s.deviceId, upTo, seqs).catch((err) => gw.deps.log.warn({ err, device: s.deviceId }, 'ACK not stored; the device will get those pushes again'));
}

/**
 * Stream ids of each session's REQUESTs still waiting for their RESPONSE. Kept here, not
 * on Session: most sessions never send one, and a field would cost every session.
 */
const inFlight = new WeakMap<Session, Set<number>>();

function request(gw: Gateway, s: Session, stream: number, r: moor.v1.Request): void {
  // A second REQUEST on a stream id still in flight would get an answer the device cannot
  // tell from the first one's: a connection error, as HTTP/2 treats a reused stream id.
  let streams = inFlight.get(s);
  if (streams?.has(stream)) return gw.fail(s, ErrorCode.PROTOCOL_ERROR, `REQUEST stream ${stream} is still waiting for its RESPONSE`);
  if (!streams) inFlight.set(s, (streams = new Set()));
  streams.add(stream);
  const settled = streams;
  // The payload view dies with this callback: copy what outlives it.
  const body = Buffer.from(r.body);
  gw.deps.forwarder
    .forward({ method: r.method, body, meta: r.meta, deviceId: s.deviceId, sessionId: gw.sessionId(s) })
    .then(
      (res) => res,
      (err) => {
        gw.deps.log.error({ err, device: s.deviceId }, 'upstream forwarder failed');
        return { status: 502, body: Buffer.alloc(0), error: 'upstream failure' };
      },
    )
    .then((res) => {
      settled.delete(stream);
      if (settled.size === 0 && inFlight.get(s) === settled) inFlight.delete(s);
      if (s.state !== SessionState.OPEN) return;
      gw.send(s, FrameType.RESPONSE, responseFrame(stream, res.status, res.body, res.error));
    });
}
