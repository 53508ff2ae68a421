/** node:cluster IPC between the primary's ticket-key service and the workers' TLS listeners. */
import type { TicketKeySetMessage } from './ticket-keys';

/** Worker → primary: send me the keys (at start, before the TLS TCP listener opens). */
export const KEYS_REQUEST = 'moor:tls-keys-request';
/** Primary → worker: the keys, as an answer and after every rotation or file change. */
export const KEYS = 'moor:tls-keys';

export type TlsToPrimary = { type: typeof KEYS_REQUEST };
export type TlsToWorker = { type: typeof KEYS; keys: TicketKeySetMessage };

export function isKeysRequest(m: unknown): m is TlsToPrimary {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === KEYS_REQUEST;
}

export function isKeys(m: unknown): m is TlsToWorker {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === KEYS && typeof (m as TlsToWorker).keys === 'object';
}
