/**
 * Getting pushes to devices: replay from the inbox after HELLO, SYNC pages, live
 * delivery of routed pushes, and topic/broadcast fan-out. Durable pushes are in the
 * store before any of this runs, so a send that fails loses nothing: the device gets
 * it on its next replay.
 */

import type { PushHeader } from '../mesh/ops';
import { FrameType } from '../protocol/constants';
import type { StoredPush } from '../store/store';
import { type PushTemplate, syncDoneFrame } from './frames';
import type { Gateway } from './gateway';
import { ALL_TOPIC, topicKey } from './handlers';
import { SendResult, type Session, SessionState } from './session';

export function template(h: PushHeader, body: Uint8Array): PushTemplate {
  return { id: h.id, topic: h.topic, body, priority: h.priority, expiresAtMs: h.exp, sentAtMs: h.sent };
}

function sendStored(gw: Gateway, s: Session, p: StoredPush): number {
  const r = gw.send(s, FrameType.PUSH, gw.compression.pushFrame(s, p.seq, p));
  if (r !== SendResult.DROPPED) gw.deps.metrics.pushDelivered(Date.now() - p.sentAtMs);
  return r;
}

/** Resolves when the session's transport has drained or the session is gone. */
function drained(s: Session): Promise<void> {
  return new Promise((resolve) => {
    s.waiter = resolve;
  });
}

/**
 * Send every stored push after `afterSeq`, page by page, then hand over to live
 * delivery. Live durable pushes that arrive meanwhile are left to this loop.
 */
export function replay(gw: Gateway, s: Session, afterSeq: number): void {
  s.replaying++;
  replayLoop(gw, s, afterSeq)
    .catch((err) => gw.deps.log.warn({ err, device: s.deviceId }, 'replay interrupted; the device can SYNC'))
    .finally(() => {
      s.replaying--;
    });
}

async function replayLoop(gw: Gateway, s: Session, cursor: number): Promise<void> {
  const { store, config } = gw.deps;
  const page = config.limits.sync_page;
  const highWater = config.limits.max_buffered / 2;
  let readEmpty = false;
  for (;;) {
    const r = await store.readAfter(s.deviceId, cursor, page, Date.now());
    if (s.state !== SessionState.OPEN) return;
    let dropped = false;
    s.transport.cork(s, () => {
      for (const p of r.pushes) {
        if (sendStored(gw, s, p) === SendResult.DROPPED) {
          dropped = true;
          break;
        }
        cursor = p.seq;
      }
    });
    if (cursor > s.sentSeq) s.sentSeq = cursor;
    if (dropped || s.transport.bufferedAmount(s) > highWater) {
      await drained(s);
      if (s.state !== SessionState.OPEN) return;
      continue;
    }
    if (r.more) continue;
    // A live push was left to this loop after the read: read again. Twice empty means it
    // expired or was deleted meanwhile; without that stop the loop would spin on it.
    if (s.liveMissed > cursor && (r.pushes.length > 0 || !readEmpty)) {
      readEmpty = r.pushes.length === 0;
      continue;
    }
    // Every stored seq up to the head this read saw was sent or is gone (acked, expired):
    // a live push numbered head + 1 is next in order.
    if (r.headSeq > s.sentSeq) s.sentSeq = r.headSeq;
    return;
  }
}

/** Answer a SYNC: one page of stored pushes after `afterSeq`, then SYNC_DONE. */
export function syncPage(gw: Gateway, s: Session, afterSeq: number, limit: number): void {
  const max = gw.deps.config.limits.sync_page;
  const n = limit > 0 && limit < max ? limit : max;
  gw.deps.store.readAfter(s.deviceId, afterSeq, n, Date.now()).then(
    (r) => {
      if (s.state !== SessionState.OPEN) return;
      s.transport.cork(s, () => {
        for (const p of r.pushes) sendStored(gw, s, p);
        gw.send(s, FrameType.SYNC_DONE, syncDoneFrame(r.headSeq, r.more));
      });
    },
    (err) => {
      gw.deps.log.warn({ err, device: s.deviceId }, 'SYNC failed: store unavailable');
      if (s.state === SessionState.OPEN) gw.send(s, FrameType.SYNC_DONE, syncDoneFrame(0, true));
    },
  );
}

/**
 * Live delivery to sessions held by this worker, in the lane of the push's priority
 * (src/flow/lanes.ts). `devs` are [deviceId, seq] (seq 0 = transient).
 */
export function deliverLocal(gw: Gateway, h: PushHeader, devs: Array<[string, number]>, body: Uint8Array): void {
  gw.flow.deliver(h, devs, (slice) => deliverNow(gw, h, slice, body));
}

function deliverNow(gw: Gateway, h: PushHeader, devs: Array<[string, number]>, body: Uint8Array): void {
  const t = template(h, body);
  const transient = gw.compression.transient(t);
  const latency = Date.now() - h.sent;
  for (const [deviceId, seq] of devs) {
    const s = gw.hub.get(deviceId);
    if (!s || s.state !== SessionState.OPEN) continue;
    if (seq > 0) {
      // Sent already, by a replay that read it from the inbox.
      if (seq <= s.sentSeq) continue;
      if (s.replaying > 0) {
        // The replay loop reads the inbox again up to this seq.
        if (seq > s.liveMissed) s.liveMissed = seq;
        continue;
      }
      // An earlier seq is not sent yet: still on its way (pushes entering through two
      // workers race to the holder), held back, or dropped. Sending this one first would
      // break the order last_seq relies on (it counts as a cumulative ACK), so the inbox,
      // which holds them all in order, sends both.
      if (seq > s.sentSeq + 1) {
        s.liveMissed = seq;
        replay(gw, s, s.sentSeq);
        continue;
      }
      // A paced push's notice, or a session too far behind to buffer more: it comes from the inbox.
      if (gw.flow.holdDurable(s, seq, h.inbox === 1)) continue;
    }
    let frame: Buffer;
    if (seq === 0) frame = transient(s);
    else frame = gw.compression.pushFrame(s, seq, t);
    const r = gw.send(s, FrameType.PUSH, frame);
    if (r === SendResult.DROPPED) continue;
    if (seq > s.sentSeq) s.sentSeq = seq;
    gw.deps.metrics.pushDelivered(latency);
  }
}

/**
 * Transient fan-out to this worker's subscribers of `topic` (null = everyone), sliced
 * in a lane (src/flow/lanes.ts). Lane turns run off the request handler: uWS publish
 * is 14x slower when called inside one (design.md).
 */
export function fanoutLocal(gw: Gateway, h: PushHeader, topic: string | null, body: Uint8Array): Promise<number> {
  const key = topic === null ? ALL_TOPIC : topicKey(topic);
  // One frame per codec variant on this worker (src/compression/gateway.ts), each to its own topic key.
  const frames = gw.compression.fanout(key, template(h, body));
  // A broadcast walks the hub once, picking each session's frame by its key.
  if (topic === null) return gw.flow.broadcast(h.priority, new Map(frames));
  return Promise.all(frames.map(([k, frame]) => gw.flow.fanout(h.priority, k, frame))).then((n) => n.reduce((a, b) => a + b, 0));
}
