/**
 * The gateway under worker failure, and the client library against the real
 * gateway: `kill -9` of a worker is restarted by the primary, its devices come
 * back, and no push that was answered 202 is lost.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MoorClient } from '../src/client';
import type { moor } from '../src/protocol/generated/moor';
import { type Gateway, startGateway } from './helpers/gateway';
import { until } from './helpers/until';

let gw: Gateway;
before(async () => {
  gw = await startGateway();
});
after(async () => {
  await gw?.stop();
});

function client(id: string, transport: 'ws' | 'tcp'): { c: MoorClient; pushes: moor.v1.Push[] } {
  const c = new MoorClient({
    transport,
    ...(transport === 'ws' ? { url: gw.wsUrl } : { host: '127.0.0.1', port: gw.tcpPort }),
    deviceId: id,
    token: () => gw.token(id),
    reconnect: { baseMs: 50, maxMs: 500 },
  });
  const pushes: moor.v1.Push[] = [];
  c.on('push', (p) => pushes.push(p));
  return { c, pushes };
}

describe('client library against the real gateway', () => {
  it('connects, receives and ACKs pushes, and sees nothing twice after reconnecting', async () => {
    const { c, pushes } = client('lib-1', 'tcp');
    await c.connect();
    for (let i = 0; i < 3; i++) assert.equal((await gw.api('POST', '/v1/push', { device_id: 'lib-1', body: `n${i}` })).status, 202);
    await until(() => pushes.length === 3, 5000, 'three pushes');
    assert.deepEqual(pushes.map((p) => p.seq), [1, 2, 3]);
    await until(() => c.lastSeq === 3, 2000, 'lastSeq 3');
    await until(async () => (await gw.api('GET', '/v1/devices/lib-1')).body.acked_seq === 3, 5000, 'the client library to ACK up to 3');
    await c.close();
  });
});

describe('worker failure', () => {
  it('kill -9 of a worker: it is restarted, its devices reconnect, no 202 push is lost', async () => {
    const devices = Array.from({ length: 12 }, (_, i) => ({ id: `crash-${i}`, ...client(`crash-${i}`, i % 2 ? 'ws' : 'tcp') }));
    await Promise.all(devices.map((d) => d.c.connect()));
    const pids = gw.workerPids();
    assert.equal(pids.size, 2);
    const victim = pids.get(0) as number;
    const accepted = new Map<string, number[]>();
    const pushAll = async (tag: string) => {
      for (const d of devices) {
        // A backend retries a push whose connection broke; the idempotency id makes that safe.
        const push = { device_id: d.id, body: `${tag}-${d.id}`, id: `${tag}-${d.id}` };
        let r: Awaited<ReturnType<Gateway['api']>> | null = null;
        for (let attempt = 0; r === null; attempt++) {
          try {
            r = await gw.api('POST', '/v1/push', push);
          } catch (err) {
            if (attempt >= 5) throw err;
            await new Promise((res) => setTimeout(res, 100));
          }
        }
        if (r.status === 202) accepted.set(d.id, [...(accepted.get(d.id) ?? []), ...(r.body.seqs as number[])]);
        else assert.ok([503].includes(r.status), `push answered ${r.status}: ${JSON.stringify(r.body)}`);
      }
    };
    await pushAll('before');
    process.kill(victim, 'SIGKILL');
    await pushAll('during');
    await gw.waitForLog((l) => l.msg === 'worker back', 20_000);
    await pushAll('after');
    for (const d of devices) {
      const want = accepted.get(d.id) ?? [];
      await until(() => want.every((seq) => d.pushes.some((p) => p.seq === seq)), 15_000, `every accepted push for ${d.id}`);
    }
    const newPid = gw.workerPids().get(0);
    assert.notEqual(newPid, victim, 'worker 0 was restarted with a new pid');
    await Promise.all(devices.map((d) => d.c.close()));
  });
});
