/**
 * SIGHUP inside a worker. The new live values are written into the one config object
 * every part of the worker reads at use (gateway limits and heartbeat, the API's keys),
 * the log level is set, and listeners (e.g. TLS contexts) hear which keys changed.
 */
import { type ConfigKey, setKey } from '../config/schema';
import type { Config } from '../config/types';
import { setLogLevel } from '../util/log';
import type { LiveValues } from './messages';

export type ReloadListener = (changed: readonly ConfigKey[], config: Config) => void;

const listeners = new Set<ReloadListener>();

/** Called after each reload; tls.cert/tls.key are in `changed` on every reload with TLS on. Returns an unsubscribe. */
export function onConfigReload(fn: ReloadListener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Applies `live` to `config` in place; returns the listeners' failures (the values stay applied). */
export function applyLive(config: Config, live: LiveValues, changed: readonly ConfigKey[]): Error[] {
  for (const [key, value] of Object.entries(live) as Array<[ConfigKey, unknown]>) setKey(config, key, value);
  setLogLevel(config.log.level);
  const failures: Error[] = [];
  for (const fn of listeners) {
    try {
      fn(changed, config);
    } catch (err) {
      failures.push(err as Error);
    }
  }
  return failures;
}
