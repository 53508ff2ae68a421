/**
 * `moor dict train`: one POST /v1/dicts through a running gateway's HTTP API (api.md).
 * The gateway gathers every worker's samples from the store, trains in a piscina
 * thread and installs the dictionary as the newest version; this prints its answer.
 */

import { postToApi } from './api-call';
import { parseArgs, str } from './args';
import { EXIT_USAGE, type Io } from './common';

export const DICT_FLAGS = {
  'max-bytes': 'string',
  url: 'string',
  key: 'string',
  config: 'string',
  help: 'boolean',
} as const;

export const DICT_USAGE =
  'usage: moor dict train [--max-bytes 16384] [--url http://127.0.0.1:8081] [--key APIKEY]\n' +
  '                       [--config FILE] [--section.key=value ...]';

/** Training a few MiB of samples takes seconds; the gateway answers when it is installed. */
const REQUEST_TIMEOUT_MS = 300_000;

export async function dictCommand(argv: readonly string[], io: Io): Promise<number> {
  if (argv[0] !== 'train') {
    io.err(`moor dict: unknown subcommand ${JSON.stringify(argv[0] ?? '')}\n${DICT_USAGE}`);
    return EXIT_USAGE;
  }
  const args = parseArgs(argv.slice(1), DICT_FLAGS);
  const errors = [...args.errors, ...args.positionals.map((p) => `unexpected argument ${p}`)];
  const body: { max_bytes?: number } = {};
  const max = str(args, 'max-bytes');
  if (max !== undefined) {
    const n = /^\d+$/.test(max) ? Number(max) : Number.NaN;
    if (!(n >= 1024 && n <= 4 * 1024 * 1024)) errors.push(`--max-bytes: an integer from 1024 to 4194304, got ${JSON.stringify(max)}`);
    else body.max_bytes = n;
  }
  if (errors.length > 0) {
    io.err(`moor dict train: ${errors.join('\n  ')}\n${DICT_USAGE}`);
    return EXIT_USAGE;
  }
  return postToApi(args, io, 'dict train', '/v1/dicts', body, REQUEST_TIMEOUT_MS);
}
