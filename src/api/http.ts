/**
 * The uWS.js rules of the API in one place: an abort handler before any async work,
 * every write corked, nothing touches a response after abort or end, request bodies
 * copied out of uWS's neutered chunks under a byte limit.
 */
import type { HttpResponse, RecognizedString } from '../util/uws';
import { ApiError, STATUS_TEXT } from './errors';

export type Headers = ReadonlyArray<readonly [string, string]>;

/** One request/response pair: the response and whether it may still be used. */
export interface Exchange {
  readonly res: HttpResponse;
  /** The client went away; `res` must not be touched again. */
  aborted: boolean;
  /** A response was sent. */
  done: boolean;
  /** A HEAD request: the answer's status and headers (its Content-Length too), no body. */
  readonly head: boolean;
}

/** Starts an exchange; call first thing in a route handler. */
export function begin(res: HttpResponse, head = false): Exchange {
  const x: Exchange = { res, aborted: false, done: false, head };
  res.onAborted(() => {
    x.aborted = true;
  });
  return x;
}

export const JSON_TYPE = 'application/json; charset=utf-8';

/** Sends one complete response unless the exchange is already over. */
export function reply(
  x: Exchange,
  status: number,
  headers: Headers,
  body: RecognizedString | null,
  closeConnection = false,
): void {
  if (x.aborted || x.done) return;
  x.done = true;
  const { res } = x;
  res.cork(() => {
    res.writeStatus(STATUS_TEXT[status] ?? String(status));
    for (const [k, v] of headers) res.writeHeader(k, v);
    endResponse(res, body, x.head, closeConnection);
  });
}

/**
 * Ends a response (inside its cork): with `body`, or for a HEAD request with only the
 * Content-Length the body would have. Without a body uWS must get no length argument:
 * it then writes no Content-Length (a 204 must not have one); this uWS took an undefined
 * length as 2^63, and endWithoutBody(n) waits for n more bytes, so the connection's next
 * request was never answered.
 */
function endResponse(res: HttpResponse, body: RecognizedString | null, head: boolean, closeConnection = false): void {
  if (body === null) {
    if (closeConnection) res.endWithoutBody(0, true);
    else res.endWithoutBody();
  } else if (!head) res.end(body, closeConnection);
  else {
    // A HEAD's answer leaves no body unread, so its connection is kept either way.
    res.writeHeader('Content-Length', String(byteLength(body)));
    res.endWithoutBody();
  }
}

function byteLength(body: RecognizedString): number {
  return typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
}

export function replyJson(x: Exchange, status: number, value: unknown, headers: Headers = []): void {
  reply(x, status, [['Content-Type', JSON_TYPE], ...headers], JSON.stringify(value));
}

export function replyError(x: Exchange, err: ApiError, headers: Headers = [], closeConnection = false): void {
  const h: Array<readonly [string, string]> = [['Content-Type', JSON_TYPE], ...headers];
  if (err.retryAfterS !== undefined) h.push(['Retry-After', String(err.retryAfterS)]);
  if (err.status === 401) h.push(['WWW-Authenticate', 'Bearer']);
  reply(x, err.status, h, JSON.stringify(err.toJSON()), closeConnection);
}

/** Content-Length as a number, null when absent, NaN when malformed. */
export function declaredLength(header: string): number | null {
  if (header === '') return null;
  return /^\d{1,15}$/.test(header) ? Number(header) : Number.NaN;
}

/**
 * Collects the request body. Rejects with PAYLOAD_TOO_LARGE as soon as more than
 * `limit` bytes arrive (the caller answers 413 and closes: the rest is never read).
 * Never settles when the client aborts; nothing then holds the promise.
 */
export function readBody(x: Exchange, declared: number | null, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // with a declared length one buffer is filled in place; else chunks are kept
    let whole: Buffer | null = declared !== null && declared <= limit ? Buffer.allocUnsafe(declared) : null;
    const chunks: Buffer[] = [];
    let received = 0;
    let over = false;
    x.res.onData((chunk, isLast) => {
      if (over || x.aborted) return;
      const n = chunk.byteLength;
      if (received + n > limit || (whole !== null && received + n > whole.length)) {
        over = true;
        reject(new ApiError('PAYLOAD_TOO_LARGE', `request body exceeds ${limit} bytes`));
        return;
      }
      // the ArrayBuffer is neutered when this callback returns: copy now
      if (whole !== null) whole.set(new Uint8Array(chunk), received);
      else chunks.push(Buffer.copyBytesFrom(new Uint8Array(chunk)));
      received += n;
      if (!isLast) return;
      if (whole !== null) {
        if (received < whole.length) whole = whole.subarray(0, received);
        resolve(whole);
      } else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received));
    });
  });
}

/** Resolves on the next turn of the event loop, outside any uWS callback. */
export function outsideHandler(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
