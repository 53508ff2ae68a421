/**
 * What to do after a connection ends: stop, or when and where to try next. A pure
 * function of how it ended, so every rule of protocol.md §4-5 is testable on its own.
 */
import { ErrorCode } from '../protocol/constants';
import type { moor } from '../protocol/generated/moor';
import type { Backoff } from './backoff';
import type { GatewayError } from './errors';

export interface EndFacts {
  /** The session reached WELCOME. */
  welcomed: boolean;
  /** This attempt went to a one-shot endpoint (resume, GOAWAY, redirect) instead of home. */
  usedPreferred: boolean;
  /** The ERROR frame that preceded the close, if any. */
  error: GatewayError | null;
  goaway: { msg: moor.v1.GoAway; at: number } | null;
  /** WELCOME.resume_endpoint of this session ('' if none). */
  resumeEndpoint: string;
  /** Retry-After of an HTTP 503 (or other refusal) of the WebSocket upgrade. */
  upgradeRetryAfterMs: number | undefined;
  now: number;
}

export interface ReconnectPolicy {
  enabled: boolean;
  afterAuthFailed: boolean;
  afterReplaced: boolean;
}

export type Plan =
  | { stop: true; why: string }
  /** target: a `host:port` to try first, or null for the home address. */
  | { stop: false; delayMs: number; target: string | null };

export function planReconnect(f: EndFacts, policy: ReconnectPolicy, backoff: Backoff): Plan {
  if (!policy.enabled) return { stop: true, why: 'reconnect disabled' };
  const e = f.error;
  // The same token fails the same way every time; retrying only loads the verifier.
  // A token function may fetch a fresh one, so the caller can opt in.
  if (e?.code === ErrorCode.AUTH_FAILED && !policy.afterAuthFailed) return { stop: true, why: 'AUTH_FAILED' };
  // Another instance of this device took the session over; reconnecting would take it
  // back, and the two would evict each other forever.
  if (e?.code === ErrorCode.REPLACED && !policy.afterReplaced) return { stop: true, why: 'REPLACED' };

  if (f.goaway !== null) {
    // The gateway staggers reconnect_after_ms itself; the resume endpoint is the worker
    // that is going away, so it is not tried. 0 means "not said": spread with jitter.
    const after = f.goaway.msg.reconnectAfterMs;
    const delayMs = after > 0 ? Math.max(0, f.goaway.at + after - f.now) : backoff.next();
    return { stop: false, delayMs, target: f.goaway.msg.endpoint || null };
  }

  const serverDelay = e !== null && e.retryAfterMs > 0 ? e.retryAfterMs : f.upgradeRetryAfterMs;
  if (e?.code === ErrorCode.REDIRECT && e.redirect !== '') {
    if (serverDelay !== undefined) {
      backoff.skip();
      return { stop: false, delayMs: serverDelay, target: e.redirect };
    }
    // The first redirect is followed at once; a chain of them backs off like failures.
    if (backoff.attempts > 0) return { stop: false, delayMs: backoff.next(), target: e.redirect };
    backoff.skip();
    return { stop: false, delayMs: 0, target: e.redirect };
  }
  const target = f.welcomed && f.resumeEndpoint !== '' ? f.resumeEndpoint : null;
  if (serverDelay !== undefined) {
    // OVERLOADED and HTTP 503 carry a delay the gateway already jittered.
    backoff.skip();
    return { stop: false, delayMs: serverDelay, target };
  }
  // The one-shot endpoint failed before WELCOME: fall back to home without waiting.
  if (!f.welcomed && f.usedPreferred) return { stop: false, delayMs: 0, target: null };
  return { stop: false, delayMs: backoff.next(), target };
}
