/**
 * TLS session resumption against the real gateway (2 workers), TLS 1.2 and 1.3:
 * raw TCP tickets resume on every worker (keys from the primary), across a restart
 * (generated keys kept in store.path) and after one rotation but not two; WebSocket
 * tickets resume on the worker that made them, through WELCOME.resume_endpoint; and
 * the client library saves and offers its session on both transports; raw TCP
 * handshakes are counted in /metrics.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MoorClient, type ReconnectInfo } from '../src/client/client';
import { type Gateway, type LogLine, startGateway } from './helpers/gateway';
import {
  type CertDir,
  leave,
  makeCerts,
  portOf,
  TLS_VERSIONS,
  ticketKey,
  tlsConnect,
  tlsOptions,
  waitForLogCount,
  writeTicketKeys,
} from './helpers/tls';

const keysUpdated = (l: LogLine) => l.msg === 'tls tcp ticket keys updated';
const rotated = (l: LogLine) => l.msg === 'tls ticket keys rotated';

/** A fresh ticket: full handshake, WELCOME, leave. */
async function freshTicket(gw: Gateway, id: string, tls: ReturnType<typeof tlsOptions>): Promise<Buffer> {
  const d = await tlsConnect(gw, 'tcp', id, tls);
  assert.equal(d.resumed, false, 'a connection without a saved session is a full handshake');
  const s = await leave(d);
  assert.ok(s, 'the gateway gave a session ticket');
  return s;
}

async function resumes(gw: Gateway, id: string, tls: ReturnType<typeof tlsOptions>, session: Buffer): Promise<boolean> {
  const d = await tlsConnect(gw, 'tcp', id, tls, { session });
  await leave(d);
  return d.resumed === true;
}

describe('TLS resumption with a shared ticket keys file', { timeout: 120_000 }, () => {
  let certs: CertDir;
  let gw: Gateway;
  let keysFile: string;

  before(async () => {
    certs = makeCerts();
    keysFile = path.join(certs.dir, 'ticket-keys.bin');
    writeTicketKeys(keysFile, ticketKey());
    gw = await startGateway([...certs.args, `--tls.ticket_keys_file=${keysFile}`], { workers: 2 });
  });
  after(async () => {
    await gw?.stop();
    certs?.remove();
  });

  /** Writes `keys` to the file, SIGHUPs, and waits until both workers hold them. */
  async function setKeys(...keys: Buffer[]): Promise<void> {
    const seen = gw.logs.filter(keysUpdated).length;
    writeTicketKeys(keysFile, ...keys);
    gw.proc.kill('SIGHUP');
    await waitForLogCount(gw, keysUpdated, seen + 2);
  }

  for (const v of TLS_VERSIONS) {
    test(`${v}: raw TCP resumes on both workers with the primary's keys`, async () => {
      const tls = tlsOptions(certs, v);
      const id = `tcp-${v}`;
      let session = await freshTicket(gw, id, tls);
      const workers = new Set<number>();
      for (let i = 0; i < 8 && workers.size < 2; i++) {
        const d = await tlsConnect(gw, 'tcp', id, tls, { session });
        assert.equal(d.resumed, true, `reconnect ${i} resumed`);
        const info = await gw.api('GET', `/v1/devices/${id}`);
        workers.add(info.body.worker);
        session = (await leave(d)) ?? session;
      }
      assert.deepEqual([...workers].sort(), [0, 1], 'resumed on both workers');
    });

    test(`${v}: WebSocket resumes through WELCOME.resume_endpoint, only on the worker that made the ticket`, async () => {
      const tls = tlsOptions(certs, v);
      const id = `ws-${v}`;
      const first = await tlsConnect(gw, 'ws', id, tls);
      assert.equal(first.resumed, false);
      const resumePort = portOf(first.welcome.resumeEndpoint);
      assert.ok(gw.resumePorts.includes(resumePort), `resume_endpoint ${first.welcome.resumeEndpoint} is a worker's resume port`);
      let session = await leave(first);
      assert.ok(session);
      for (let i = 0; i < 3; i++) {
        const d = await tlsConnect(gw, 'ws', id, tls, { port: resumePort, session });
        assert.equal(d.resumed, true, `reconnect ${i} to the resume port resumed`);
        assert.equal(d.welcome.resumeEndpoint, first.welcome.resumeEndpoint);
        session = (await leave(d)) ?? session;
      }
      // uWS ticket keys are per process: the other worker cannot read this ticket.
      const otherPort = gw.resumePorts.find((p) => p !== resumePort) as number;
      const other = await tlsConnect(gw, 'ws', id, tls, { port: otherPort, session });
      assert.equal(other.resumed, false, "another worker's resume port does a full handshake");
      await leave(other);
    });

    test(`${v}: the client library reconnects to resume_endpoint first and resumes, over both transports`, async () => {
      for (const transport of ['ws', 'tcp'] as const) {
        const deviceId = `lib-${transport}-${v}`;
        const where = transport === 'ws' ? { url: `wss://127.0.0.1:${gw.wsPort}/ws` } : { transport, host: '127.0.0.1', port: gw.tcpPort };
        const client = new MoorClient({
          ...where,
          tls: tlsOptions(certs, v),
          deviceId,
          token: () => gw.token(deviceId),
          reconnect: { baseMs: 10, maxMs: 50, afterReplaced: true },
        });
        client.on('error', () => {});
        try {
          const w1 = await client.connect();
          assert.equal(client.tlsResumed, false, `${transport}: first connect is a full handshake`);
          // (events.once would reject on the 'error' event the REPLACED kick brings.)
          const reconnecting = new Promise<ReconnectInfo>((resolve) => client.once('reconnecting', resolve));
          const welcomed = new Promise((resolve) => client.once('welcome', resolve));
          // The operator's kick (ERROR REPLACED): the client comes back (afterReplaced).
          assert.equal((await gw.api('DELETE', `/v1/devices/${deviceId}/session`)).status, 204);
          const info = await reconnecting;
          const expected = transport === 'ws' ? `wss://${w1.resumeEndpoint}/ws` : w1.resumeEndpoint;
          assert.equal(info.endpoint, expected, `${transport}: reconnects to resume_endpoint first`);
          await welcomed;
          assert.equal(client.tlsResumed, true, `${transport}: the saved session resumed`);
        } finally {
          await client.close();
        }
      }
    });

    test(`${v}: after a rotation the previous key's tickets resume; two keys ago they do not`, async () => {
      const tls = tlsOptions(certs, v);
      const id = `rot-${v}`;
      await setKeys(ticketKey());
      const ticketA = await freshTicket(gw, id, tls);
      // One key in the file: the key it replaced stays accepted as the previous one.
      await setKeys(ticketKey());
      assert.equal(await resumes(gw, id, tls, ticketA), true, 'ticket from the previous key resumes');
      const ticketB = await freshTicket(gw, id, tls);
      await setKeys(ticketKey());
      assert.equal(await resumes(gw, id, tls, ticketA), false, 'ticket from two keys ago is a full handshake');
      assert.equal(await resumes(gw, id, tls, ticketB), true, 'ticket from the (new) previous key resumes');
      // Two keys in the file (current, previous) are taken as they are.
      const c = ticketKey();
      await setKeys(c, ticketKey());
      assert.equal(await resumes(gw, id, tls, ticketB), false, 'a previous key named by the file replaces the old one');
    });
  }

  test('raw TCP TLS handshakes are counted in /metrics (full, resumed, plaintext), summed over the workers', async () => {
    const read = async (): Promise<Record<string, number>> => {
      const text = String((await gw.api('GET', '/metrics')).body);
      const lines = text.split('\n');
      const n = (series: string): number => Number(lines.find((l) => l.startsWith(`moor_${series} `))?.split(' ')[1] ?? Number.NaN);
      return {
        full: n('tls_handshakes_total{transport="tcp",resumed="false"}'),
        resumed: n('tls_handshakes_total{transport="tcp",resumed="true"}'),
        plaintext: n('tls_rejected_total{transport="tcp",reason="plaintext"}'),
      };
    };
    const before = await read();
    for (const k of Object.keys(before)) assert.ok(Number.isFinite(before[k]), `${k} is exported`);
    const tls = tlsOptions(certs);
    const session = await freshTicket(gw, 'metrics', tls);
    for (let i = 0; i < 3; i++) assert.equal(await resumes(gw, 'metrics', tls, session), true);
    const plain = net.connect(gw.tcpPort, '127.0.0.1');
    plain.on('error', () => {});
    plain.end('MOOR/1\r\n');
    await once(plain, 'close');
    const after = await read();
    assert.deepEqual({ full: after.full - before.full, resumed: after.resumed - before.resumed, plaintext: after.plaintext - before.plaintext }, { full: 1, resumed: 3, plaintext: 1 });
  });
});

