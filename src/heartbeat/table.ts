/**
 * The class table as one document in the store (Store.getMeta/putMeta), so learning
 * survives restarts and is shared by every process using the same store: the workers
 * of a node with the embedded engine, a fleet with a shared engine.
 *
 * How tables merge. Each worker keeps its own table and, every heartbeat.sync_ms (and
 * about a second after each decision), reads the document, merges, adopts the result
 * and writes it back if it differs:
 *  - Decisions (P, step, ceiling, cool-down, margin) are last-writer-wins per class, by
 *    (version, writer): the version is the time of the decision. Adopting a newer one
 *    drops the local evidence gathered for the state it replaces.
 *  - Evidence merges: every writer keeps its own counters under its name, for the
 *    version they were counted at. A worker owns its entry and copies the others; the
 *    rules run on its own counts plus the others' entries of the current version, so a
 *    step needs S successes from the fleet, not from each worker.
 *  - Two workers writing at once lose one update for one round: the loser's next sync
 *    sees its state or entry missing and writes it again. Nothing is summed twice, as
 *    entries are replaced, never added up across rounds.
 *  - The document keeps the max_classes most recently used classes.
 */
import { UNKNOWN_SLOT } from './classes';
import { KIND_COUNT, knownKind } from './kinds';
import type { HeartbeatPolicy } from './policy';

export const TABLE_KEY = 'heartbeat/classes';

/** One class in the document. Short keys: the document is rewritten every sync. */
export interface ClassRecord {
  /** network kind, carrier */
  k: number;
  c: string;
  /** proven, step, ceiling, cool-down end, last failed interval, margined */
  p: number;
  st: number;
  ce: number;
  cu: number;
  lf: number;
  m: number;
  /** version (decision time) and its writer */
  v: number;
  w: string;
  /** last used */
  u: number;
  /** writer -> [version, probe successes, probe failures, proven successes, proven failures] */
  ev: Record<string, number[]>;
}

export interface TableDoc {
  v: 1;
  classes: ClassRecord[];
}

export function emptyTable(): TableDoc {
  return { v: 1, classes: [] };
}

const num = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;

function validRecord(r: unknown): r is ClassRecord {
  if (typeof r !== 'object' || r === null) return false;
  const c = r as Record<string, unknown>;
  return (
    num(c.k) && typeof c.c === 'string' && num(c.p) && num(c.st) && num(c.ce) && num(c.cu) && num(c.lf) &&
    num(c.m) && num(c.v) && typeof c.w === 'string' && num(c.u) && typeof c.ev === 'object' && c.ev !== null
  );
}

/** The stored document; anything unreadable counts as empty (and is rewritten). */
export function parseTable(raw: Buffer | null): TableDoc {
  if (!raw) return emptyTable();
  let doc: unknown;
  try {
    doc = JSON.parse(raw.toString('utf8'));
  } catch {
    return emptyTable();
  }
  const classes = (doc as { classes?: unknown })?.classes;
  if ((doc as { v?: unknown })?.v !== 1 || !Array.isArray(classes)) return emptyTable();
  return { v: 1, classes: classes.filter(validRecord) };
}

/**
 * Merges `doc` into the policy's table (see the file comment) and returns the document
 * to store. `initial`: the process just started, its own entry in `doc` is its evidence.
 */
export function mergeTable(policy: HeartbeatPolicy, doc: TableDoc, nowMs: number, initial: boolean): TableDoc {
  const t = policy.table;
  const me = policy.writer;
  const others = new Map<number, Record<string, number[]>>();
  const unplaced: ClassRecord[] = [];
  for (const rec of doc.classes) {
    const kind = knownKind(rec.k);
    if (kind === 0) continue;
    const slot = policy.classOf(kind, rec.c, nowMs);
    // No room for it here (the kind's class came back): keep it in the document as it is.
    if (slot === UNKNOWN_SLOT || t.carrier[slot] !== rec.c) {
      unplaced.push(rec);
      continue;
    }
    if (rec.v > t.version[slot] || (rec.v === t.version[slot] && rec.w > t.versionBy[slot])) {
      t.proven[slot] = rec.p;
      t.step[slot] = rec.st;
      t.ceiling[slot] = rec.ce;
      t.coolUntil[slot] = rec.cu;
      t.lastFail[slot] = rec.lf;
      t.margined[slot] = rec.m ? 1 : 0;
      t.version[slot] = rec.v;
      t.versionBy[slot] = rec.w;
      t.resetEvidence(slot);
      policy.recompute(slot, nowMs);
    }
    if (rec.u > t.lastUsed[slot]) t.lastUsed[slot] = rec.u;
    const kept: Record<string, number[]> = {};
    const r = 4 * slot;
    t.remote.fill(0, r, r + 4);
    for (const [w, e] of Object.entries(rec.ev)) {
      if (!Array.isArray(e) || e.length !== 5 || !e.every(num) || e[0] !== t.version[slot]) continue;
      if (w === me) {
        if (initial && t.probeOk[slot] + t.probeFail[slot] + t.provenOk[slot] + t.provenFail[slot] === 0) {
          t.probeOk[slot] = e[1];
          t.probeFail[slot] = e[2];
          t.provenOk[slot] = e[3];
          t.provenFail[slot] = e[4];
        }
        continue;
      }
      kept[w] = e;
      for (let i = 0; i < 4; i++) t.remote[r + i] += e[i + 1];
    }
    others.set(slot, kept);
  }
  for (const slot of others.keys()) policy.decide(slot, nowMs);
  return exportTable(policy, others, unplaced);
}

function exportTable(policy: HeartbeatPolicy, others: Map<number, Record<string, number[]>>, unplaced: ClassRecord[]): TableDoc {
  const t = policy.table;
  const classes: ClassRecord[] = [];
  for (let s = 1; s < t.size; s++) {
    if (t.inUse[s] === 0) continue;
    const ev: Record<string, number[]> = { ...others.get(s) };
    const mine = [t.version[s], t.probeOk[s], t.probeFail[s], t.provenOk[s], t.provenFail[s]];
    if (mine[1] + mine[2] + mine[3] + mine[4] > 0) ev[policy.writer] = mine;
    classes.push({
      k: t.kind[s],
      c: t.carrier[s],
      p: t.proven[s],
      st: t.step[s],
      ce: t.ceiling[s],
      cu: t.coolUntil[s],
      lf: t.lastFail[s],
      m: t.margined[s],
      v: t.version[s],
      w: t.versionBy[s],
      u: t.lastUsed[s],
      ev,
    });
  }
  // Kinds first, then carriers by recency, capped like the table.
  const kinds = classes.slice(0, KIND_COUNT - 1);
  const carriers = classes.slice(KIND_COUNT - 1).concat(unplaced).sort((a, b) => b.u - a.u);
  return { v: 1, classes: kinds.concat(carriers.slice(0, t.maxClasses)) };
}
