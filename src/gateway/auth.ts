/**
 * Device token verification (protocol.md §5 Identity): a JWT, HS256 keyed with the
 * secret's UTF-8 bytes or ES256 with a PEM public key, whose `sub` is the device id
 * and which carries `exp`. jose verifies through WebCrypto, whose signature work
 * runs on libuv's thread pool, so the event loop never blocks on it.
 */
import { createSecretKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { importSPKI, type JWTPayload, jwtVerify, type KeyLike } from 'jose';
import { isPemText } from '../util/pem';

export interface DeviceClaims {
  app: string;
  topics: string[];
  expMs: number;
}

export class AuthError extends Error {
  readonly code = 'AUTH_FAILED' as const;
}

export class TokenVerifier {
  private constructor(
    private readonly hmac: KeyObject | null,
    private readonly ec: KeyLike | null,
  ) {}

  static async create(opts: { jwtSecret: string; jwtPublicKey: string }): Promise<TokenVerifier> {
    // One key object for every token: given raw bytes, jose would build one per verification
    // (seen in a reconnect storm's CPU profile).
    const hmac = opts.jwtSecret ? createSecretKey(Buffer.from(opts.jwtSecret, 'utf8')) : null;
    let ec: KeyLike | null = null;
    if (opts.jwtPublicKey) {
      const pem = isPemText(opts.jwtPublicKey) ? opts.jwtPublicKey : readFileSync(opts.jwtPublicKey, 'utf8');
      ec = await importSPKI(pem, 'ES256');
    }
    if (!hmac && !ec) throw new Error('auth: neither auth.jwt_secret nor auth.jwt_public_key is set');
    return new TokenVerifier(hmac, ec);
  }

  async verify(token: string, deviceId: string): Promise<DeviceClaims> {
    if (!token) throw new AuthError('missing token');
    let payload: JWTPayload;
    try {
      const r = await jwtVerify(token, (header) => this.keyFor(header.alg), { requiredClaims: ['exp', 'sub'] });
      payload = r.payload;
    } catch (err) {
      throw new AuthError(describe(err));
    }
    if (payload.sub !== deviceId) throw new AuthError('token sub does not match device_id');
    const topics = Array.isArray(payload.topics) ? payload.topics.filter((t): t is string => typeof t === 'string' && t.length > 0) : [];
    return { app: typeof payload.app === 'string' ? payload.app : '', topics, expMs: (payload.exp ?? 0) * 1000 };
  }

  private keyFor(alg: string | undefined): KeyLike {
    if (alg === 'HS256' && this.hmac) return this.hmac;
    if (alg === 'ES256' && this.ec) return this.ec;
    throw new AuthError(`token algorithm ${alg ?? 'none'} is not accepted`);
  }
}

function describe(err: unknown): string {
  if (err instanceof AuthError) return err.message;
  const code = (err as { code?: string }).code;
  if (code === 'ERR_JWT_EXPIRED') return 'token expired';
  if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') return 'bad token signature';
  if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') return `token claim check failed: ${(err as Error).message}`;
  return 'malformed token';
}
