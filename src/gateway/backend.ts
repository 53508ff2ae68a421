/**
 * The worker's side of the HTTP API (src/api/backend.ts): pushes are stored first,
 * then routed through the presence directory in O(1) mesh hops.
 */
import { createHash } from 'node:crypto';
import type { ApiBackend, DeviceInfo, PushCommand, PushOutcome } from '../api/backend';
import { ApiError } from '../api/errors';
import { trainForApi } from '../compression/api';
import { Op, type PushHeader, shardOf } from '../mesh/ops';
import { ErrorCode } from '../protocol/constants';
import { moor } from '../protocol/generated/moor';
import { template } from './delivery';
import type { Gateway } from './gateway';

/** How long an idempotency key's answer is remembered. */
const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
/** How long a push in progress holds its id (a worker that dies holding it frees it then). */
const IDEMPOTENCY_CLAIM_MS = 30_000;
/** How long a request with the id of a push in progress waits for its answer, and how often it looks. */
const IDEMPOTENCY_WAIT_MS = 10_000;
const IDEMPOTENCY_POLL_MS = 20;

export class StoreUnavailableError extends Error {
  readonly code = 'STORE_UNAVAILABLE' as const;
}

export interface BackendHooks {
  metrics(): Promise<{ contentType: string; body: string }>;
  ready(): Promise<{ ok: boolean; reasons: string[] }>;
  dict(id: number): Promise<Buffer | null>;
}

export class WorkerBackend implements ApiBackend {
  constructor(
    private readonly gw: Gateway,
    private readonly hooks: BackendHooks,
  ) {}

  gatePush(apiKey: string): ApiError | null {
    return this.gw.flow.gatePush(apiKey);
  }

  async push(cmd: PushCommand): Promise<PushOutcome> {
    const frameBytes = pushSize(cmd);
    if (frameBytes > this.gw.deps.config.limits.max_frame) {
      const seq = cmd.durable && cmd.target.kind === 'device' ? ' with its seq' : '';
      throw new ApiError('PAYLOAD_TOO_LARGE', `body: the PUSH payload would be up to ${frameBytes} bytes${seq}; devices accept at most limits.max_frame = ${this.gw.deps.config.limits.max_frame}`);
    }
    if (!cmd.idGiven) return this.pushOnce(cmd);
    // Scoped per API key so two backends cannot collide on each other's ids.
    const idemKey = `${createHash('sha256').update(cmd.apiKey).digest('base64url').slice(0, 16)}:${cmd.id}`;
    const { store } = this.gw.deps;
    // The claim makes one request the push's owner, whichever worker or node the others
    // reach; they wait for its answer. Without it, two requests with the same id sent at
    // once were both stored and delivered.
    const waitUntil = Date.now() + IDEMPOTENCY_WAIT_MS;
    for (;;) {
      const prior = await guard(store.claimIdempotent(idemKey, Date.now(), Date.now() + IDEMPOTENCY_CLAIM_MS));
      if (prior === null) break;
      if (prior !== '') return JSON.parse(prior) as PushOutcome;
      if (Date.now() >= waitUntil) {
        throw new ApiError('PUSH_IN_PROGRESS', `id: a push with id ${JSON.stringify(cmd.id)} is still being stored; retry for its answer`, { retryAfterS: 1 });
      }
      await new Promise((r) => setTimeout(r, IDEMPOTENCY_POLL_MS));
    }
    let outcome: PushOutcome;
    try {
      outcome = await this.pushOnce(cmd);
    } catch (err) {
      // Not pushed (refused, or the store failed): a retry with the id may try again.
      await store.putIdempotent(idemKey, '', Date.now() + 1).catch(() => {});
      throw err;
    }
    await guard(store.putIdempotent(idemKey, JSON.stringify(outcome), Date.now() + IDEMPOTENCY_TTL_MS));
    return outcome;
  }

