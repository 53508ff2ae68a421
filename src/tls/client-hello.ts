/**
 * Just enough of a TLS ClientHello (RFC 5246 §7.4.1.2, RFC 8446 §4.1.2) to see which
 * session tickets it offers: TLS 1.2's session_ticket extension (35) and TLS 1.3's
 * pre_shared_key identities (41). With node:tls (OpenSSL) a ticket begins with the
 * 16-byte name of the key that made it, in clear (RFC 5077 §4's recommended layout),
 * which is what tcp.ts routes on. Nothing here decrypts or trusts anything: a wrong
 * guess only costs a full handshake, and OpenSSL parses the hello again for real.
 */

/** The record layer: content type handshake. */
const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXT_SESSION_TICKET = 35;
const EXT_PRE_SHARED_KEY = 41;
/** A ClientHello larger than this is handed to OpenSSL unread (routed to the current key). */
export const MAX_SNIFF_BYTES = 16 * 1024;

export type HelloScan =
  /** Not enough bytes yet. */
  | { kind: 'more' }
  /** The first byte is not a TLS handshake record: a plaintext client. */
  | { kind: 'not-tls' }
  /** A ClientHello; `names` are the key names (16 bytes each) of the tickets offered, best first. */
  | { kind: 'hello'; names: Buffer[] }
  /** Something else or malformed: OpenSSL will say what (and fail the handshake). */
  | { kind: 'opaque' };

/** Reads the handshake bytes out of the TLS records in `buf` (a hello may span records). */
function handshakeBytes(buf: Buffer): Buffer | null | 'opaque' {
  const parts: Buffer[] = [];
  let have = 0;
  let need = -1;
  let p = 0;
  while (p + 5 <= buf.length) {
    if (buf[p] !== RECORD_HANDSHAKE) return 'opaque';
    const len = buf.readUInt16BE(p + 3);
    if (len === 0 || len > 16_384 + 2048) return 'opaque';
    if (p + 5 + len > buf.length) break;
    parts.push(buf.subarray(p + 5, p + 5 + len));
    have += len;
    p += 5 + len;
    if (need < 0 && have >= 4) {
      const first = parts.length === 1 ? parts[0] : Buffer.concat(parts);
      if (first[0] !== HANDSHAKE_CLIENT_HELLO) return 'opaque';
      need = 4 + first.readUIntBE(1, 3);
    }
    if (need >= 0 && have >= need) return (parts.length === 1 ? parts[0] : Buffer.concat(parts)).subarray(0, need);
  }
  return null;
}

export function scanClientHello(buf: Buffer): HelloScan {
  if (buf.length === 0) return { kind: 'more' };
  if (buf[0] !== RECORD_HANDSHAKE) return { kind: 'not-tls' };
  const hs = handshakeBytes(buf);
  if (hs === 'opaque') return { kind: 'opaque' };
  if (hs === null) return buf.length >= MAX_SNIFF_BYTES ? { kind: 'opaque' } : { kind: 'more' };
  try {
    return { kind: 'hello', names: ticketNames(hs) };
  } catch {
    return { kind: 'opaque' };
  }
}

/** Throws RangeError (from Buffer reads) on a truncated hello. */
function ticketNames(hs: Buffer): Buffer[] {
  let p = 4 + 2 + 32; // handshake header, legacy_version, random
  p += 1 + hs[p]; // legacy_session_id
  p += 2 + hs.readUInt16BE(p); // cipher_suites
  p += 1 + hs[p]; // legacy_compression_methods
  if (p >= hs.length) return []; // no extensions
  const end = p + 2 + hs.readUInt16BE(p);
  if (end > hs.length) throw new RangeError('extensions overrun the hello');
  p += 2;
  const names: Buffer[] = [];
  while (p + 4 <= end) {
    const type = hs.readUInt16BE(p);
    const len = hs.readUInt16BE(p + 2);
    const data = hs.subarray(p + 4, p + 4 + len);
    if (data.length !== len) throw new RangeError('extension overruns the hello');
    if (type === EXT_PRE_SHARED_KEY) {
      // identities<7..2^16-1>: { opaque identity<1..2^16-1>; uint32 obfuscated_ticket_age }
      const idEnd = 2 + data.readUInt16BE(0);
      let q = 2;
      while (q + 2 <= idEnd) {
        const n = data.readUInt16BE(q);
        if (n >= 16) names.push(data.subarray(q + 2, q + 2 + 16));
        q += 2 + n + 4;
      }
    } else if (type === EXT_SESSION_TICKET && len >= 16) {
      names.push(data.subarray(0, 16));
    }
    p += 4 + len;
  }
  return names;
}
