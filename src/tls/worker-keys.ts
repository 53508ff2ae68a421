/** A worker's side of the ticket keys: ask the primary at start, then hear every change. */
import { isKeys, KEYS_REQUEST, type TlsToPrimary } from './messages';
import { fromMessage, type TicketKeySet } from './ticket-keys';

type Listener = (keys: TicketKeySet) => void;

let latest: TicketKeySet | null = null;
const listeners = new Set<Listener>();
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  process.on('message', (m: unknown) => {
    if (!isKeys(m)) return;
    let keys: TicketKeySet;
    try {
      keys = fromMessage(m.keys);
    } catch {
      return;
    }
    if (latest !== null && keys.generation <= latest.generation) return;
    latest = keys;
    for (const fn of listeners) fn(keys);
  });
}

/** Every newer key set from now on. Returns an unsubscribe. */
export function onTicketKeys(fn: Listener): () => void {
  install();
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** The current keys, asked of the primary; rejects when it does not answer in time. */
export function requestTicketKeys(timeoutMs = 10_000): Promise<TicketKeySet> {
  install();
  if (latest !== null) return Promise.resolve(latest);
  if (typeof process.send !== 'function') return Promise.reject(new Error('tls ticket keys: not a worker of a moor primary (no IPC channel)'));
  return new Promise((resolve, reject) => {
    const off = onTicketKeys((keys) => {
      clearTimeout(timer);
      off();
      resolve(keys);
    });
    const timer = setTimeout(() => {
      off();
      reject(new Error(`tls ticket keys: the primary did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    process.send?.({ type: KEYS_REQUEST } satisfies TlsToPrimary);
  });
}