describe('TLS resumption with generated ticket keys', { timeout: 120_000 }, () => {
  let certs: CertDir;
  let storePath: string;

  before(() => {
    certs = makeCerts();
    storePath = mkdtempSync(path.join(os.tmpdir(), 'moor-tls-store-'));
  });
  after(() => {
    certs?.remove();
    rmSync(storePath, { recursive: true, force: true });
  });

  test('tickets survive a restart of the gateway (keys kept in store.path, mode 0600)', async () => {
    const tls = tlsOptions(certs, 'TLSv1.3');
    let gw = await startGateway(certs.args, { workers: 2, storePath });
    let ticket: Buffer;
    try {
      ticket = await freshTicket(gw, 'restart-1', tls);
    } finally {
      await gw.stop();
    }
    gw = await startGateway(certs.args, { workers: 2, storePath });
    try {
      assert.equal(await resumes(gw, 'restart-1', tls, ticket), true);
    } finally {
      await gw.stop();
    }
  });

  test('the primary rotates on schedule: one rotation later a ticket resumes, two later it does not', async () => {
    const tls = tlsOptions(certs, 'TLSv1.2');
    const rotStore = mkdtempSync(path.join(os.tmpdir(), 'moor-tls-rot-'));
    const gw = await startGateway([...certs.args, '--tls.ticket_rotate_s=3'], { workers: 2, storePath: rotStore });
    try {
      // Each step starts right after a rotation reached both workers: 3 s to act.
      const afterRotation = async (n: number) => {
        await waitForLogCount(gw, rotated, n, 10_000);
        await waitForLogCount(gw, keysUpdated, 2 * n, 5_000);
      };
      const r0 = gw.logs.filter(rotated).length + 1;
      await afterRotation(r0);
      const ticket = await freshTicket(gw, 'sched-1', tls);
      await afterRotation(r0 + 1);
      assert.equal(await resumes(gw, 'sched-1', tls, ticket), true, 'one rotation later');
      await afterRotation(r0 + 2);
      assert.equal(await resumes(gw, 'sched-1', tls, ticket), false, 'two rotations later');
    } finally {
      await gw.stop();
      rmSync(rotStore, { recursive: true, force: true });
    }
  });
});
