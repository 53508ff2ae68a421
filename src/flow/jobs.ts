/**
 * The lane jobs of live delivery: a routed push to a list of devices, and a topic or
 * broadcast fan-out. Both are sliced so a scheduler turn (lanes.ts) can stop between
 * two slices.
 *
 * A broadcast walks the worker's hub (every open session, both transports) a slice at
 * a time and sends to each: no session subscribes to anything for it. A uWS
 * subscription costs ~200 bytes of RSS per session (docs/memory.md), while a loop of
 * sends costs about what uWS's own publish does (one write syscall per socket either
 * way), and a turn can end after any session.
 *
 * Named-topic fan-out goes through uWS publish, one call per topic, which cannot be cut
 * short. So a WebSocket session subscribes to one of 8 shards of each named topic,
 * chosen by its session number (the same number of subscriptions per session as one
 * topic each), and a turn can end between any two shard publishes.
 */

import { SendResult, type Session, SessionState } from '../gateway/session';
import { FrameType } from '../protocol/constants';
import type { LaneJob } from './lanes';

/** Broadcast topic of handlers.ts (ALL_TOPIC); repeated here so transports need not import handlers. */
export const ALL = '*';
export const TOPIC_SHARDS = 8;

/** The uWS topic a WebSocket session with number `sid` subscribes to for a named topic. */
export function shardTopic(topic: string, sid: number): string {
  return `${sid % TOPIC_SHARDS}|${topic}`;
}

/** What a job needs from the gateway. */
export interface JobGateway {
  /** Publishes to one uWS topic; returns its subscriber count. */
  publish(topic: string, frame: Uint8Array): number;
  send(s: Session, type: number, frame: Uint8Array): number;
  tcpSubscribers(topic: string): ReadonlySet<Session> | undefined;
  /** Every session of the worker (its hub), for a broadcast. */
  sessions(): IterableIterator<Session>;
  /** The broadcast key (plain or a codec variant) whose frame `s` gets. */
  broadcastKey(s: Session): string;
}

/** A routed push: `deliver` gets the devices a slice at a time. */
export class DeviceJob implements LaneJob {
  private i = 0;
  done = false;

  constructor(
    private readonly devs: Array<[string, number]>,
    private readonly deliver: (devs: Array<[string, number]>) => void,
  ) {
    if (devs.length === 0) this.done = true;
  }

  run(budget: number): number {
    const n = Math.min(Math.max(1, budget), this.devs.length - this.i);
    this.deliver(this.i === 0 && n === this.devs.length ? this.devs : this.devs.slice(this.i, this.i + n));
    this.i += n;
    this.done = this.i >= this.devs.length;
    return n;
  }
}

/**
 * A fan-out of one PUSH frame to the worker's subscribers of a named topic: its
 * WebSocket shards one publish at a time, then its TCP subscribers a slice at a time.
 * Resolves `finished` with the number of sessions reached.
 */
export class FanoutJob implements LaneJob {
  private shard = 0;
  private readonly shards = TOPIC_SHARDS;
  private tcp: Iterator<Session> | null = null;
  private reached = 0;
  done = false;

  constructor(
    private readonly gw: JobGateway,
    private readonly topic: string,
    private readonly frame: Uint8Array,
    private readonly finished: (reached: number) => void,
  ) {
  }

  run(budget: number): number {
    let spent = 0;
    while (this.shard < this.shards && spent < budget) {
      const n = this.gw.publish(`${this.shard++}|${this.topic}`, this.frame);
      this.reached += n;
      spent += n;
    }
    if (this.shard < this.shards) return Math.max(1, spent);
    if (this.tcp === null) {
      const set = this.gw.tcpSubscribers(this.topic);
      this.tcp = set ? set.values() : [].values();
    }
    const frame = this.frame;
    const r = sendEach(this.gw, this.tcp, budget - spent, () => frame);
    this.reached += r.reached;
    if (r.exhausted) {
      this.done = true;
      this.finished(this.reached);
    }
    return Math.max(1, spent + r.spent);
  }
}

/**
 * A broadcast: one walk over the worker's hub, a slice at a time, sending each open
 * session the frame of its broadcast key (`frames`: the plain key `*` and every codec
 * variant's, src/compression/). A session whose variant has no frame (it appeared after
 * the frames were made) gets the plain one, which every device decodes. Maps iterate
 * live: a session that joins while the walk runs may get the broadcast too.
 */
export class BroadcastJob implements LaneJob {
  private readonly each: Iterator<Session>;
  private readonly plain: Uint8Array;
  private reached = 0;
  done = false;

  constructor(
    private readonly gw: JobGateway,
    private readonly frames: ReadonlyMap<string, Uint8Array>,
    private readonly finished: (reached: number) => void,
  ) {
    const plain = frames.get(ALL);
    if (plain === undefined) throw new Error('BroadcastJob: no frame for the plain broadcast key');
    this.plain = plain;
    this.each = gw.sessions();
  }

  run(budget: number): number {
    const { frames, plain, gw } = this;
    const r = sendEach(gw, this.each, budget, frames.size === 1 ? () => plain : (s) => frames.get(gw.broadcastKey(s)) ?? plain);
    this.reached += r.reached;
    if (r.exhausted) {
      this.done = true;
      this.finished(this.reached);
    }
    return Math.max(1, r.spent);
  }
}

/**
 * Sends a PUSH frame to the open sessions `it` yields, for at most `budget` sessions
 * visited (open or not). `exhausted`: `it` has no more.
 */
function sendEach(gw: JobGateway, it: Iterator<Session>, budget: number, frameOf: (s: Session) => Uint8Array): { spent: number; reached: number; exhausted: boolean } {
  let spent = 0;
  let reached = 0;
  while (spent < budget) {
    const next = it.next();
    if (next.done) return { spent, reached, exhausted: true };
    const s = next.value;
    spent++;
    if (s.state === SessionState.OPEN && gw.send(s, FrameType.PUSH, frameOf(s)) !== SendResult.DROPPED) reached++;
  }
  return { spent, reached, exhausted: false };
}
