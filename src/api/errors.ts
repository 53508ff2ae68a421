/**
 * Error codes of the HTTP API (shared/api.md): one table, code → HTTP status. The
 * code is the stable string callers match on; messages are for humans.
 */

export const ApiErrorCode = {
  /** A field of the request is missing, of the wrong type or out of range. */
  INVALID_FIELD: 400,
  /** The body is not a JSON document (or not UTF-8). */
  BAD_JSON: 400,
  /** A path parameter is malformed. */
  INVALID_PATH: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  /** DELETE /v1/devices/{id}/session: the device has no session. */
  NOT_CONNECTED: 404,
  METHOD_NOT_ALLOWED: 405,
  /** POST /v1/dicts: fewer samples than compression.dict_min_samples. */
  TOO_FEW_SAMPLES: 409,
  /** POST /v1/push: a push with the same id is still being stored (Retry-After). */
  PUSH_IN_PROGRESS: 409,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  /** POST /v1/dicts: zdict failed on the samples. */
  TRAINING_FAILED: 500,
  /** POST /v1/dicts: the gateway runs without its native module. */
  COMPRESSION_UNAVAILABLE: 501,
  STORE_UNAVAILABLE: 503,
  NOT_READY: 503,
  OVERLOADED: 503,
} as const;

export type ApiErrorCodeName = keyof typeof ApiErrorCode;

/** Reason phrases for the status lines uWS needs spelled out. */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: '200 OK',
  201: '201 Created',
  202: '202 Accepted',
  204: '204 No Content',
  304: '304 Not Modified',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  409: '409 Conflict',
  413: '413 Payload Too Large',
  429: '429 Too Many Requests',
  500: '500 Internal Server Error',
  501: '501 Not Implemented',
  503: '503 Service Unavailable',
};

export interface ApiErrorOptions {
  /** Seconds, sent as Retry-After (429 and 503 always carry one). */
  retryAfterS?: number;
  cause?: unknown;
}

/** An error the API answers as `{"error":{"code","message"}}`; backends may throw it too (e.g. RATE_LIMITED). */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly code: ApiErrorCodeName;
  readonly status: number;
  readonly retryAfterS: number | undefined;

  constructor(code: ApiErrorCodeName, message: string, opts: ApiErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.status = ApiErrorCode[code];
    this.retryAfterS = opts.retryAfterS ?? (this.status === 429 || this.status === 503 ? 1 : undefined);
  }

  toJSON(): { error: { code: string; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

/**
 * Whether a backend failure means "the store is unreachable, retry later". Store
 * engines signal it with an error whose `code` is 'STORE_UNAVAILABLE' (optionally
 * with `retryAfterMs`), so the API does not depend on an engine's classes.
 */
export function storeUnavailable(err: unknown): { retryAfterS: number } | null {
  if (typeof err !== 'object' || err === null) return null;
  const e = err as { code?: unknown; retryAfterMs?: unknown };
  if (e.code !== 'STORE_UNAVAILABLE') return null;
  const ms = typeof e.retryAfterMs === 'number' && e.retryAfterMs > 0 ? e.retryAfterMs : 1000;
  return { retryAfterS: Math.max(1, Math.ceil(ms / 1000)) };
}
