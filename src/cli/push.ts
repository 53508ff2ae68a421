/** `moor push`: one POST /v1/push through a running gateway's HTTP API (api.md). */
import { splitList } from '../config/load';
import { parseDuration } from '../util/duration';
import { postToApi } from './api-call';
import { type ParsedArgs, parseArgs, str } from './args';
import { EXIT_USAGE, type Io } from './common';

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
      if (ms % 1000 !== 0) errors.push(`--ttl must be whole seconds, e.g. 90s or 1h (the API takes ttl_s; 0s = no expiry), got ${ttl}`);
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

export async function pushCommand(argv: readonly string[], io: Io): Promise<number> {
  const args = parseArgs(argv, PUSH_FLAGS);
  const built = pushRequestBody(args);
  const errors = [...args.errors, ...('errors' in built ? built.errors : [])];
  if (errors.length > 0 || 'errors' in built) {
    io.err(`moor push: ${errors.join('\n  ')}\n${PUSH_USAGE}`);
    return EXIT_USAGE;
  }
  return postToApi(args, io, 'push', '/v1/push', built.body, REQUEST_TIMEOUT_MS);
}
