/**
 * A worker's drain (api.md SIGTERM, and each step of a rolling restart): with the
 * listeners already closed, every device gets GOAWAY DRAINING with its own
 * reconnect_after_ms, spread evenly over [0, window) so they come back gradually;
 * the worker waits for them to leave until window + grace, then closes the rest.
 */

import { goAwayFrame } from '../gateway/frames';
import type { Gateway } from '../gateway/gateway';
import { type Session, SessionState } from '../gateway/session';
import { FrameType, GoAwayReason } from '../protocol/constants';

/** GOAWAYs sent per event-loop turn: a million devices must not block the loop for seconds. */
const BATCH = 5_000;
const POLL_MS = 100;
/** Sessions that finish their handshake after the first pass are caught by a second one... */
const SECOND_PASS_MS = 1_000;
/** ...which is why a rolling restart admits handshakes under way for no longer than this. */
export const ADMIT_AFTER_CLOSE_MS = SECOND_PASS_MS / 2;
/** Lets the directory removals of the last closed sessions reach their shards. */
const PRESENCE_FLUSH_MS = 200;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const turn = () => new Promise<void>((r) => setImmediate(r));

/**
 * `n` delays spread evenly over [0, windowMs): one per equal slice, at a random point of
 * it, in random order. Unlike n independent draws, no part of the window gets a crowd.
 */
export function spreadDelays(n: number, windowMs: number, random = Math.random): number[] {
  const out = new Array<number>(n);
  for (let k = 0; k < n; k++) out[k] = Math.floor(((k + random()) / n) * windowMs);
  for (let k = n - 1; k > 0; k--) {
    const j = Math.floor(random() * (k + 1));
    [out[k], out[j]] = [out[j], out[k]];
  }
  return out;
}

async function goAway(gw: Gateway, sessions: Session[], windowMs: number, told: Set<Session>): Promise<void> {
  const delays = spreadDelays(sessions.length, windowMs);
  for (let k = 0; k < sessions.length; k++) {
    const s = sessions[k];
    if (s.state === SessionState.OPEN && !told.has(s)) {
      told.add(s);
      gw.send(s, FrameType.GOAWAY, goAwayFrame(GoAwayReason.DRAINING, delays[k], ''));
    }
    if ((k + 1) % BATCH === 0) await turn();
  }
}

/** Returns how many devices were still connected at window + grace (and were closed). */
export async function drainSessions(gw: Gateway, windowMs: number, graceMs: number): Promise<number> {
  const start = Date.now();
  const deadline = start + windowMs + graceMs;
  const told = new Set<Session>();
  await goAway(gw, [...gw.hub.byDevice.values()], windowMs, told);
  let secondPass = false;
  // Handshakes under way count too: one that passed its checks just before the drain
  // becomes a session (and gets GOAWAY from the second pass); the rest are refused.
  while ((gw.hub.size > 0 || gw.handshakes > 0) && Date.now() < deadline) {
    await sleep(POLL_MS);
    const elapsed = Date.now() - start;
    if (!secondPass && elapsed >= SECOND_PASS_MS) {
      secondPass = true;
      const late = [...gw.hub.byDevice.values()].filter((s) => !told.has(s));
      await goAway(gw, late, Math.max(0, windowMs - elapsed), told);
    }
  }
  const rest = [...gw.hub.byDevice.values()];
  for (const s of rest) gw.drop(s);
  await sleep(PRESENCE_FLUSH_MS);
  return rest.length;
}
