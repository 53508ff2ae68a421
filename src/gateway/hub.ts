/**
 * The worker's local registry: device id → session, plus the topic index for TCP
 * sessions (WebSocket sessions use uWS's own subscriptions).
 */
import type { Session } from './session';

export class Hub {
  readonly byDevice = new Map<string, Session>();
  private readonly tcpTopics = new Map<string, Set<Session>>();
  /** Open sessions per transport kind, for metrics and STATUS. */
  readonly counts = [0, 0];

  get size(): number {
    return this.byDevice.size;
  }

  get(deviceId: string): Session | undefined {
    return this.byDevice.get(deviceId);
  }

  /** Registers `s`; returns the session it displaces on this worker, if any. */
  add(s: Session): Session | undefined {
    const old = this.byDevice.get(s.deviceId);
    this.byDevice.set(s.deviceId, s);
    this.counts[s.transport.kind]++;
    if (s.topics) for (const t of s.topics) this.topicSet(t).add(s);
    if (old && old !== s) this.detach(old);
    return old !== s ? old : undefined;
  }

  /** Removes `s` if it is still the registered session for its device. */
  remove(s: Session): boolean {
    if (this.byDevice.get(s.deviceId) !== s) return false;
    this.byDevice.delete(s.deviceId);
    this.detach(s);
    return true;
  }

  /** TCP sessions subscribed to `topic`. */
  tcpSubscribers(topic: string): ReadonlySet<Session> | undefined {
    return this.tcpTopics.get(topic);
  }

  private detach(s: Session): void {
    this.counts[s.transport.kind]--;
    if (!s.topics) return;
    for (const t of s.topics) {
      const set = this.tcpTopics.get(t);
      if (!set) continue;
      set.delete(s);
      if (set.size === 0) this.tcpTopics.delete(t);
    }
  }

  private topicSet(t: string): Set<Session> {
    let set = this.tcpTopics.get(t);
    if (!set) {
      set = new Set();
      this.tcpTopics.set(t, set);
    }
    return set;
  }
}
