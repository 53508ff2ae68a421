/** Mesh operation codes (src/mesh/mesh.ts carries them). One table, stable numbers. */
export const Op = {
  /** to a directory shard, as a request (answered {}) or one-way: {ops: [[kind 1=add|0=remove, deviceId, worker, sid]]}, in order. */
  PRESENCE: 1,
  /** one-way shard → holding worker: {d, sid, code, msg}: close that session with ERROR code. */
  KICK: 2,
  /** request to a shard: {t: PushHeader, devs: [[deviceId, seq]]}, raw = body → {online: number[]} (indexes in devs). */
  ROUTE: 3,
  /** one-way shard → holder: {t, devs}, raw = body: deliver live. */
  DELIVER: 4,
  /** request to every worker: {t, topic: string|null}, raw = body → {online: number}. */
  FANOUT: 5,
  /** request to a shard: {d} → {w, sid} (w = -1 when offline). */
  LOOKUP: 6,
  /** request to a shard: {d, code, msg} → {kicked: boolean}. */
  KICK_DEVICE: 7,
  /** request to a peer: {shard} → {ops} registering every session the peer holds whose shard it is. */
  SNAPSHOT: 8,
  /** request to a worker, or on the fleet bus to every worker: {} → {} once it has re-read the dictionary index (a dictionary was installed). */
  DICTS: 9,
  /** request to the worker holding a device: {d, sid} → {hb} (that session's current heartbeat interval; 0 when it is not there). */
  SESSION: 10,
  /** request to a worker: {} → {} once its pending training samples are in the store (a training is about to read them). */
  SAMPLES: 11,
} as const;

/** The push fields shared by every device of one push, as sent over the mesh (body travels raw). */
export interface PushHeader {
  id: string;
  topic: string;
  priority: number;
  exp: number;
  sent: number;
  /** 1: a paced durable push; the body stayed in the inbox and the holder replays it from there (src/flow/). */
  inbox?: 1;
}

/** FNV-1a over the UTF-16 code units: cheap, stable across processes. */
export function shardOf(deviceId: string, workers: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < deviceId.length; i++) {
    h ^= deviceId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % workers;
}
