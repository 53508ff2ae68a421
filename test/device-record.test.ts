import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { decodeDeviceRecord, encodeDeviceRecord } from '../src/store/device-record';
import type { DeviceRecord } from '../src/store/store';

const rec: DeviceRecord = {
  deviceId: 'dev-1',
  firstSeenMs: 1_700_000_000_000,
  connectedAtMs: 1_700_000_123_456,
  network: { kind: 2, carrier: 'T-Mobile' },
  heartbeatMs: 270_000,
  node: 'gw-eu-1',
  worker: 3,
};

describe('device record encoding', () => {
  test('round trips, and is far smaller than the JSON it replaces', () => {
    const b = encodeDeviceRecord(rec);
    assert.deepEqual(decodeDeviceRecord('dev-1', b), rec);
    assert.ok(b.length < JSON.stringify(rec).length / 3, `${b.length} bytes`);
  });

  test('any valid record round trips', () => {
    fc.assert(
      fc.property(
        fc.record({
          firstSeenMs: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
          connectedAtMs: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
          kind: fc.integer({ min: 0, max: 255 }),
          carrier: fc.string({ maxLength: 64 }),
          heartbeatMs: fc.integer({ min: 0, max: 0xffff_ffff }),
          node: fc.string({ maxLength: 60 }),
          worker: fc.integer({ min: 0, max: 0xffff }),
        }),
        (r) => {
          const want: DeviceRecord = { deviceId: 'x', firstSeenMs: r.firstSeenMs, connectedAtMs: r.connectedAtMs, network: { kind: r.kind, carrier: r.carrier }, heartbeatMs: r.heartbeatMs, node: r.node, worker: r.worker };
          assert.deepEqual(decodeDeviceRecord('x', encodeDeviceRecord(want)), want);
        },
      ),
    );
  });

  test('records stored as JSON by earlier versions still decode', () => {
    assert.deepEqual(decodeDeviceRecord('dev-1', Buffer.from(JSON.stringify(rec))), rec);
  });

  test('a long carrier name is cut at a UTF-8 boundary, not refused', () => {
    const carrier = 'é'.repeat(200); // 400 bytes
    const got = decodeDeviceRecord('d', encodeDeviceRecord({ ...rec, network: { kind: 1, carrier } }));
    assert.equal(got.network.carrier, 'é'.repeat(128));
  });

  test('a fractional heartbeat is kept in whole milliseconds', () => {
    assert.equal(decodeDeviceRecord('d', encodeDeviceRecord({ ...rec, heartbeatMs: 1234.6 })).heartbeatMs, 1235);
  });

  test('out-of-range fields and unknown formats are clear errors', () => {
    assert.throws(() => encodeDeviceRecord({ ...rec, worker: 70_000 }), /worker must be an integer in 0\.\.65535/);
    assert.throws(() => encodeDeviceRecord({ ...rec, firstSeenMs: -1 }), /firstSeenMs/);
    assert.throws(() => encodeDeviceRecord({ ...rec, node: 'n'.repeat(256) }), /node id/);
    assert.throws(() => decodeDeviceRecord('d', Buffer.from([9, 0, 0])), /unreadable \(format 9, 3 bytes\)/);
    assert.throws(() => decodeDeviceRecord('d', Buffer.from([2, 0, 0])), /unreadable \(format 2, 3 bytes\)/);
  });
});
