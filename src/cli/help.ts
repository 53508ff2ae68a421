/** Help texts; the config key list is rendered from the schema so it cannot drift. */
import { CONFIG_KEYS, type ConfigKey, specOf } from '../config/schema';
import { DICT_USAGE } from './dict';
import { PUSH_USAGE } from './push';

export const USAGE = `moor: a long-connection gateway for devices

usage: moor <command> [options]

commands:
  serve          run the gateway (a node:cluster primary and its workers)
  push           send a push through a running gateway's HTTP API
  token          mint a device JWT with the configured secret
  check-config   validate a config and print every error at once
  dict train     train a zstd dictionary from collected samples and install it

  moor <command> --help   options of one command
  moor --version          print the version`;

const CONFIG_OPTS = '[--config FILE] [--section.key=value ...]';

export const COMMAND_HELP: Readonly<Record<string, string>> = {
  serve: `usage: moor serve ${CONFIG_OPTS}

Runs the gateway. With no config it uses the defaults below; a JWT secret and an API key
are generated on first start, stored in store.path/secrets.json and printed once.
Config errors are all printed, and the exit code is 2.

${configKeysHelp()}`,
  'check-config': `usage: moor check-config ${CONFIG_OPTS}

Prints "config OK", or every error at once and exits 1.

${configKeysHelp()}`,
  push: `${PUSH_USAGE}

Sends POST /v1/push and prints the JSON answer. --url defaults to the configured
api.host:api.port, --key to api.keys or the generated key in store.path/secrets.json.
--ttl takes whole seconds (60s, 10m, 1h); --transient sends a live-only push.`,
  token: `usage: moor token --device ID [--ttl 1h] [--topics a,b] [--app X] ${CONFIG_OPTS}

Prints an HS256 device JWT (sub = ID, exp = now + ttl, optional topics and app claims),
signed with auth.jwt_secret or the secret kept in store.path/secrets.json.`,
  dict: `${DICT_USAGE}

Sends POST /v1/dicts: the gateway gathers every worker's push samples from the store,
trains a zstd dictionary off the event loop and installs it as the newest version (the
oldest beyond compression.dict_keep are retired, and deleted once no connected device
uses them). Prints the answer: id, size, samples, held-out ratios with and without it.
--url and --key default as for moor push; --max-bytes to compression.dict_bytes.`,
};

/** Every key: name, default, doc; then how to set it. */
export function configKeysHelp(): string {
  const rows = CONFIG_KEYS.map((key: ConfigKey) => {
    const spec = specOf(key);
    const d = spec.defaultText ?? (typeof spec.default === 'string' && spec.default === '' ? 'unset' : JSON.stringify(spec.default));
    return [key, d, spec.doc + (spec.live ? ' (reloads on SIGHUP)' : '')];
  });
  const w0 = Math.max(...rows.map((r) => r[0].length)) + 2;
  const w1 = Math.max(...rows.map((r) => r[1].length)) + 2;
  return `config keys (TOML \`[section] key = …\`, \`--section.key=value\` or MOOR_SECTION_KEY; later wins):
${rows.map(([k, d, doc]) => `  ${k.padEnd(w0)}${d.padEnd(w1)}${doc}`).join('\n')}`;
}
