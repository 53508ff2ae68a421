/**
 * The Redis bus (fleet mode, docs/fleet.md "Bus"): sharded pub/sub. Every worker process
 * SSUBSCRIBEs to its own channel `bus:{node/worker/epoch}` and to `bus:all`; sending to a
 * worker is one SPUBLISH on its channel, which answers how many subscribers got it, so a
 * dead worker (no subscriber) is known at once and its pushes stay in the inbox.
 *
 * Why pub/sub and not per-node streams: nothing here needs a backlog. Durable pushes are
 * in the inbox before they are routed and a device that missed a live one replays it;
 * transient pushes and kicks mean nothing once their receiver is gone. A stream per
 * worker would cost an XADD plus trimming per message and memory for every undelivered
 * one, and a reader per worker blocking on it. SPUBLISH/SSUBSCRIBE (Redis 7) route by the
 * channel's slot, so on a Cluster a message touches one shard only (classic PUBLISH is
 * copied to every node of the cluster).
 */
import type { WorkerAddress } from '../presence/presence';
import { FleetKeys } from '../presence/redis-keys';
import { RedisUnavailableError } from '../store/redis';
import { connectWithin, createClient, type RedisClient, RedisSetupError } from '../store/redis-client';
import type { RedisTarget } from '../store/redis-url';
import type { Bus } from './bus';

export class RedisBus implements Bus {
  private handler: (msg: Buffer) => void = () => {};
  private readonly keys: FleetKeys;
  private closed = false;
  private lastError = '';

  private constructor(
    /** Publishes; shared with presence (the caller closes it). */
    private readonly pub: RedisClient,
    /** Subscriber-mode connection(s): one per master that owns a channel of ours. */
    private readonly sub: RedisClient,
    prefix: string,
    readonly self: WorkerAddress,
  ) {
    this.keys = new FleetKeys(prefix);
    sub.on('smessageBuffer', (_channel: Buffer, msg: Buffer) => this.handler(msg));
    const remember = (err: Error) => {
      this.lastError = err.message;
    };
    sub.on('error', remember);
    sub.on('node error', remember);
  }

  /** Subscribes `self`'s channel and the broadcast channel; ioredis subscribes again after a reconnect. */
  static async open(target: RedisTarget, self: WorkerAddress, pub: RedisClient): Promise<RedisBus> {
    const sub = createClient(target, { name: 'moor-bus', subscriber: true });
    const bus = new RedisBus(pub, sub, target.prefix, self);
    try {
      await connectWithin(sub, target.timeoutMs);
      // Separate calls: the two channels hash to different slots.
      await sub.ssubscribe(bus.keys.channel(self));
      await sub.ssubscribe(bus.keys.all());
    } catch (err) {
      sub.disconnect();
      if (/unknown command/i.test((err as Error).message)) {
        throw new RedisSetupError('fleet mode needs Redis 7.0 or newer (sharded pub/sub: SSUBSCRIBE, SPUBLISH)');
      }
      throw bus.unavailable('subscribe', err);
    }
    return bus;
  }

  onMessage(handler: (msg: Buffer) => void): void {
    this.handler = handler;
  }

  async sendTo(to: WorkerAddress, msg: Uint8Array): Promise<boolean> {
    return (await this.publish('sendTo', this.keys.channel(to), msg)) > 0;
  }

  broadcast(msg: Uint8Array): Promise<number> {
    return this.publish('broadcast', this.keys.all(), msg);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sub.disconnect();
  }

  private async publish(op: string, channel: string, msg: Uint8Array): Promise<number> {
    if (this.closed) throw new Error('bus is closed');
    try {
      return Number(await this.pub.spublish(channel, Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength)));
    } catch (err) {
      throw this.unavailable(op, err);
    }
  }

  private unavailable(op: string, err: unknown): RedisUnavailableError {
    return RedisUnavailableError.of('bus', op, err, this.lastError);
  }
}
