/**
 * A config value that is PEM text rather than a path to a PEM file (`auth.jwt_public_key`
 * accepts both: an environment variable or a TOML string can carry the key itself).
 */
export function isPemText(value: string): boolean {
  return value.trimStart().startsWith('-----BEGIN ');
}
