/**
 * `GET /v1/dicts/{id}` on the device listeners' HTTP side: devices follow WELCOME's
 * dict_url to the host and port they already reach (the backend API listens on
 * 127.0.0.1 by default). Same answers as the API's route (src/api/server.ts): the
 * bytes, immutable, with an ETag and a year of Cache-Control, no auth; errors in the
 * API's JSON shape.
 */
import { createHash } from 'node:crypto';
import { ApiError } from '../api/errors';
import { begin, type Exchange, reply, replyError } from '../api/http';
import type { HttpRequest, HttpResponse, TemplatedApp } from '../util/uws';

export const DICT_CACHE_CONTROL = 'public, max-age=31536000, immutable';

/** The ETag of dictionary bytes (both routes). */
export function dictEtag(bytes: Uint8Array): string {
  return `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 27)}"`;
}

/** RFC 9110 If-None-Match: `*` or a list of (weak or strong) tags, compared weakly. */
export function etagMatches(header: string, etag: string): boolean {
  if (header === '') return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

/**
 * The dictionary id of a `/v1/dicts/{id}` path: a decimal zstd dictionary id (at most
 * 4294967295). Anything else is bad input, 400 INVALID_PATH; a well-formed id with no
 * dictionary (0 included: zstd's "no dictionary") is for the caller's 404.
 */
export function dictIdParam(param: string): number {
  const id = /^\d{1,10}$/.test(param) ? Number(param) : -1;
  if (id < 0 || id > 0xffffffff) throw new ApiError('INVALID_PATH', `dictionary id ${JSON.stringify(param.slice(0, 64))} is not a decimal number 1-4294967295`);
  return id;
}

/** Both routes' answer once the lookup is done: 404, 304 for a matching If-None-Match, or the bytes. */
export function answerDict(x: Exchange, id: number, bytes: Uint8Array | null, ifNoneMatch: string): void {
  if (bytes === null) return replyError(x, new ApiError('NOT_FOUND', `no dictionary ${id}`));
  const etag = dictEtag(bytes);
  const headers = [
    ['ETag', etag],
    ['Cache-Control', DICT_CACHE_CONTROL],
  ] as const;
  if (etagMatches(ifNoneMatch, etag)) return reply(x, 304, headers, null);
  reply(x, 200, [['Content-Type', 'application/octet-stream'], ...headers], bytes);
}

export interface DictRouteLog {
  warn(obj: object, msg: string): void;
}

/** Adds the route to a uWS app; `lookup` answers the bytes or null. */
export function attachDictRoute(app: TemplatedApp, lookup: (id: number) => Promise<Buffer | null>, log: DictRouteLog): void {
  const handler = (res: HttpResponse, req: HttpRequest): void => {
    // The API's exchange: abort-safe, corked, HEAD answered without a body.
    const x = begin(res, req.getCaseSensitiveMethod() === 'HEAD');
    const inm = req.getHeader('if-none-match');
    let id: number;
    try {
      id = dictIdParam(req.getParameter(0) ?? '');
    } catch (err) {
      return replyError(x, err as ApiError);
    }
    (id > 0 ? lookup(id) : Promise.resolve(null)).then(
      (bytes) => answerDict(x, id, bytes, inm),
      (err: unknown) => {
        log.warn({ err, dict: id }, 'dictionary lookup failed');
        replyError(x, new ApiError('STORE_UNAVAILABLE', 'the store is unavailable; retry later', { retryAfterS: 5 }));
      },
    );
  };
  app.get('/v1/dicts/:id', handler);
  app.head('/v1/dicts/:id', handler);
  // uWS prefers a method's own handler over `any` on the same pattern: the rest is 405, as on the API.
  app.any('/v1/dicts/:id', (res, req) => {
    const m = req.getCaseSensitiveMethod();
    replyError(begin(res, m === 'HEAD'), new ApiError('METHOD_NOT_ALLOWED', `${m} is not allowed on this path; use GET, HEAD`), [['Allow', 'GET, HEAD']]);
  });
}
