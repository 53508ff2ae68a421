/**
 * JSON logs (pino) on stdout, one line per event, for journald and log shippers.
 * Every line carries `process` (primary | worker) and `pid`; `initLogger` adds `worker`
 * and `node` once the config is known; `getLogger('session')` adds `component`.
 *
 * Modules may call getLogger at load time, before initLogger runs: component loggers are
 * kept in a registry so level and bindings set later still reach them.
 */
import cluster from 'node:cluster';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { Config } from '../config/types';

export type { Logger };
export type LogLevel = Config['log']['level'];

export interface LoggerOptions {
  level: LogLevel;
  /** Stable worker index (0..workers-1), not cluster's ever-growing worker id. */
  worker?: number;
  node?: string;
  /** Defaults to stdout; tests pass a stream to read lines back. */
  destination?: DestinationStream;
}

function create(level: LogLevel, destination?: DestinationStream): Logger {
  const base = { process: cluster.isPrimary ? 'primary' : 'worker', pid: process.pid };
  return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime }, destination ?? pino.destination(1));
}

let root: Logger = create('info');
let initialized = false;
const components = new Map<string, Logger>();

/**
 * Sets level and bindings for this process. Call once, early; a second call only changes
 * the level (pino appends bindings, so repeating them would duplicate keys).
 */
export function initLogger(opts: LoggerOptions): Logger {
  if (opts.destination) {
    // A new sink needs new loggers; ones handed out earlier keep the old sink.
    root = create(opts.level, opts.destination);
    components.clear();
    initialized = false;
  }
  if (!initialized) {
    const bindings: Record<string, unknown> = {};
    if (opts.worker !== undefined) bindings.worker = opts.worker;
    if (opts.node !== undefined) bindings.node = opts.node;
    if (Object.keys(bindings).length > 0) for (const l of [root, ...components.values()]) l.setBindings(bindings);
    initialized = true;
  }
  setLogLevel(opts.level);
  return root;
}

/** The logger of one component (`session`, `api`, `store`…), created once and cached. */
export function getLogger(component: string): Logger {
  let l = components.get(component);
  if (l === undefined) {
    l = root.child({ component });
    components.set(component, l);
  }
  return l;
}

/** Changes the level everywhere in this process (SIGHUP reload of log.level). */
export function setLogLevel(level: LogLevel): void {
  root.level = level;
  for (const l of components.values()) l.level = level;
}
