/**
 * What the CLI commands that call the local gateway's HTTP API share: where it listens,
 * which key to use (flags first, then the config, then the generated secrets), one POST,
 * and errors an operator can act on.
 */
import { readSecrets } from '../config/secrets';
import type { Config } from '../config/types';
import { type ParsedArgs, str } from './args';
import { EXIT_FAIL, EXIT_OK, EXIT_USAGE, type Io, loadOrReport } from './common';

/** Where the local gateway's API listens, as a client should dial it. */
export function apiUrlOf(config: Config): string {
  const { host, port } = config.api;
  const dial = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${dial.includes(':') ? `[${dial}]` : dial}:${port}`;
}

/**
 * POST `body` as JSON to `path` of the API named by --url/--key or the config; prints the
 * answer. `command` names the command in messages ("push", "dict train").
 */
export async function postToApi(args: ParsedArgs, io: Io, command: string, path: string, body: unknown, timeoutMs: number): Promise<number> {
  let url = str(args, 'url');
  let key = str(args, 'key');
  // Only read the config for what the flags leave open, so --url and --key work anywhere.
  if (url === undefined || key === undefined) {
    const config = loadOrReport(args, io, command);
    if (config === undefined) return EXIT_USAGE;
    if (url === undefined) {
      if (config.api.port === 0) {
        io.err(`moor ${command}: api.port is 0 (a free port chosen at start); pass --url`);
        return EXIT_USAGE;
      }
      url = apiUrlOf(config);
    }
    if (key === undefined) {
      try {
        key = config.api.keys[0] ?? readSecrets(config).api_key;
      } catch (err) {
        io.err(`moor ${command}: ${(err as Error).message}`);
        return EXIT_FAIL;
      }
      if (key === undefined) {
        io.err(`moor ${command}: no API key: pass --key, set api.keys, or run from where \`moor serve\` keeps store.path/secrets.json`);
        return EXIT_USAGE;
      }
    }
  }
  const endpoint = `${url.replace(/\/+$/, '')}${path}`;
  let res: Response;
  try {
    res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    io.err(`moor ${command}: cannot reach ${endpoint}: ${why}${why === 'ECONNREFUSED' ? ' (is `moor serve` running?)' : ''}`);
    return EXIT_FAIL;
  }
  const text = (await res.text()).trim();
  if (!res.ok) {
    io.err(`moor ${command}: HTTP ${res.status}${text ? `: ${text}` : ''}`);
    return EXIT_FAIL;
  }
  io.out(text);
  return EXIT_OK;
}
