/**
 * Command-line flags of one command. Flags the command does not own (`--ws.port=1`,
 * `--workers 2`) are passed through untouched for loadConfig, which knows the config keys.
 */
import { didYouMean } from '../config/errors';
import { isConfigKey } from '../config/load';

/** 'string' flags take a value (`--x=v` or `--x v`); 'boolean' flags take none. */
export type FlagSpec = Readonly<Record<string, 'string' | 'boolean'>>;

export interface ParsedArgs {
  flags: Record<string, string | true>;
  /** Config overrides, in their original tokens, for loadConfig's `args`. */
  configArgs: string[];
  positionals: string[];
  errors: string[];
}

export function parseArgs(argv: readonly string[], spec: FlagSpec): ParsedArgs {
  const out: ParsedArgs = { flags: {}, configArgs: [], positionals: [], errors: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--') || arg === '--') {
      out.positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    const inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
    const takesNext = inline === undefined && i + 1 < argv.length && !argv[i + 1].startsWith('--');
    const kind = spec[name];
    if (kind === 'boolean') {
      if (inline !== undefined) out.errors.push(`--${name} takes no value`);
      else out.flags[name] = true;
    } else if (kind === 'string') {
      const value = inline ?? (takesNext ? argv[++i] : undefined);
      if (value === undefined) out.errors.push(`--${name} needs a value`);
      else out.flags[name] = value;
    } else {
      // Near one of the command's own flags: a typo of it. Anything else is a config key
      // (valid or not): loadConfig reports it with the other config errors.
      const near = isConfigKey(name) ? [] : didYouMean(name, Object.keys(spec));
      if (near.length > 0 && !name.includes('.')) {
        out.errors.push(`unknown option --${name} (did you mean ${near.map((k) => `--${k}`).join(' or ')}?)`);
        if (takesNext) i++;
      } else {
        out.configArgs.push(arg);
        if (takesNext) out.configArgs.push(argv[++i]);
      }
    }
  }
  return out;
}

/** A flag's string value (booleans never reach here: the spec says which is which). */
export function str(args: ParsedArgs, name: string): string | undefined {
  const v = args.flags[name];
  return typeof v === 'string' ? v : undefined;
}
