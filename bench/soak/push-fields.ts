/**
 * The two fields a soak client needs from a PUSH payload (protocol.md §4 `Push`): `seq`
 * (field 1) and `body` (field 4), read straight from the protobuf bytes. A lean client
 * skips the id and topic strings instead of building a message object for every push:
 * on this 2-core machine the clients share the CPU with the gateway, and the bare uWS.js
 * clients it is compared with look at one byte per message.
 */

export interface PushFields {
  seq: number;
  body: Buffer;
}

/** `seq` and `body` of a PUSH payload, or null when the payload is not valid protobuf. */
export function pushFields(p: Buffer): PushFields | null {
  let seq = 0;
  let body: Buffer = EMPTY;
  let off = 0;
  while (off < p.length) {
    const tag = varint(p, off);
    if (tag < 0) return null;
    off = next;
    const field = Math.floor(tag / 8);
    switch (tag % 8) {
      case 0: {
        const v = varint(p, off);
        if (v < 0) return null;
        off = next;
        if (field === 1) seq = v;
        break;
      }
      case 1:
        off += 8;
        break;
      case 2: {
        const len = varint(p, off);
        if (len < 0 || next + len > p.length) return null;
        if (field === 4) body = p.subarray(next, next + len);
        off = next + len;
        break;
      }
      case 5:
        off += 4;
        break;
      default:
        return null;
    }
  }
  return off === p.length ? { seq, body } : null;
}

const EMPTY = Buffer.alloc(0);

/** Where the last varint read ended (one object per push is what this reader avoids). */
let next = 0;

/**
 * The base-128 varint at `off`, its end in `next`; -1 if it is cut short or longer than
 * 10 bytes. Values past 2^53 lose precision, as Number(uint64) does.
 */
function varint(p: Buffer, off: number): number {
  let value = 0;
  let scale = 1;
  for (let i = off; i < p.length && i < off + 10; i++) {
    const b = p[i];
    value += (b & 0x7f) * scale;
    if (b < 0x80) {
      next = i + 1;
      return value;
    }
    scale *= 128;
  }
  return -1;
}
