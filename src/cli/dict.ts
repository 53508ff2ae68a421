/**
 * `moor dict train`: one POST /v1/dicts through a running gateway's HTTP API (api.md).
 * The gateway gathers every worker's samples from the store, trains in a piscina
 * thread and installs the dictionary as the newest version; this prints its answer.
 */
import { readSecrets } from '../config/secrets';
import { parseArgs, str } from './args';
import { EXIT_FAIL, EXIT_OK, EXIT_USAGE, type Io, loadOrReport } from './common';
import { apiUrlOf } from './push';

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
  let url = str(args, 'url');
  let key = str(args, 'key');
  if (url === undefined || key === undefined) {
    const config = loadOrReport(args, io, 'dict train');
    if (config === undefined) return EXIT_USAGE;
    if (url === undefined) {
      if (config.api.port === 0) {
        io.err('moor dict train: api.port is 0 (a free port chosen at start); pass --url');
        return EXIT_USAGE;
      }
      url = apiUrlOf(config);
    }
    if (key === undefined) {
      try {
        key = config.api.keys[0] ?? readSecrets(config).api_key;
      } catch (err) {
        io.err(`moor dict train: ${(err as Error).message}`);
        return EXIT_FAIL;
      }
      if (key === undefined) {
        io.err('moor dict train: no API key: pass --key, set api.keys, or run from where `moor serve` keeps store.path/secrets.json');
        return EXIT_USAGE;
      }
    }
  }
  const endpoint = `${url.replace(/\/+$/, '')}/v1/dicts`;
  let res: Response;
  try {
    res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    io.err(`moor dict train: cannot reach ${endpoint}: ${why}${why === 'ECONNREFUSED' ? ' (is `moor serve` running?)' : ''}`);
    return EXIT_FAIL;
  }
  const text = (await res.text()).trim();
  if (!res.ok) {
    io.err(`moor dict train: HTTP ${res.status}${text ? `: ${text}` : ''}`);
    return EXIT_FAIL;
  }
  io.out(text);
  return EXIT_OK;
}
