/**
 * The backend HTTP API (shared/api.md) on a uWS.js app: routing, auth, parsing and
 * answers. What a route does lives behind ApiBackend; this file only translates.
 */
import { randomUUID } from 'node:crypto';
import { answerDict, dictIdParam } from '../compression/http';
import type { Config } from '../config/types';
import { type HttpRequest, type HttpResponse, type TemplatedApp, type us_listen_socket, uws } from '../util/uws';
import { authorize } from './auth';
import type { ApiBackend } from './backend';
import { ApiError, storeUnavailable } from './errors';
import {
  begin,
  declaredLength,
  type Exchange,
  outsideHandler,
  readBody,
  reply,
  replyError,
  replyJson,
} from './http';
import { describeFieldErrors, deviceIdProblem, validatePush } from './validate-push';

/** What the API logs through; a pino Logger fits. */
export interface ApiLogger {
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface ApiOptions {
  /** The accepted bearer keys, read on every request (so a reload applies at once). */
  keys: () => readonly string[];
  /** Largest request body in bytes; more is 413. */
  maxBody: number;
  logger: ApiLogger;
  /** Push id when the caller gives none. */
  newId?: () => string;
}

/** Seconds a load balancer should wait before probing /readyz again. */
const READY_RETRY_AFTER_S = 5;

/** Known paths and their methods: another method on them is 405, not 404. */
const ROUTES: ReadonlyArray<readonly [pattern: string, allow: string]> = [
  ['/v1/push', 'POST'],
  ['/v1/devices/:id', 'GET, HEAD'],
  ['/v1/devices/:id/session', 'DELETE'],
  ['/v1/dicts/:id', 'GET, HEAD'],
  ['/v1/dicts', 'POST'],
  ['/metrics', 'GET, HEAD'],
  ['/healthz', 'GET, HEAD'],
  ['/readyz', 'GET, HEAD'],
];

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Attaches the API routes to `app`. */
export function startApi(app: TemplatedApp, backend: ApiBackend, opts: ApiOptions): void {
  const newId = opts.newId ?? randomUUID;
  const { logger, maxBody } = opts;

  /** Backend failure → 503 STORE_UNAVAILABLE, the backend's own ApiError, or a logged 500. */
  const fail = (x: Exchange, err: unknown, route: string): void => {
    if (x.aborted || x.done) return;
    // 413: close instead of reading (and discarding) the rest of the body
    const store = storeUnavailable(err);
    if (err instanceof ApiError) replyError(x, err, [], err.status === 413);
    else if (store) replyError(x, new ApiError('STORE_UNAVAILABLE', 'the store is unreachable; retry later', store));
    else {
      logger.error({ err, route }, 'api: backend failure');
      replyError(x, new ApiError('INTERNAL', 'internal error'));
    }
  };

  /** Wraps a handler: exchange started, thrown and rejected errors answered. */
  const route =
    (name: string, handler: (x: Exchange, req: HttpRequest) => Promise<void> | void) =>
    (res: HttpResponse, req: HttpRequest): void => {
      // HEAD anywhere (a GET route's, or a 404/405) answers headers only.
      const x = begin(res, req.getCaseSensitiveMethod() === 'HEAD');
      try {
        const p = handler(x, req);
        if (p) p.catch((err: unknown) => fail(x, err, name));
      } catch (err) {
        fail(x, err, name);
      }
    };

  /** The caller's API key, or null after answering 401. Reads req: call before any await. */
  const authed = (x: Exchange, req: HttpRequest): string | null => {
    const key = authorize(req.getHeader('authorization'), opts.keys());
    if (key === null) replyError(x, new ApiError('UNAUTHORIZED', 'missing or unknown API key (Authorization: Bearer <key>)'));
    return key;
  };

  /** A GET route, and HEAD on it (RFC 9110: the same status and headers, no body; load balancers probe with it). */
  const get = (pattern: string, name: string, handler: (x: Exchange, req: HttpRequest) => Promise<void> | void): void => {
    app.get(pattern, route(name, handler));
    app.head(pattern, route(name, handler));
  };

  app.post(
    '/v1/push',
    route('push', async (x, req) => {
      const apiKey = authed(x, req);
      if (apiKey === null) return;
      const declared = declaredLength(req.getHeader('content-length'));
      if (Number.isNaN(declared)) throw new ApiError('INVALID_FIELD', 'Content-Length header is malformed');
      if (declared !== null && declared > maxBody) {
        throw new ApiError('PAYLOAD_TOO_LARGE', `request body of ${declared} bytes exceeds ${maxBody}`);
      }
      // Flow control: a key whose queues are all full is refused before its body is read.
      const refused = backend.gatePush?.(apiKey) ?? null;
      if (refused) throw refused;
      const raw = await readBody(x, declared, maxBody);
      let doc: unknown;
      try {
        doc = JSON.parse(utf8.decode(raw));
      } catch (err) {
        throw new ApiError('BAD_JSON', `request body is not valid UTF-8 JSON: ${(err as Error).message}`);
      }
      const v = validatePush(doc, apiKey, newId);
      if (!v.ok) throw new ApiError('INVALID_FIELD', describeFieldErrors(v.errors));
      // topic fan-out publishes; publishing inside a uWS callback is 14x slower (design.md).
      // A device push sends to one socket per device whatever the context, and a durable
      // one leaves the callback at its store write: it saves the loop iteration.
      if (v.cmd.target.kind !== 'device') await outsideHandler();
      const out = await backend.push(v.cmd);
      const answer: { id: string; accepted: number; online: number; seqs?: number[]; queued?: boolean } = {
        id: out.id,
        accepted: out.accepted,
        online: out.online,
      };
      if (out.seqs !== undefined) answer.seqs = out.seqs;
      if (out.queued) answer.queued = true;
      replyJson(x, 202, answer);
    }),
  );

  get('/v1/devices/:id', 'device', async (x, req) => {
      if (authed(x, req) === null) return;
      const id = deviceParam(req.getParameter(0));
      const info = await backend.deviceInfo(id);
      if (info === null) throw new ApiError('NOT_FOUND', `device ${JSON.stringify(id)} was never seen`);
      replyJson(x, 200, info);
    });

  app.del(
    '/v1/devices/:id/session',
    route('kick', async (x, req) => {
      if (authed(x, req) === null) return;
      const id = deviceParam(req.getParameter(0));
      if (!(await backend.kick(id))) {
        throw new ApiError('NOT_CONNECTED', `device ${JSON.stringify(id)} has no session`);
      }
      reply(x, 204, [], null);
    }),
  );

  // trains a dictionary from the collected samples and installs it as the newest (`moor dict train`)
  app.post(
    '/v1/dicts',
    route('train', async (x, req) => {
      if (authed(x, req) === null) return;
      const raw = await readBody(x, declaredLength(req.getHeader('content-length')), 4096);
      let maxBytes: number | undefined;
      if (raw.length > 0) {
        let doc: { max_bytes?: unknown };
        try {
          doc = JSON.parse(utf8.decode(raw)) as { max_bytes?: unknown };
        } catch (err) {
          throw new ApiError('BAD_JSON', `request body is not valid UTF-8 JSON: ${(err as Error).message}`);
        }
        const m = doc?.max_bytes;
        if (m !== undefined && (typeof m !== 'number' || !Number.isInteger(m) || m < 1024 || m > 4 * 1024 * 1024)) {
          throw new ApiError('INVALID_FIELD', 'max_bytes: an integer from 1024 to 4194304');
        }
        maxBytes = m as number | undefined;
      }
      if (!backend.trainDict) throw new ApiError('COMPRESSION_UNAVAILABLE', 'this gateway cannot train dictionaries');
      replyJson(x, 201, await backend.trainDict({ maxBytes }));
    }),
  );

  // no auth: devices fetch dictionaries by the dict_url of WELCOME
  get('/v1/dicts/:id', 'dict', async (x, req) => {
      const ifNoneMatch = req.getHeader('if-none-match');
      const id = dictIdParam(req.getParameter(0) ?? '');
      answerDict(x, id, id > 0 ? await backend.dict(id) : null, ifNoneMatch);
    });

  get('/metrics', 'metrics', async (x) => {
      const m = await backend.metrics();
      reply(x, 200, [['Content-Type', m.contentType]], m.body);
    });

  get('/healthz', 'healthz', (x) => replyJson(x, 200, { ok: true }));

  get('/readyz', 'readyz', async (x) => {
      const r = await backend.ready();
      if (r.ok) return replyJson(x, 200, { ok: true, reasons: [] });
      // api.md's error shape and nothing else; the reasons are in the message.
      const message = r.reasons.length > 0 ? `not ready: ${r.reasons.join('; ')}` : 'not ready';
      replyJson(x, 503, { error: { code: 'NOT_READY', message } }, [
        ['Retry-After', String(READY_RETRY_AFTER_S)],
      ]);
    });

  for (const [pattern, allow] of ROUTES) {
    // uWS prefers a method's own handler over `any` on the same pattern
    app.any(
      pattern,
      route('405', (x, req) => {
        const m = req.getCaseSensitiveMethod();
        replyError(x, new ApiError('METHOD_NOT_ALLOWED', `${m} is not allowed on this path; use ${allow}`), [
          ['Allow', allow],
        ]);
      }),
    );
  }

  app.any(
    '/*',
    route('404', (x, req) => {
      replyError(x, new ApiError('NOT_FOUND', `no route ${req.getCaseSensitiveMethod()} ${req.getUrl()}`));
    }),
  );
}

/** A device id from the path (percent-decoded), or a thrown INVALID_PATH. */
function deviceParam(raw: string): string {
  let id: string;
  try {
    id = decodeURIComponent(raw);
  } catch {
    throw new ApiError('INVALID_PATH', 'device id in the path is not valid percent-encoding');
  }
  const problem = deviceIdProblem(id);
  if (problem) throw new ApiError('INVALID_PATH', `device id in the path ${problem}`);
  return id;
}

export interface ApiServer {
  /** The port actually bound (useful with api.port = 0). */
  readonly port: number;
  /** Stops listening and closes every open API connection. */
  close(): void;
}

/**
 * A uWS app of its own listening on api.host:api.port. Every worker calls it: uWS
 * listens with SO_REUSEPORT, so the kernel spreads connections over the workers.
 */
export function createApiServer(config: Config, backend: ApiBackend, logger: ApiLogger): ApiServer {
  const app = uws.App();
  startApi(app, backend, { keys: () => config.api.keys, maxBody: config.api.max_body, logger });
  const bound: { socket: us_listen_socket | false } = { socket: false };
  // uWS calls back synchronously from listen()
  app.listen(config.api.host, config.api.port, (s) => {
    bound.socket = s;
  });
  const socket = bound.socket;
  if (socket === false) {
    app.close();
    throw new Error(`moor: the HTTP API cannot listen on ${config.api.host}:${config.api.port} (address in use or not local?)`);
  }
  let open = true;
  return {
    port: uws.us_socket_local_port(socket),
    close(): void {
      if (!open) return;
      open = false;
      uws.us_listen_socket_close(socket);
      app.close();
    },
  };
}
