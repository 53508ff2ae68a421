/** `moor token`: mints an HS256 device JWT with the gateway's secret (for tests and demos). */
import { SignJWT } from 'jose';
import { splitList } from '../config/load';
import { resolveSecrets } from '../config/secrets';
import { parseDuration } from '../util/duration';
import { parseArgs, str } from './args';
import { EXIT_FAIL, EXIT_OK, EXIT_USAGE, type Io, loadOrReport, reportGenerated } from './common';

export interface DeviceTokenOptions {
  /** auth.jwt_secret; its UTF-8 bytes are the HS256 key (api.md). */
  secret: string;
  device: string;
  ttlMs: number;
  topics?: string[];
  app?: string;
  nowMs?: number;
}

/** A JWT the gateway accepts for `device`: sub, iat, exp, and optional topics/app claims. */
export function mintDeviceToken(opts: DeviceTokenOptions): Promise<string> {
  const now = Math.floor((opts.nowMs ?? Date.now()) / 1000);
  const claims: Record<string, unknown> = {};
  if (opts.topics !== undefined) claims.topics = opts.topics;
  if (opts.app !== undefined) claims.app = opts.app;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(opts.device)
    .setIssuedAt(now)
    .setExpirationTime(now + Math.ceil(opts.ttlMs / 1000))
    .sign(new TextEncoder().encode(opts.secret));
}

export const TOKEN_FLAGS = { device: 'string', ttl: 'string', topics: 'string', app: 'string', config: 'string', help: 'boolean' } as const;

export async function tokenCommand(argv: readonly string[], io: Io): Promise<number> {
  const args = parseArgs(argv, TOKEN_FLAGS);
  const device = str(args, 'device');
  let ttlMs = 0;
  try {
    ttlMs = parseDuration(str(args, 'ttl') ?? '1h');
    if (ttlMs < 1000) args.errors.push('--ttl must be at least 1s');
  } catch (err) {
    args.errors.push(`--ttl: ${(err as Error).message}`);
  }
  if (device === undefined || device === '') args.errors.push('--device ID is required');
  for (const p of args.positionals) args.errors.push(`unexpected argument ${p}`);
  if (args.errors.length > 0) {
    io.err(`moor token: ${args.errors.join('\n  ')}\nusage: moor token --device ID [--ttl 1h] [--topics a,b] [--app X] [--config FILE]`);
    return EXIT_USAGE;
  }
  const loaded = loadOrReport(args, io, 'token');
  if (loaded === undefined) return EXIT_USAGE;
  if (loaded.auth.jwt_secret === '' && loaded.auth.jwt_public_key !== '') {
    io.err(
      'moor token: this gateway verifies ES256 tokens with auth.jwt_public_key; moor token mints HS256 only.\n' +
        '  sign tokens with your private key, or also set auth.jwt_secret',
    );
    return EXIT_FAIL;
  }
  // A configured secret is all a token needs: nothing is read or written under store.path.
  // Without one, the gateway's own (store.path/secrets.json) is used, made first if need be.
  let secret = loaded.auth.jwt_secret;
  if (secret === '') {
    try {
      const resolved = resolveSecrets(loaded, (m) => io.err(`moor token: warning: ${m}`));
      reportGenerated(resolved.generated, resolved.file, io);
      secret = resolved.config.auth.jwt_secret;
    } catch (err) {
      io.err(`moor token: ${(err as Error).message}`);
      return EXIT_FAIL;
    }
  }
  const topics = str(args, 'topics');
  const token = await mintDeviceToken({
    secret,
    device: device!,
    ttlMs,
    topics: topics === undefined ? undefined : splitList(topics),
    app: str(args, 'app'),
  });
  io.out(token);
  return EXIT_OK;
}
