/**
 * Fleet mode (`store.kind = "redis"`, docs/fleet.md): presence and the bus in Redis, so a
 * push arriving at any node reaches a device held by any node. Per worker:
 *
 * - Sessions register in Redis presence (src/presence/redis.ts), batched per event-loop
 *   turn like the embedded directory's. A registration returns the previous owner; if it
 *   is another worker (any node), it gets a KICK on the bus and closes with REPLACED.
 * - A push: one presence lookup per device, one SPUBLISH per holding worker
 *   (src/bus/redis.ts). SPUBLISH says whether anyone got it: a dead worker's devices
 *   count as offline and their durable pushes wait in the inbox.
 * - Liveness: every live_ttl_ms/3 one renewal per worker, not per device. If Redis lost
 *   this worker's entries (outage, wipe, janitor after a stall), its sessions are claimed
 *   again and replay what was stored meanwhile.
 * - Clean-up: at start, entries of this node's previous boots; every live_ttl_ms, one
 *   worker of the fleet (a lease) cleans workers whose liveness expired.
 *
 * The single-node path (embedded store) does not use this: the directory shards on the
 * worker mesh stay, with their one-hop ROUTE.
 */
import type { Logger } from 'pino';
import type { Bus } from '../bus/bus';
import { RedisBus } from '../bus/redis';
import type { Config } from '../config/types';
import { decodeMeshPayload, encodeMeshPayload } from '../mesh/mesh';
import { Op, type PushHeader } from '../mesh/ops';
import { type Owner, type PresenceEntry, sameWorker, type WorkerAddress, workerName } from '../presence/presence';
import { RedisPresence } from '../presence/redis';
import { ErrorCode } from '../protocol/constants';
import { RedisStore } from '../store/redis';
import { parseRedisUrl } from '../store/redis-url';
import type { Store } from '../store/store';
import { deliverLocal, fanoutLocal, replay } from './delivery';
import type { Gateway } from './gateway';
import { type Session, SessionState } from './session';

/** Sessions claimed again per turn after Redis lost them (keeps the event loop responsive). */
const CLAIM_CHUNK = 2_000;

/** `<boot>.<pid><rand>`: unique per worker process; `boot` is the node's (its primary's) start. */
export function workerEpoch(boot: string): string {
  const rand = Math.floor(Math.random() * 36 ** 2).toString(36);
  return `${boot}.${process.pid.toString(36)}${rand}`;
}

export class Fleet {
  private gw: Gateway | null = null;
  /** Presence changes of this turn: last one per device wins (kind 1 = add, 0 = remove; sid). */
  private out = new Map<string, [number, number]>();
  private outDone: Array<() => void> = [];
  private flushing = false;
  /** Removals Redis did not take; retried (the compare-and-delete is safe to repeat). */
  private failedRemoves: PresenceEntry[] = [];
  /** A registration failed or Redis lost our entries: claim every session again. */
  private claimWanted = false;
  private claiming = false;
  /** When this worker last renewed its liveness after being cut off (0: never cut off). */
  private upSince = Date.now();
  private timers: NodeJS.Timeout[] = [];
  private closed = false;

  private constructor(
    readonly presence: RedisPresence,
    readonly bus: Bus,
    readonly self: WorkerAddress,
    private readonly boot: string,
    private readonly log: Logger,
  ) {}

  /**
   * Presence lookups and publishes go over the store's own connection (`store`, when it is
   * the Redis engine): a push that was just stored is routed over the link that stored it.
   * The bus subscribes on a connection of its own. Rejects with STORE_UNAVAILABLE when
   * Redis is away.
   */
  static async open(config: Config, workerIndex: number, boot: string, store: Store, log: Logger): Promise<Fleet> {
    const target = parseRedisUrl(config.store.redis_url);
    const self: WorkerAddress = { node: config.node.id, worker: workerIndex, epoch: workerEpoch(boot) };
    const presence = store instanceof RedisStore ? new RedisPresence(store.connection, target.prefix, self, target.liveTtlMs, false) : await RedisPresence.open(target, self);
    try {
      const bus = await RedisBus.open(target, self, presence.client);
      return new Fleet(presence, bus, self, boot, log);
    } catch (err) {
      await presence.close();
      throw err;
    }
  }

