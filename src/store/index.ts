/**
 * Picks the store engine named by `store.kind` (shared/api.md). Every worker calls this
 * once at start; the embedded engine is opened by all of them on the same directory, the
 * Redis engine connects each worker to `store.redis_url` (docs/store.md).
 */
import type { Config } from '../config/types';
import { EmbeddedStore } from './embedded';
import { RedisStore } from './redis';
import type { Store } from './store';

/** `store.kind` names an engine this build does not have yet. */
export class StoreKindNotBuiltError extends Error {
  readonly code = 'STORE_KIND_NOT_BUILT' as const;

  constructor(readonly kind: string) {
    super(`store.kind=${kind} is not built yet`);
    this.name = 'StoreKindNotBuiltError';
  }
}

export async function openStore(config: Config): Promise<Store> {
  const kind = config.store.kind;
  switch (kind) {
    case 'embedded':
      return EmbeddedStore.open(config.store.path);
    case 'redis':
      return RedisStore.open(config.store.redis_url);
    default: {
      const unknown: never = kind;
      throw new StoreKindNotBuiltError(String(unknown));
    }
  }
}

export type { Store } from './store';
