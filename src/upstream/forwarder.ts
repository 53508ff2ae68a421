/**
 * Device REQUEST frames to the business backend (shared/api.md "Upstream"): each one
 * becomes `POST {upstream.url}/{method}` and its status and body come back as the
 * RESPONSE. Failures never throw: they are answered with a status like an HTTP proxy
 * would (501 no upstream, 400 bad method, 502 unreachable or bad answer, 503 busy,
 * 504 timeout).
 */

export interface UpstreamOptions {
  /** Base URL (http or https); '' = no upstream, every REQUEST is answered 501. */
  url: string;
  /** Whole exchange: connect, send, and read the answer. */
  timeoutMs: number;
  /** Requests in flight per worker; beyond it the answer is 503 at once. */
  concurrency: number;
  /** Largest upstream answer body passed back (it must fit a RESPONSE frame). */
  maxBody: number;
}

export interface ForwardRequest {
  method: string;
  body: Uint8Array;
  meta: Readonly<Record<string, string>>;
  deviceId: string;
  sessionId: string;
}

export interface ForwardResult {
  status: number;
  body: Buffer;
  /** Why the gateway answered instead of the upstream; '' when the status is the upstream's. */
  error: string;
}

const EMPTY = Buffer.alloc(0);
export const MAX_METHOD_LENGTH = 256;

/** Path segments of RFC 3986 unreserved characters; no empty, `.` or `..` segment. */
const METHOD = /^[A-Za-z0-9._~-]+(?:\/[A-Za-z0-9._~-]+)*$/;
const DOT_SEGMENT = /(?:^|\/)\.{1,2}(?:\/|$)/;
/** RFC 9110 token, lowercase. */
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
/** Visible ASCII, space and tab: what every HTTP stack passes through unchanged. */
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;

/** Whether a REQUEST method is safe to append to the upstream URL as a path. */
export function isSafeMethod(method: string): boolean {
  return method.length > 0 && method.length <= MAX_METHOD_LENGTH && METHOD.test(method) && !DOT_SEGMENT.test(method);
}

/** The x-moor-* headers of a request. Meta entries whose key or value is not header-safe are left out. */
export function upstreamHeaders(req: ForwardRequest): Record<string, string> {
  const h: Record<string, string> = {
    'content-type': 'application/octet-stream',
    // ids are not ours to choose: percent-encode the odd one rather than drop it
    'x-moor-device': HEADER_VALUE.test(req.deviceId) ? req.deviceId : encodeURIComponent(req.deviceId),
    'x-moor-session': HEADER_VALUE.test(req.sessionId) ? req.sessionId : encodeURIComponent(req.sessionId),
  };
  for (const [k, v] of Object.entries(req.meta)) {
    const key = k.toLowerCase();
    if (typeof v === 'string' && HEADER_NAME.test(key) && HEADER_VALUE.test(v)) h[`x-moor-meta-${key}`] = v;
  }
  return h;
}

const answer = (status: number, error: string): ForwardResult => ({ status, body: EMPTY, error });

class BodyTooLarge extends Error {}

/** Reads a fetch body up to `limit` bytes; cancels the stream past it. */
async function readLimited(res: Response, limit: number): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? Number.NaN);
  if (declared > limit) {
    await res.body?.cancel().catch(() => {});
    throw new BodyTooLarge();
  }
  if (res.body === null) return EMPTY;
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw new BodyTooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, total);
}

/** Node's fetch error → the code of its cause (ECONNREFUSED, UND_ERR_SOCKET, ...). */
function failureCode(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } })?.cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (cause && typeof cause.message === 'string') return cause.message;
  return err instanceof Error ? err.message : String(err);
}

/**
 * One per worker. Uses node's fetch, whose undici dispatcher keeps connections to
 * the upstream alive between requests.
 */
export class UpstreamForwarder {
  private readonly base: string;
  private readonly opts: UpstreamOptions;
  private active = 0;

  constructor(opts: UpstreamOptions) {
    if (opts.url !== '') {
      let u: URL;
      try {
        u = new URL(opts.url);
      } catch {
        throw new TypeError(`upstream.url ${JSON.stringify(opts.url)} is not a URL (e.g. http://127.0.0.1:9000/rpc)`);
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') {
        throw new TypeError(`upstream.url must be http:// or https://, got ${u.protocol}`);
      }
      if (u.search !== '' || u.hash !== '') throw new TypeError('upstream.url must not have a query or fragment: the method is appended as a path');
    }
    if (!Number.isInteger(opts.timeoutMs) || opts.timeoutMs <= 0) throw new TypeError('upstream.timeout_ms must be a positive integer');
    if (!Number.isInteger(opts.concurrency) || opts.concurrency <= 0) throw new TypeError('upstream.concurrency must be a positive integer');
    if (!Number.isInteger(opts.maxBody) || opts.maxBody < 0) throw new TypeError('maxBody must be a non-negative integer (bytes)');
    this.opts = opts;
    this.base = opts.url.replace(/\/+$/, '');
  }

  /** Requests waiting for the upstream now. */
  get inFlight(): number {
    return this.active;
  }

  async forward(req: ForwardRequest): Promise<ForwardResult> {
    if (this.base === '') return answer(501, 'no upstream configured');
    if (!isSafeMethod(req.method)) {
      return answer(400, `bad method: use 1-${MAX_METHOD_LENGTH} of A-Z a-z 0-9 . _ ~ - in /-separated segments`);
    }
    if (this.active >= this.opts.concurrency) return answer(503, 'upstream busy: too many requests in flight');
    this.active++;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), this.opts.timeoutMs);
    try {
      const res = await fetch(`${this.base}/${req.method}`, {
        method: 'POST',
        headers: upstreamHeaders(req),
        body: req.body,
        // the upstream's own 3xx goes back to the device as is
        redirect: 'manual',
        signal: ctl.signal,
      });
      const body = await readLimited(res, this.opts.maxBody);
      return { status: res.status, body, error: '' };
    } catch (err) {
      if (ctl.signal.aborted) return answer(504, `upstream timeout after ${this.opts.timeoutMs} ms`);
      if (err instanceof BodyTooLarge) return answer(502, 'upstream body too large');
      return answer(502, `upstream unreachable: ${failureCode(err)}`);
    } finally {
      clearTimeout(timer);
      this.active--;
    }
  }
}