  get name(): string {
    return workerName(this.self);
  }

  /** Starts receiving, announces this worker and cleans up after this node's previous boots. */
  async start(gw: Gateway): Promise<void> {
    this.gw = gw;
    this.bus.onMessage((m) => this.onBus(m));
    await this.presence.refresh();
    const ttl = this.presence.liveTtlMs;
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(Math.max(100, Math.floor(ttl / 3)), () => void this.tick());
    every(ttl + Math.floor(Math.random() * (ttl / 4)), () => void this.janitor());
    const mine = (w: WorkerAddress) => w.node === this.self.node && w.worker === this.self.worker && !w.epoch.startsWith(`${this.boot}.`);
    this.presence.cleanWorkers(mine).then(
      (r) => r.workers.length && this.log.info({ ...r }, "presence entries of this node's previous boot removed"),
      (err) => this.log.warn({ err }, "could not clean up after this node's previous boot"),
    );
    this.log.info({ fleet_worker: this.name, live_ttl_ms: ttl }, 'fleet mode: presence and bus in Redis');
  }

  // ---- presence -------------------------------------------------------------------

  /** gateway.ts presence(): batched per turn; `done` once Redis answered (or failed). */
  track(kind: 0 | 1, s: Session, done?: () => void): void {
    this.out.set(s.deviceId, [kind, s.sid]);
    if (done) this.outDone.push(done);
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushing = false;
    const out = this.out;
    const done = this.outDone;
    this.out = new Map();
    this.outDone = [];
    const adds: PresenceEntry[] = [];
    const removes: PresenceEntry[] = [];
    for (const [deviceId, [kind, sid]] of out) (kind === 1 ? adds : removes).push({ deviceId, owner: { ...this.self, sid } });
    const registered = adds.length ? this.presence.register(adds).then((prev) => this.kickReplaced(adds, prev)) : null;
    const removed = removes.length ? this.presence.unregister(removes) : null;
    removed?.catch(() => this.failedRemoves.push(...removes));
    Promise.all([registered, removed])
      .catch((err) => {
        this.claimWanted = true;
        this.log.warn({ err }, 'presence not updated in Redis; retrying when it answers');
      })
      .finally(() => {
        for (const d of done) d();
      });
  }

  /** Sessions elsewhere that a registration here replaced: they close with REPLACED. */
  private kickReplaced(entries: PresenceEntry[], prev: Array<Owner | null>): void {
    prev.forEach((o, i) => {
      // On this very worker the hub already replaced it.
      if (o && !sameWorker(o, this.self)) this.sendKick(entries[i].deviceId, o, ErrorCode.REPLACED, 'the device connected again');
    });
  }

  private sendKick(d: string, o: Owner, code: number, msg: string): Promise<boolean> {
    return this.bus.sendTo(o, encodeMeshPayload(Op.KICK, { d, sid: o.sid, code, msg })).catch((err) => {
      this.log.warn({ err, device: d, owner: workerName(o) }, 'could not send KICK on the bus');
      return false;
    });
  }

  /** Renews liveness; claims sessions again when Redis lost them or a registration failed. */
  private async tick(): Promise<void> {
    if (this.closed) return;
    try {
      const lost = await this.presence.refresh();
      if (this.upSince === 0) {
        this.upSince = Date.now();
        // Cut off from Redis: pushes may have been stored for sessions here that the bus
        // could not reach. Catch up on them now that it answers.
        void this.catchUp();
      }
      if (lost) {
        this.log.warn('Redis lost this worker’s presence entries; claiming its sessions again');
        this.claimWanted = true;
      }
    } catch (err) {
      if (this.upSince !== 0) this.log.warn({ err }, 'fleet liveness not renewed: Redis unavailable');
      this.upSince = 0;
      this.claimWanted = true;
      return;
    }
    if (this.failedRemoves.length) {
      const retry = this.failedRemoves;
      this.failedRemoves = [];
      await this.presence.unregister(retry).catch(() => this.failedRemoves.push(...retry));
    }
    if (this.claimWanted && !this.claiming) await this.claimAll();
    await this.replayMissed();
  }

