/** Listener and advertised addresses. */

/** An address that listens on every interface ("0.0.0.0", "::"). */
export function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

/** `host:port`, with an IPv6 address in brackets ("[2001:db8::1]:8080"). */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
}
