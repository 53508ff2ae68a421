/** `moor push`: one POST /v1/push through a running gateway's HTTP API (api.md). */
import { splitList } from '../config/load';
import { readSecrets } from '../config/secrets';
import type { Config } from '../config/types';
import { parseDuration } from '../util/duration';
import { type ParsedArgs, parseArgs, str } from './args';
import { EXIT_FAIL, EXIT_OK, EXIT_USAGE, type Io, loadOrReport } from './common';

export const PUSH_FLAGS = {
  device: 'string',
  'device-ids': 'string',
  topic: 'string',
  all: 'boolean',
  body: 'string',
  priority: 'string',
  ttl: 'string',
  transient: 'boolean',
  id: 'string',
  url: 'string',
  key: 'string',
  config: 'string',
  help: 'boolean',
} as const;

export const PUSH_USAGE =
  'usage: moor push (--device ID | --device-ids a,b | --topic T | --all) --body TEXT\n' +
  '                 [--priority high|normal|bulk] [--ttl 60s] [--transient] [--id KEY]\n' +
  '                 [--url http://127.0.0.1:8081] [--key APIKEY] [--config FILE] [--section.key=value ...]';

const REQUEST_TIMEOUT_MS = 30_000;

/** The JSON body of POST /v1/push, or the usage errors that prevent building it. */
export function pushRequestBody(args: ParsedArgs): { body: Record<string, unknown> } | { errors: string[] } {
  const errors: string[] = [];
  const body: Record<string, unknown> = {};
  const device = str(args, 'device');
  const ids = str(args, 'device-ids');
  const topic = str(args, 'topic');
  const targets = [device, ids, topic, args.flags.all].filter((t) => t !== undefined).length;
  if (targets !== 1) errors.push('give exactly one target: --device, --device-ids, --topic or --all');
  if (device !== undefined) body.device_id = device;
  if (ids !== undefined) body.device_ids = splitList(ids);
  if (topic !== undefined) body.topic = topic;
  if (args.flags.all) body.all = true;
  const text = str(args, 'body');
  if (text === undefined) errors.push('--body TEXT is required');
  else body.body = text;
  const priority = str(args, 'priority');
  if (priority !== undefined) {
    if (['high', 'normal', 'bulk'].includes(priority)) body.priority = priority;
    else errors.push(`--priority must be high, normal or bulk, got ${JSON.stringify(priority)}`);
  }
  const ttl = str(args, 'ttl');
  if (ttl !== undefined) {
    try {
      const ms = parseDuration(ttl);
      if (ms < 1000 || ms % 1000 !== 0) errors.push(`--ttl must be whole seconds (the API takes ttl_s), got ${ttl}`);
      else body.ttl_s = ms / 1000;
    } catch (err) {
      errors.push(`--ttl: ${(err as Error).message}`);
    }
  }
  if (args.flags.transient) body.durable = false;
  const id = str(args, 'id');
  if (id !== undefined) body.id = id;
  for (const p of args.positionals) errors.push(`unexpected argument ${p}`);
  return errors.length > 0 ? { errors } : { body };
}

/** Where the local gateway's API listens, as a client should dial it. */
export function apiUrlOf(config: Config): string {
  const { host, port } = config.api;
  const dial = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${dial.includes(':') ? `[${dial}]` : dial}:${port}`;
}

export async function pushCommand(argv: readonly string[], io: Io): Promise<number> {
  const args = parseArgs(argv, PUSH_FLAGS);
  const built = pushRequestBody(args);
  const errors = [...args.errors, ...('errors' in built ? built.errors : [])];
  if (errors.length > 0 || 'errors' in built) {
    io.err(`moor push: ${errors.join('\n  ')}\n${PUSH_USAGE}`);
    return EXIT_USAGE;
  }
  let url = str(args, 'url');
  let key = str(args, 'key');
  // Only read the config for what the flags leave open, so --url and --key work anywhere.
  if (url === undefined || key === undefined) {
    const config = loadOrReport(args, io, 'push');
    if (config === undefined) return EXIT_USAGE;
    if (url === undefined) {
      if (config.api.port === 0) {
        io.err('moor push: api.port is 0 (a free port chosen at start); pass --url');
        return EXIT_USAGE;
      }
      url = apiUrlOf(config);
    }
    if (key === undefined) {
      try {
        key = config.api.keys[0] ?? readSecrets(config).api_key;
      } catch (err) {
        io.err(`moor push: ${(err as Error).message}`);
        return EXIT_FAIL;
      }
      if (key === undefined) {
        io.err('moor push: no API key: pass --key, set api.keys, or run from where `moor serve` keeps store.path/secrets.json');
        return EXIT_USAGE;
      }
    }
  }
  const endpoint = `${url.replace(/\/+$/, '')}/v1/push`;
  let res: Response;
  try {
    res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify(built.body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    io.err(`moor push: cannot reach ${endpoint}: ${why}${why === 'ECONNREFUSED' ? ' (is `moor serve` running?)' : ''}`);
    return EXIT_FAIL;
  }
  const text = (await res.text()).trim();
  if (!res.ok) {
    io.err(`moor push: HTTP ${res.status}${text ? `: ${text}` : ''}`);
    return EXIT_FAIL;
  }
  io.out(text);
  return EXIT_OK;
}