  private async pushOnce(cmd: PushCommand): Promise<PushOutcome> {
    const { store } = this.gw.deps;
    const now = Date.now();
    const hdr: PushHeader = { id: cmd.id, topic: cmd.target.kind === 'topic' ? cmd.target.topic : '', priority: cmd.priority, exp: cmd.ttlMs > 0 ? now + cmd.ttlMs : 0, sent: now };
    // Flow control (src/flow/): over its unit's budget a push is stored, queued and paced; 429 only when the queue is full.
    const ticket = this.gw.flow.admitPush(cmd);
    const queued = ticket ? { queued: true } : {};
    let outcome: PushOutcome;
    if (cmd.target.kind === 'device') {
      const ids = cmd.target.deviceIds;
      let seqs: number[] | undefined;
      if (cmd.durable) {
        const t0 = performance.now();
        seqs = await guard(store.append(ids.map((deviceId) => ({ deviceId, push: { id: hdr.id, topic: hdr.topic, body: cmd.body, priority: hdr.priority, expiresAtMs: hdr.exp, sentAtMs: now } })))).catch(this.gw.flow.cancelling(ticket));
        this.gw.flow.stored(cmd.priority, performance.now() - t0);
      }
      this.gw.deps.metrics.pushesAccepted(ids.length);
      this.gw.compression.sample(seqs ? seqs[0] : 0, () => template(hdr, cmd.body));
      let online = 0;
      // A paced durable push travels as a notice without its body: the holder replays it from the inbox.
      if (ticket) this.gw.flow.queuePush(ticket, () => (seqs ? this.route({ ...hdr, inbox: 1 }, ids, seqs, Buffer.alloc(0)) : this.route(hdr, ids, seqs, cmd.body)));
      else online = await this.route(hdr, ids, seqs, cmd.body);
      outcome = { id: cmd.id, accepted: ids.length, online, ...(seqs ? { seqs } : {}), ...queued };
    } else {
      const topic = cmd.target.kind === 'topic' ? cmd.target.topic : null;
      this.gw.deps.metrics.pushesAccepted(1);
      this.gw.compression.sample(0, () => template(hdr, cmd.body));
      let online = 0;
      if (ticket) this.gw.flow.queuePush(ticket, () => this.fanout(hdr, topic, cmd.body));
      else online = await this.fanout(hdr, topic, cmd.body);
      outcome = { id: cmd.id, accepted: 1, online, ...queued };
    }
    return outcome;
  }

  /** Group devices by directory shard: one ROUTE request per shard. */
  private async route(hdr: PushHeader, ids: string[], seqs: number[] | undefined, body: Buffer): Promise<number> {
    const { workerCount, fleet } = this.gw.deps;
    // Fleet mode: one presence lookup and one publish per holding worker, on any node.
    if (fleet) return fleet.route(hdr, ids.map((d, i) => [d, seqs ? seqs[i] : 0]), body);
    const byShard = new Map<number, Array<[string, number]>>();
    ids.forEach((d, i) => {
      const shard = shardOf(d, workerCount);
      let list = byShard.get(shard);
      if (!list) byShard.set(shard, (list = []));
      list.push([d, seqs ? seqs[i] : 0]);
    });
    const answers = await Promise.all(
      [...byShard].map(([shard, devs]) =>
        this.gw.mesh.request(shard, Op.ROUTE, { t: hdr, devs }, body).then(
          (r) => (Array.isArray(r.hdr.online) ? r.hdr.online.length : 0),
          () => {
            // The shard is restarting: offer the push to every worker (each checks its own
            // sessions), so a device connected elsewhere still gets it live. Durable pushes
            // are in the inbox whatever happens here.
            for (let w = 0; w < workerCount; w++) this.gw.mesh.send(w, Op.DELIVER, { t: hdr, devs }, body);
            return 0;
          },
        ),
      ),
    );
    return answers.reduce((a, b) => a + b, 0);
  }

  private async fanout(hdr: PushHeader, topic: string | null, body: Buffer): Promise<number> {
    const { workerCount, fleet } = this.gw.deps;
    // Fleet mode: the other nodes' workers get it through the bus (not counted in `online`).
    await fleet?.fanout(hdr, topic, body);
    const answers = await Promise.all(
      Array.from({ length: workerCount }, (_, w) =>
        this.gw.mesh.request(w, Op.FANOUT, { t: hdr, topic }, body).then(
          (r) => (typeof r.hdr.online === 'number' ? r.hdr.online : 0),
          () => 0,
        ),
      ),
    );
    return answers.reduce((a, b) => a + b, 0);
  }