  /** Replays every session here whose inbox holds more than it was sent (one HMGET each, paced). */
  private async catchUp(): Promise<void> {
    const gw = this.gw;
    if (!gw) return;
    const sessions = [...gw.hub.byDevice.values()];
    let n = 0;
    try {
      for (let i = 0; i < sessions.length && !this.closed; i += CLAIM_CHUNK) {
        const chunk = sessions.slice(i, i + CLAIM_CHUNK);
        const heads = await Promise.all(chunk.map((s) => gw.deps.store.heads(s.deviceId)));
        chunk.forEach((s, j) => {
          if (heads[j].headSeq <= s.sentSeq || s.state !== SessionState.OPEN || s.replaying > 0 || gw.hub.get(s.deviceId) !== s) return;
          replay(gw, s, s.sentSeq);
          n++;
        });
      }
    } catch (err) {
      this.log.warn({ err }, 'catching up after the outage failed; sessions get the rest on SYNC or reconnect');
    }
    if (n) this.log.info({ sessions: n }, 'replaying pushes stored while Redis was unreachable from here');
  }

  /** Sessions here whose durable pushes found this worker's channel unsubscribed: replay them. */
  private async replayMissed(): Promise<void> {
    const gw = this.gw;
    if (!gw) return;
    const ids = await this.presence.takeMissed(CLAIM_CHUNK).catch(() => []);
    let n = 0;
    for (const d of ids) {
      const s = gw.hub.get(d);
      if (s?.state !== SessionState.OPEN || s.replaying > 0) continue;
      replay(gw, s, s.sentSeq);
      n++;
    }
    if (n) this.log.info({ sessions: n }, 'replaying pushes the bus could not deliver live');
  }

  /** Claims every session of this worker (only where no newer one registered meanwhile). */
  private async claimAll(): Promise<void> {
    const gw = this.gw;
    if (!gw) return;
    this.claiming = true;
    this.claimWanted = false;
    let claimed = 0;
    let lost = 0;
    try {
      const sessions = [...gw.hub.byDevice.values()];
      for (let i = 0; i < sessions.length; i += CLAIM_CHUNK) {
        const chunk = sessions.slice(i, i + CLAIM_CHUNK);
        const answers = await this.presence.claim(chunk.map((s) => ({ deviceId: s.deviceId, owner: { ...this.self, sid: s.sid } })));
        answers.forEach((a, j) => {
          const s = chunk[j];
          if (a === true) {
            claimed++;
            // Pushes stored while it was missing found nobody: replay them now.
            if (s.state === SessionState.OPEN && gw.hub.get(s.deviceId) === s) replay(gw, s, s.sentSeq);
          } else if (a !== false) {
            lost++;
            if (gw.hub.get(s.deviceId) === s) gw.fail(s, ErrorCode.REPLACED, 'the device connected again');
          }
        });
        await new Promise((r) => setImmediate(r));
      }
      if (claimed || lost) this.log.info({ claimed, lost }, 'sessions claimed again in Redis presence');
    } catch (err) {
      this.claimWanted = true;
      this.log.warn({ err }, 'claiming sessions failed; retrying');
    } finally {
      this.claiming = false;
    }
  }

  /** The fleet-wide clean-up of dead workers (one lease holder per period does the work). */
  private async janitor(): Promise<void> {
    // Right after an outage every worker's liveness may have lapsed: let them renew first.
    if (this.closed || this.upSince === 0 || Date.now() - this.upSince < this.presence.liveTtlMs) return;
    try {
      const r = await this.presence.sweepDead();
      if (r.workers.length) this.log.info({ ...r }, 'presence entries of dead workers removed');
    } catch (err) {
      this.log.debug({ err }, 'janitor pass failed');
    }
  }

  // ---- pushes -----------------------------------------------------------------------

