/** What every command shares: its I/O, loading the config, showing generated secrets. */
import { ConfigError, formatIssues } from '../config/errors';
import { type LoadOptions, loadConfig } from '../config/load';
import type { GeneratedSecrets } from '../config/secrets';
import type { Config } from '../config/types';
import { type ParsedArgs, str } from './args';

/** Exit codes: 0 ok, 1 the operation failed, 2 the command line or config is wrong. */
export const EXIT_OK = 0;
export const EXIT_FAIL = 1;
export const EXIT_USAGE = 2;

export interface Io {
  out(text: string): void;
  err(text: string): void;
  env: Readonly<Record<string, string | undefined>>;
}

export const processIo: Io = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  env: process.env,
};

/** The config from --config, MOOR_* and --key=value, or undefined after printing every error. */
export function loadOrReport(args: ParsedArgs, io: Io, command: string): Config | undefined {
  try {
    return loadConfig(loadOptions(args, io, command));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const n = err.errors.length;
    io.err(`moor ${command}: ${n} config error${n === 1 ? '' : 's'}:\n${formatIssues(err.errors)}`);
    return undefined;
  }
}

/** Where a command's config comes from: --config, its config flags, the environment. */
export function loadOptions(args: ParsedArgs, io: Io, command: string): LoadOptions {
  return {
    file: str(args, 'config'),
    args: args.configArgs,
    env: io.env,
    warn: (m) => io.err(`moor ${command}: warning: ${m}`),
  };
}

/** Shown once, by whichever command generated them; afterwards they live only in the file. */
export function reportGenerated(generated: GeneratedSecrets, file: string, io: Io): void {
  const lines: string[] = [];
  if (generated.jwtSecret) lines.push(`  auth.jwt_secret = ${generated.jwtSecret}`);
  if (generated.apiKey) lines.push(`  api key         = ${generated.apiKey}`);
  if (lines.length === 0) return;
  io.err(
    `moor: generated secrets, stored in ${file} (mode 0600); shown only this once:\n${lines.join('\n')}\n` +
      '  (moor token and moor push read them from that file; set auth.jwt_secret / api.keys to choose your own)',
  );
}