  async deviceInfo(deviceId: string): Promise<DeviceInfo | null> {
    const { store, workerCount, config, fleet } = this.gw.deps;
    const [rec, heads, loc] = await Promise.all([
      guard(store.getDevice(deviceId)),
      guard(store.heads(deviceId)),
      fleet
        ? guard(fleet.locate(deviceId)).then((l) => (l ? { w: l.worker, node: l.node, sid: l.sid } : { w: -1 }))
        : this.gw.mesh.request(shardOf(deviceId, workerCount), Op.LOOKUP, { d: deviceId }).then(
            (r) => r.hdr as { w: number; node?: string; sid?: number },
            () => ({ w: -1, node: undefined, sid: undefined }),
          ),
    ]);
    if (!rec) return null;
    const online = loc.w >= 0;
    // The record has the interval advised at HELLO; a live session may have been advised
    // another since (PONG + HeartbeatAdvice). Its worker knows, when it is on this node.
    const here = online && (loc.node === undefined || loc.node === config.node.id);
    const liveHb = here ? await this.gw.mesh.request(loc.w, Op.SESSION, { d: deviceId, sid: loc.sid }).then((r) => Number(r.hdr.hb) || 0, () => 0) : 0;
    return {
      online,
      node: online ? (loc.node ?? config.node.id) : rec.node || null,
      worker: online ? loc.w : null,
      connected_at: new Date(rec.connectedAtMs).toISOString(),
      network: { kind: networkName(rec.network.kind), carrier: rec.network.carrier },
      heartbeat_ms: liveHb || rec.heartbeatMs,
      head_seq: heads.headSeq,
      acked_seq: heads.ackedSeq,
    };
  }

  async kick(deviceId: string): Promise<boolean> {
    const { fleet } = this.gw.deps;
    if (fleet) return guard(fleet.kick(deviceId, ErrorCode.REPLACED, 'session closed by the operator'));
    const shard = shardOf(deviceId, this.gw.deps.workerCount);
    try {
      const r = await this.gw.mesh.request(shard, Op.KICK_DEVICE, { d: deviceId, code: ErrorCode.REPLACED, msg: 'session closed by the operator' });
      return r.hdr.kicked === true;
    } catch (err) {
      throw new ApiError('OVERLOADED', `the worker holding this device's directory shard is restarting: ${(err as Error).message}`, { retryAfterS: 1 });
    }
  }

  metrics(): Promise<{ contentType: string; body: string }> {
    return this.hooks.metrics();
  }

  ready(): Promise<{ ok: boolean; reasons: string[] }> {
    return this.hooks.ready();
  }

  dict(id: number): Promise<Buffer | null> {
    return this.hooks.dict(id);
  }

  trainDict(opts: { maxBytes?: number }): Promise<Record<string, unknown>> {
    return trainForApi(this.gw.compression, opts.maxBytes);
  }
}

/**
 * The PUSH payload's size: exact for a transient push (seq 0 is not encoded); a durable
 * one counts its seq at its largest (8 bytes of varint), since the store assigns it later.
 */
function pushSize(cmd: PushCommand): number {
  const topic = cmd.target.kind === 'topic' ? cmd.target.topic : '';
  const now = Date.now();
  const seq = cmd.durable && cmd.target.kind === 'device' ? Number.MAX_SAFE_INTEGER : 0;
  return moor.v1.Push.encode({ seq, id: cmd.id, topic, body: cmd.body, priority: cmd.priority, expiresAtMs: cmd.ttlMs > 0 ? now + cmd.ttlMs : 0, sentAtMs: now }).len;
}

function networkName(kind: number): string {
  return moor.v1.NetworkKind[kind] ?? 'NET_UNKNOWN';
}

/** Store failures surface as one typed error, which the API answers with 503. */
async function guard<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw new StoreUnavailableError(`store unavailable: ${(err as Error).message}`);
  }
}