  /**
   * Live delivery of a push to devices on any node: one lookup, one SPUBLISH per holding
   * worker. Returns how many devices a live worker received it for. Lookup failure: a
   * durable push is stored already (0 online, the device replays it); a transient one
   * rejects with STORE_UNAVAILABLE (the API answers 503, never a 202 for nothing).
   */
  async route(hdr: PushHeader, devs: Array<[string, number]>, body: Uint8Array): Promise<number> {
    let owners: Array<Owner | null>;
    try {
      owners = await this.presence.lookup(devs.map((d) => d[0]));
    } catch (err) {
      if (devs.length > 0 && devs[0][1] > 0) return 0;
      throw err;
    }
    const groups = new Map<string, { to: Owner; devs: Array<[string, number]> }>();
    owners.forEach((o, i) => {
      if (!o) return;
      const key = workerName(o);
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { to: o, devs: [] }));
      g.devs.push(devs[i]);
    });
    const sent = await Promise.all(
      [...groups.values()].map(async (g) => {
        const got = await this.bus.sendTo(g.to, encodeMeshPayload(Op.DELIVER, { t: hdr, devs: g.devs }, body)).catch(() => false);
        if (got) return g.devs.length;
        // Nobody listened on the holder's channel: it died, or its subscription is being
        // restored after an outage. A live holder replays these devices on its next tick.
        if (g.devs[0][1] > 0) await this.presence.noteMissed(g.to, g.devs.map((d) => d[0])).catch(() => {});
        return 0;
      }),
    );
    return sent.reduce((a, b) => a + b, 0);
  }

  /** Topic/broadcast fan-out to the other nodes (this node's workers get it over the mesh). */
  async fanout(hdr: PushHeader, topic: string | null, body: Uint8Array): Promise<void> {
    await this.bus.broadcast(encodeMeshPayload(Op.FANOUT, { t: hdr, topic, origin: this.self.node }, body));
  }

  /** A dictionary was installed: every worker of every node re-reads the index now. */
  async dictsChanged(): Promise<void> {
    await this.bus.broadcast(encodeMeshPayload(Op.DICTS, { origin: this.self.node }));
  }

  /** Where the device's session is, if its worker is alive (GET /v1/devices). */
  async locate(deviceId: string): Promise<{ node: string; worker: number; sid: number } | null> {
    const [o] = await this.presence.lookup([deviceId]);
    if (!o || !(await this.presence.alive(o))) return null;
    return { node: o.node, worker: o.worker, sid: o.sid };
  }

  /** DELETE /v1/devices/{id}/session: true when a live worker got the KICK. */
  async kick(deviceId: string, code: number, msg: string): Promise<boolean> {
    const [o] = await this.presence.lookup([deviceId]);
    return o ? this.bus.sendTo(o, encodeMeshPayload(Op.KICK, { d: deviceId, sid: o.sid, code, msg })) : false;
  }

  private onBus(buf: Buffer): void {
    const gw = this.gw;
    if (!gw) return;
    let m: ReturnType<typeof decodeMeshPayload>;
    try {
      m = decodeMeshPayload(-1, buf);
    } catch (err) {
      this.log.warn({ err }, 'undecodable bus message');
      return;
    }
    switch (m.op) {
      case Op.DELIVER:
        deliverLocal(gw, m.hdr.t, m.hdr.devs, m.raw);
        return;
      case Op.KICK:
        gw.onMessage(m);
        return;
      case Op.FANOUT:
        if (m.hdr.origin !== this.self.node) void fanoutLocal(gw, m.hdr.t, m.hdr.topic, m.raw);
        return;
      case Op.DICTS:
        if (m.hdr.origin !== this.self.node) void gw.compression.poll();
        return;
      default:
        this.log.warn({ op: m.op }, 'unknown bus message');
    }
  }

  /** After the drain: flushes the last removals, then removes whatever still names this worker. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    if (this.flushing) await new Promise((r) => setImmediate(r));
    await this.presence.leave().catch((err) => this.log.warn({ err }, 'presence entries not removed at exit; a janitor will'));
    await this.bus.close();
    await this.presence.close();
  }
}
