/**
 * Free ports for listeners named before they bind (src/util/ports.ts): drawn from below
 * the kernel's ephemeral range, free on the host asked, with the offsets asked free too.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { canBind, ephemeralLow, freePort } from '../src/util/ports';

function listen(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

test('a free port is below the ephemeral range and bindable', async () => {
  const low = ephemeralLow();
  for (let i = 0; i < 20; i++) {
    const p = await freePort();
    assert.ok(p >= 10_000 && p < low, `${p} in [10000, ${low})`);
    assert.equal(await canBind(p), true);
  }
});

test('canBind says no for a port a listener holds', async () => {
  const srv = await listen(await freePort());
  const { port } = srv.address() as net.AddressInfo;
  try {
    assert.equal(await canBind(port), false);
  } finally {
    srv.close();
  }
});

test('the offsets asked for are free too, and stay below the ephemeral range', async () => {
  const offsets = [1, 2, 3];
  for (let i = 0; i < 10; i++) {
    const p = await freePort('127.0.0.1', offsets);
    assert.ok(p + 3 < ephemeralLow());
    for (const d of offsets) assert.equal(await canBind(p + d), true, `${p}+${d}`);
  }
});
