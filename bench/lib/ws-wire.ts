/**
 * Just enough of RFC 6455 for a lean bench client on raw `net` sockets: the upgrade
 * request, masked binary frames, and a parser for the server's unmasked frames.
 * No extensions, no fragmentation (neither server here fragments small messages).
 */
import { createHmac, randomBytes } from 'node:crypto';

export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;

/** One fixed key for every socket: the client never checks Sec-WebSocket-Accept. */
const KEY = 'bW9vci1iZW5jaC1pZGxlIQ==';

export function upgradeRequest(host: string, port: number, path: string, subprotocol: string): Buffer {
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: ${host}:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${KEY}`,
    'Sec-WebSocket-Version: 13',
  ];
  if (subprotocol) lines.push(`Sec-WebSocket-Protocol: ${subprotocol}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

/** A masked client frame (FIN set) carrying `payload`. */
export function maskedFrame(opcode: number, payload: Uint8Array, mask: Buffer = randomBytes(4)): Buffer {
  const n = payload.length;
  const ext = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const out = Buffer.allocUnsafe(2 + ext + 4 + n);
  out[0] = 0x80 | opcode;
  if (ext === 0) out[1] = 0x80 | n;
  else if (ext === 2) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(n, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(n), 2);
  }
  const at = 2 + ext;
  mask.copy(out, at, 0, 4);
  for (let i = 0; i < n; i++) out[at + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

/**
 * Parses the server frames in `buf`, calling `onFrame(opcode, payload)` for each whole
 * one; returns the unparsed tail (a partial frame), or null when nothing is left.
 */
export function parseFrames(buf: Buffer, onFrame: (opcode: number, payload: Buffer) => void): Buffer | null {
  let off = 0;
  while (buf.length - off >= 2) {
    const b1 = buf[off + 1] & 0x7f;
    let head = 2;
    let len = b1;
    if (b1 === 126) {
      if (buf.length - off < 4) break;
      len = buf.readUInt16BE(off + 2);
      head = 4;
    } else if (b1 === 127) {
      if (buf.length - off < 10) break;
      len = Number(buf.readBigUInt64BE(off + 2));
      head = 10;
    }
    if (buf.length - off < head + len) break;
    onFrame(buf[off] & 0x0f, buf.subarray(off + head, off + head + len));
    off += head + len;
  }
  return off === buf.length ? null : buf.subarray(off);
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

const JWT_HEAD = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));

/** An HS256 device token (protocol.md §5: sub = device id, with exp), minted without jose. */
export function mintToken(secret: string, deviceId: string, expS: number): string {
  const body = `${JWT_HEAD}.${b64url(JSON.stringify({ sub: deviceId, exp: expS }))}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}
