/**
 * Bearer-key check of the HTTP API. Keys are compared as SHA-256 digests with
 * timingSafeEqual, against every configured key, so neither a key's content nor its
 * length nor its position in the list shows in the timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string): string | null {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return m ? m[1]! : null;
}

/** The configured key equal to `presented`, or null. Empty keys never match. */
export function matchKey(presented: string, keys: readonly string[]): string | null {
  const p = digest(presented);
  let found: string | null = null;
  for (const k of keys) {
    // no early exit: every key costs the same (a microsecond each; keys are few)
    if (timingSafeEqual(p, digest(k)) && found === null && k !== '') found = k;
  }
  return found;
}

/** The API key an Authorization header carries, when it is one of `keys`. */
export function authorize(header: string, keys: readonly string[]): string | null {
  const token = bearerToken(header);
  return token === null ? null : matchKey(token, keys);
}
