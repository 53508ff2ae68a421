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

/** The broadcast topic and its per-codec variants (`z<cx>:*`, src/compression/) end with `*`. */
export function isBroadcast(topic: string): boolean {
  return topic.endsWith(ALL);
}

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
 * A fan-out of one PUSH frame to the worker's subscribers of `topic`. A broadcast key
 * sends to every session whose broadcast key it is, a slice at a time; a named topic
 * publishes its WebSocket shards one at a time, then sends to its TCP subscribers a
 * slice at a time. Resolves `finished` with the number of sessions reached.
 */
export class FanoutJob implements LaneJob {
  private shard = 0;
  private readonly shards: number;
  /** The sessions still to visit one by one: TCP subscribers, or the whole hub for a broadcast. */
  private each: Iterator<Session> | null = null;
  private reached = 0;
  done = false;

  constructor(
    private readonly gw: JobGateway,
    private readonly topic: string,
    private readonly frame: Uint8Array,
    private readonly finished: (reached: number) => void,
  ) {
    const all = isBroadcast(topic);
    this.shards = all ? 0 : TOPIC_SHARDS;
    if (all) this.each = gw.sessions();
  }

  run(budget: number): number {
    let spent = 0;
    while (this.shard < this.shards && spent < budget) {
      const n = this.gw.publish(`${this.shard++}|${this.topic}`, this.frame);
      this.reached += n;
      spent += n;
    }
    if (this.shard < this.shards) return Math.max(1, spent);
    if (this.each === null) {
      const set = this.gw.tcpSubscribers(this.topic);
      this.each = set ? set.values() : [].values();
    }
    const filter = this.shards === 0;
    while (spent < budget) {
      const next = this.each.next();
      if (next.done) {
        this.done = true;
        this.finished(this.reached);
        break;
      }
      const s = next.value;
      spent++;
      // Maps iterate live: a session that joined after the broadcast began may get it too.
      if (filter && this.gw.broadcastKey(s) !== this.topic) continue;
      if (s.state === SessionState.OPEN && this.gw.send(s, FrameType.PUSH, this.frame) !== SendResult.DROPPED) this.reached++;
    }
    return Math.max(1, spent);
  }
}
