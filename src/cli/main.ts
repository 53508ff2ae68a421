/**
 * The `moor` command line (bin/moor.js → main). Commands and flags are the contract of
 * shared/api.md. Exit codes: 0 ok, 1 failed, 2 bad command line or config.
 */
import cluster from 'node:cluster';
import fs from 'node:fs';
import path from 'node:path';
import { suggestion } from '../config/errors';
import { loadConfig } from '../config/load';
import { type GeneratedSecrets, resolveSecrets } from '../config/secrets';
import type { Config } from '../config/types';
import { parseArgs } from './args';
import { EXIT_FAIL, EXIT_OK, EXIT_USAGE, type Io, loadOptions, loadOrReport, processIo } from './common';
import { dictCommand } from './dict';
import { COMMAND_HELP, USAGE } from './help';
import { pushCommand } from './push';
import { tokenCommand } from './token';

const COMMANDS = ['serve', 'push', 'token', 'check-config', 'dict'];
const CONFIG_FLAGS = { config: 'string', help: 'boolean' } as const;

/** Runs the command and sets process.exitCode (bin/moor.js does not await). */
export async function main(argv: string[]): Promise<void> {
  try {
    process.exitCode = await run(argv, processIo);
  } catch (err) {
    process.stderr.write(`moor: ${(err as Error).stack ?? err}\n`);
    process.exitCode = EXIT_FAIL;
  }
}

/** The command's exit code; all output goes through `io` (tests capture it). */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    if (command === undefined) {
      io.err(USAGE);
      return EXIT_USAGE;
    }
    const topic = command === 'help' ? rest[0] : undefined;
    io.out(topic !== undefined && COMMAND_HELP[topic] ? COMMAND_HELP[topic] : USAGE);
    return EXIT_OK;
  }
  if (command === '--version' || command === '-v') {
    io.out(version());
    return EXIT_OK;
  }
  if (!COMMANDS.includes(command)) {
    const hint = suggestion(command, COMMANDS);
    io.err(`moor: unknown command ${JSON.stringify(command)}${hint ? `; ${hint}` : ''}\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(COMMAND_HELP[command]);
    return EXIT_OK;
  }
  switch (command) {
    case 'serve':
      return serve(rest, io);
    case 'check-config':
      return checkConfigCommand(rest, io);
    case 'push':
      return pushCommand(rest, io);
    case 'token':
      return tokenCommand(rest, io);
    default:
      return dictCommand(rest, io);
  }
}

function usageErrors(command: string, errors: string[], positionals: string[], io: Io): boolean {
  const all = [...errors, ...positionals.map((p) => `unexpected argument ${p}`)];
  if (all.length === 0) return false;
  io.err(`moor ${command}: ${all.join('\n  ')}\n(see moor ${command} --help)`);
  return true;
}

async function checkConfigCommand(argv: readonly string[], io: Io): Promise<number> {
  const args = parseArgs(argv, CONFIG_FLAGS);
  if (usageErrors('check-config', args.errors, args.positionals, io)) return EXIT_USAGE;
  if (loadOrReport(args, io, 'check-config') === undefined) return EXIT_FAIL;
  io.out('config OK');
  return EXIT_OK;
}

type RunPrimary = (config: Config, generated: GeneratedSecrets, opts: { reload: () => Config }) => Promise<void>;

async function serve(argv: readonly string[], io: Io): Promise<number> {
  // cluster.fork() re-runs this script unless the primary points workers elsewhere;
  // running serve again inside a worker would fork forever.
  if (!cluster.isPrimary) {
    io.err('moor serve: started inside a cluster worker; the primary must fork with cluster.setupPrimary({ exec })');
    return EXIT_FAIL;
  }
  const args = parseArgs(argv, CONFIG_FLAGS);
  if (usageErrors('serve', args.errors, args.positionals, io)) return EXIT_USAGE;
  const loaded = loadOrReport(args, io, 'serve');
  if (loaded === undefined) return EXIT_USAGE;
  let resolved: ReturnType<typeof resolveSecrets>;
  try {
    resolved = resolveSecrets(loaded, (m) => io.err(`moor serve: warning: ${m}`));
  } catch (err) {
    io.err(`moor serve: ${(err as Error).message}`);
    return EXIT_FAIL;
  }
  // runPrimary prints the generated secrets once and sets up logging.
  const { config } = resolved;
  // Loaded lazily: the CLI's other commands must not pay for (or depend on) the runtime.
  let runPrimary: RunPrimary;
  try {
    ({ runPrimary } = require('../cluster/primary') as { runPrimary: RunPrimary });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code !== 'MODULE_NOT_FOUND' || !e.message.includes('cluster/primary')) throw err;
    io.err('moor serve: this build has no gateway runtime (src/cluster/primary.ts is missing)');
    return EXIT_FAIL;
  }
  // SIGHUP re-reads the same file, flags and environment; errors are thrown for the primary to log.
  const options = loadOptions(args, io, 'serve');
  const reload = (): Config => resolveSecrets(loadConfig(options), options.warn).config;
  await runPrimary(config, resolved.generated, { reload });
  return EXIT_OK;
}

/** package.json's version, found by walking up from this file (src/ or dist/src/). */
function version(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
    if (path.dirname(dir) === dir) return 'unknown';
  }
}
