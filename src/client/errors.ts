/**
 * Errors the client library reports: one class per origin, each with a stable code.
 * Local conditions are MoorClientError; an ERROR frame from the gateway is GatewayError.
 */
import { ERROR_CODE_NAMES, type ErrorCodeName } from '../protocol/constants';
import type { moor } from '../protocol/generated/moor';

export type ClientErrorCode =
  /** A request, sync or handshake did not finish in time. */
  | 'TIMEOUT'
  /** request()/sync() while no session is up. */
  | 'NOT_CONNECTED'
  /** The session ended while the call was outstanding (stream ids do not survive it). */
  | 'DISCONNECTED'
  /** close() was called. */
  | 'CLOSED'
  /** The peer broke protocol.md: bad framing, an unexpected type, an undecodable payload. */
  | 'BAD_FRAME'
  /** An outbound payload above the negotiated max_frame. */
  | 'TOO_LARGE'
  /** The WebSocket upgrade was answered with a non-101 status. */
  | 'UPGRADE_REJECTED'
  /** WELCOME.dict_url could not be fetched (or did not hold that dictionary). */
  | 'DICTIONARY'
  /** The connection could not be made or broke (refused, reset, unreachable): `cause` holds the system error. */
  | 'NETWORK'
  /** An application callback failed: token, loadLastSeq or saveLastSeq (`cause` holds what it threw). */
  | 'CALLBACK';

export class MoorClientError extends Error {
  override readonly name = 'MoorClientError';
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    /** HTTP status of a rejected upgrade. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** `e` as the library reports it: its own errors as they are, anything else under `code`. */
export function typedError(e: unknown, code: 'NETWORK' | 'CALLBACK', what: string): MoorClientError | GatewayError {
  if (e instanceof MoorClientError || e instanceof GatewayError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  const sys = (err as { code?: unknown }).code;
  return new MoorClientError(code, `${what}: ${typeof sys === 'string' ? `${sys} ` : ''}${err.message}`, undefined, { cause: err });
}

/** An ERROR frame (protocol.md §4); the gateway closes right after sending it. */
export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  /** Wire code, 1-9. */
  readonly code: number;
  /** Name of the code ('AUTH_FAILED', ...), or 'UNKNOWN' for a code this build does not know. */
  readonly codeName: ErrorCodeName | 'UNKNOWN';
  readonly retryAfterMs: number;
  readonly redirect: string;
  constructor(e: moor.v1.Error) {
    const codeName = (ERROR_CODE_NAMES[e.code] as ErrorCodeName | undefined) ?? 'UNKNOWN';
    super(e.message ? `${codeName}: ${e.message}` : codeName);
    this.code = e.code;
    this.codeName = codeName;
    this.retryAfterMs = e.retryAfterMs;
    this.redirect = e.redirect;
  }
}
