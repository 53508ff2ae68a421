/**
 * The network classes of one heartbeat policy: typed arrays indexed by a slot number
 * (no object per class), keyed by (network kind, carrier). Slot 0 is the unknown
 * network, slots 1..6 the kinds themselves (no carrier given), the rest carriers, at
 * most `maxClasses` of them, recycled least recently used.
 */
import { KIND_COUNT, knownKind, NetKind } from './kinds';

export const UNKNOWN_SLOT = 0;
export const FIRST_CARRIER_SLOT = KIND_COUNT;
/** Longer carrier labels are noise (or abuse): such devices use their kind's class. */
export const MAX_CARRIER_LENGTH = 64;
/** Recent evidence keys per class, to count one event seen twice (server and device) once. */
const RING = 16;

export class ClassTable {
  readonly size: number;
  readonly kind: Uint8Array;
  readonly carrier: string[];

  // The decided state: persisted, merged between workers by (version, versionBy).
  /** Highest interval shown to survive; what sessions get (less the margin once settled). */
  readonly proven: Float64Array;
  /** Next probe step; doubles after each step-up, back to step_ms after a failure. */
  readonly step: Float64Array;
  /** Lowest interval known to fail while its cool-down lasts; 0 = none. */
  readonly ceiling: Float64Array;
  readonly coolUntil: Float64Array;
  /** The last failed interval, kept after the cool-down: re-probes at or above it go slowly. */
  readonly lastFail: Float64Array;
  /** 1 once a failure was found just above `proven`: advice is proven - margin. */
  readonly margined: Uint8Array;
  readonly version: Float64Array;
  readonly versionBy: string[];

  // Derived from the state by the policy.
  readonly advice: Float64Array;
  /** Interval probers get; 0 = not probing. */
  readonly probe: Float64Array;

  // Evidence since the last decision: this process's, and the other writers' sums (store).
  readonly probeOk: Float64Array;
  readonly probeFail: Float64Array;
  readonly provenOk: Float64Array;
  readonly provenFail: Float64Array;
  /** Per slot: [probeOk, probeFail, provenOk, provenFail] of the other writers. */
  readonly remote: Float64Array;
  /** Lowest interval that failed in the current probe round; 0 = none. */
  readonly failAt: Float64Array;

  readonly windowStart: Float64Array;
  readonly windowCount: Float64Array;
  readonly lastUsed: Float64Array;
  readonly inUse: Uint8Array;

  private readonly ring: Int32Array;
  private readonly ringPos: Uint8Array;
  private readonly slots = new Map<string, number>();

  constructor(readonly maxClasses: number) {
    const n = (this.size = FIRST_CARRIER_SLOT + maxClasses);
    this.kind = new Uint8Array(n);
    this.carrier = new Array<string>(n).fill('');
    this.proven = new Float64Array(n);
    this.step = new Float64Array(n);
    this.ceiling = new Float64Array(n);
    this.coolUntil = new Float64Array(n);
    this.lastFail = new Float64Array(n);
    this.margined = new Uint8Array(n);
    this.version = new Float64Array(n);
    this.versionBy = new Array<string>(n).fill('');
    this.advice = new Float64Array(n);
    this.probe = new Float64Array(n);
    this.probeOk = new Float64Array(n);
    this.probeFail = new Float64Array(n);
    this.provenOk = new Float64Array(n);
    this.provenFail = new Float64Array(n);
    this.remote = new Float64Array(4 * n);
    this.failAt = new Float64Array(n);
    this.windowStart = new Float64Array(n);
    this.windowCount = new Float64Array(n);
    this.lastUsed = new Float64Array(n);
    this.inUse = new Uint8Array(n);
    this.ring = new Int32Array(RING * n);
    this.ringPos = new Uint8Array(n);
    for (let k = 0; k < KIND_COUNT; k++) {
      this.kind[k] = k;
      this.inUse[k] = 1;
    }
  }

  /** The slot of a class that exists, or -1. */
  find(kind: number, carrier: string): number {
    const k = knownKind(kind);
    if (k === NetKind.UNKNOWN) return UNKNOWN_SLOT;
    if (carrier === '' || carrier.length > MAX_CARRIER_LENGTH) return k;
    return this.slots.get(key(k, carrier)) ?? -1;
  }

  /**
   * The slot for (kind, carrier), made if missing: a free slot, else the least recently
   * used carrier class idle for `idleMs` (no session can still point at it). With none,
   * -(kind slot) - 1, so the caller falls back to the kind's class.
   */
  claim(kind: number, carrier: string, nowMs: number, idleMs: number): number {
    const found = this.find(kind, carrier);
    if (found >= 0) return found;
    const k = knownKind(kind);
    let slot = -1;
    let oldest = nowMs - idleMs;
    for (let i = FIRST_CARRIER_SLOT; i < this.size; i++) {
      if (this.inUse[i] === 0) {
        slot = i;
        break;
      }
      if (this.lastUsed[i] <= oldest) {
        oldest = this.lastUsed[i];
        slot = i;
      }
    }
    if (slot < 0) return -k - 1;
    if (this.inUse[slot] === 1) this.slots.delete(key(this.kind[slot], this.carrier[slot]));
    this.slots.set(key(k, carrier), slot);
    this.inUse[slot] = 1;
    this.kind[slot] = k;
    this.carrier[slot] = carrier;
    // proven = 0 tells the policy to start the class from its kind's state.
    this.proven[slot] = 0;
    this.step[slot] = 0;
    this.ceiling[slot] = 0;
    this.coolUntil[slot] = 0;
    this.lastFail[slot] = 0;
    this.margined[slot] = 0;
    this.version[slot] = 0;
    this.versionBy[slot] = '';
    this.resetEvidence(slot);
    this.ring.fill(0, slot * RING, slot * RING + RING);
    this.windowStart[slot] = 0;
    this.windowCount[slot] = 0;
    this.lastUsed[slot] = nowMs;
    return slot;
  }

  resetEvidence(slot: number): void {
    this.probeOk[slot] = 0;
    this.probeFail[slot] = 0;
    this.provenOk[slot] = 0;
    this.provenFail[slot] = 0;
    this.failAt[slot] = 0;
    this.remote.fill(0, 4 * slot, 4 * slot + 4);
  }

  /** True (and forgets it) when `entry` was put by the other observer of the same event. */
  ringTake(slot: number, entry: number): boolean {
    const base = slot * RING;
    for (let i = base; i < base + RING; i++) {
      if (this.ring[i] === entry) {
        this.ring[i] = 0;
        return true;
      }
    }
    return false;
  }

  ringPut(slot: number, entry: number): void {
    const pos = this.ringPos[slot];
    this.ring[slot * RING + pos] = entry;
    this.ringPos[slot] = (pos + 1) % RING;
  }
}

function key(kind: number, carrier: string): string {
  return `${kind}:${carrier}`;
}

/** Ring entry for an event: a 32-bit FNV-1a of the device id, low bit = outcome, never 0. */
export function evidenceKey(deviceId: string, success: boolean): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < deviceId.length; i++) h = Math.imul(h ^ deviceId.charCodeAt(i), 0x01000193);
  const e = (h & ~1) | (success ? 1 : 0);
  return e === 0 ? 2 : e;
}
