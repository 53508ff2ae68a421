/**
 * The embedded store's device record, in a compact binary form. Every HELLO writes one,
 * and the pages lmdb touches for them count in the worker's RSS (docs/memory.md): as
 * JSON a record was ~170 bytes, this is ~25 plus the node id and carrier.
 *
 * u8 format (2), u48 firstSeenMs, u48 connectedAtMs, u8 network kind, u32 heartbeatMs,
 * u16 worker, u8 len + utf8 node, u16 len + utf8 carrier.
 * Records written before this format (JSON, first byte `{`) still decode.
 */
import type { DeviceRecord } from './store';

const FORMAT = 2;
const FIXED = 1 + 6 + 6 + 1 + 4 + 2 + 1 + 2;
const MAX_U48 = 2 ** 48 - 1;
/** A carrier name is device input: longer ones are cut (at a UTF-8 boundary) rather than refused. */
const MAX_CARRIER_BYTES = 256;
const MAX_NODE_BYTES = 255;

function clampedUtf8(s: string, max: number): Buffer {
  const b = Buffer.from(s, 'utf8');
  if (b.length <= max) return b;
  let end = max;
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

function checkRange(name: string, n: number, max: number): void {
  if (!Number.isSafeInteger(n) || n < 0 || n > max) throw new RangeError(`device record ${name} must be an integer in 0..${max}, got ${n}`);
}

export function encodeDeviceRecord(rec: DeviceRecord): Buffer {
  checkRange('firstSeenMs', rec.firstSeenMs, MAX_U48);
  checkRange('connectedAtMs', rec.connectedAtMs, MAX_U48);
  checkRange('network.kind', rec.network.kind, 255);
  // The heartbeat policy computes intervals in floating point; whole milliseconds are kept.
  const heartbeatMs = Math.round(rec.heartbeatMs);
  checkRange('heartbeatMs', heartbeatMs, 0xffff_ffff);
  checkRange('worker', rec.worker, 0xffff);
  const node = Buffer.from(rec.node, 'utf8');
  if (node.length > MAX_NODE_BYTES) throw new RangeError(`device record node id must be at most ${MAX_NODE_BYTES} UTF-8 bytes`);
  const carrier = clampedUtf8(rec.network.carrier, MAX_CARRIER_BYTES);
  const b = Buffer.allocUnsafe(FIXED + node.length + carrier.length);
  let o = b.writeUInt8(FORMAT, 0);
  o = b.writeUIntBE(rec.firstSeenMs, o, 6);
  o = b.writeUIntBE(rec.connectedAtMs, o, 6);
  o = b.writeUInt8(rec.network.kind, o);
  o = b.writeUInt32BE(heartbeatMs, o);
  o = b.writeUInt16BE(rec.worker, o);
  o = b.writeUInt8(node.length, o);
  o += node.copy(b, o);
  o = b.writeUInt16BE(carrier.length, o);
  carrier.copy(b, o);
  return b;
}

export function decodeDeviceRecord(deviceId: string, b: Buffer): DeviceRecord {
  if (b[0] === 0x7b) return JSON.parse(b.toString('utf8')) as DeviceRecord;
  if (b[0] !== FORMAT || b.length < FIXED) throw new Error(`device record of ${JSON.stringify(deviceId)}: unreadable (format ${b[0]}, ${b.length} bytes)`);
  let o = 1;
  const firstSeenMs = b.readUIntBE(o, 6);
  const connectedAtMs = b.readUIntBE((o += 6), 6);
  const kind = b.readUInt8((o += 6));
  const heartbeatMs = b.readUInt32BE((o += 1));
  const worker = b.readUInt16BE((o += 4));
  const nodeLen = b.readUInt8((o += 2));
  const node = b.toString('utf8', (o += 1), (o += nodeLen));
  const carrierLen = b.readUInt16BE(o);
  const carrier = b.toString('utf8', (o += 2), o + carrierLen);
  return { deviceId, firstSeenMs, connectedAtMs, network: { kind, carrier }, heartbeatMs, node, worker };
}
