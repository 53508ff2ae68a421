/**
 * The lane jobs of live delivery: a routed push to a list of devices, and a topic or
 * broadcast fan-out. Both are sliced so a scheduler turn (lanes.ts) can stop between
 * two slices.
 *
 * WebSocket fan-out goes through uWS publish, one call per topic, which cannot be cut
 * short. So a WebSocket session subscribes to a shard of each topic, chosen by its
 * session number: 64 shards of the broadcast topic, 8 of every named topic (the same
 * number of subscriptions per session as one topic each; uWS keeps at most 64 or 8
 * topic objects where it kept one). A broadcast is then 64 publishes of 1/64 of the
 * worker's WebSocket sessions each, and a turn can end between any two.
 */

import { SendResult, type Session, SessionState } from '../gateway/session';
import { FrameType } from '../protocol/constants';
import type { LaneJob } from './lanes';

/** Broadcast topic of handlers.ts (ALL_TOPIC); repeated here so transports need not import handlers. */
const ALL = '*';
export const ALL_SHARDS = 64;
export const TOPIC_SHARDS = 8;

/**
 * The broadcast topic and its per-codec variants (`z<cx>:*`, src/compression/) end
 * with `*`. Subscribe and publish derive the count from the same key, so any rule is
 * consistent; this one only decides who gets 64 shards.
 */
export function shardCount(topic: string): number {
  return topic.endsWith(ALL) ? ALL_SHARDS : TOPIC_SHARDS;
}

/** The uWS topic a WebSocket session with number `sid` subscribes to for `topic`. */
export function shardTopic(topic: string, sid: number): string {
  return `${sid % shardCount(topic)}|${topic}`;
}

/** What a job needs from the gateway. */
export interface JobGateway {
  /** Publishes to one uWS topic; returns its subscriber count. */
  publish(topic: string, frame: Uint8Array): number;
  send(s: Session, type: number, frame: Uint8Array): number;
  tcpSubscribers(topic: string): ReadonlySet<Session> | undefined;
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
 * A fan-out of one PUSH frame to the worker's subscribers of `topic`: the WebSocket
 * shards one publish at a time, then the TCP subscribers a slice at a time. Resolves
 * `finished` with the number of sessions reached.
 */
export class FanoutJob implements LaneJob {
  private shard = 0;
  private readonly shards: number;
  private tcp: Iterator<Session> | null = null;
  private reached = 0;
  done = false;

  constructor(
    private readonly gw: JobGateway,
    private readonly topic: string,
    private readonly frame: Uint8Array,
    private readonly finished: (reached: number) => void,
  ) {
    this.shards = shardCount(topic);
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
    while (spent < budget) {
      const next = this.tcp.next();
      if (next.done) {
        this.done = true;
        this.finished(this.reached);
        break;
      }
      const s = next.value;
      spent++;
      if (s.state === SessionState.OPEN && this.gw.send(s, FrameType.PUSH, this.frame) !== SendResult.DROPPED) this.reached++;
    }
    return Math.max(1, spent);
  }
}
