import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deliverLocal, replay } from '../src/gateway/delivery';
import type { Gateway } from '../src/gateway/gateway';
import { Session, SessionState, type Transport, TransportKind } from '../src/gateway/session';
import type { PushHeader } from '../src/mesh/ops';
import type { ReadResult } from '../src/store/store';

function fakes(pages: ReadResult[]) {
  const reads: number[] = [];
  const sent: number[] = [];
  const transport: Transport = {
    kind: TransportKind.WS,
    send: () => 1,
    close: () => {},
    subscribe: () => {},
    bufferedAmount: () => 0,
    cork: (_s, fn) => fn(),
  };
  const gw = {
    deps: {
      config: { limits: { sync_page: 10, max_buffered: 1 << 20 } },
      store: {
        readAfter: async (_d: string, after: number) => {
          reads.push(after);
          if (reads.length > 20) throw new Error('the replay loop spins');
          return pages.shift() ?? { pushes: [], more: false, headSeq: 0 };
        },
      },
      metrics: { pushDelivered: () => {} },
      log: { warn: (o: unknown) => assert.fail(`unexpected warning ${JSON.stringify(o)}`) },
    },
    send: (_s: Session, _t: number, f: Buffer) => {
      sent.push(f[0]);
      return 1;
    },
    compression: { pushFrame: (_s: Session, seq: number) => Buffer.from([seq]) },
  } as unknown as Gateway;
  const s = new Session(transport, null, 1, Date.now(), SessionState.OPEN);
  s.deviceId = 'd';
  return { gw, s, reads, sent };
}

const push = (seq: number) => ({ seq, id: `p${seq}`, topic: '', body: Buffer.alloc(0), priority: 0, expiresAtMs: 0, sentAtMs: Date.now() });

async function settle(s: Session): Promise<void> {
  for (let i = 0; i < 100 && s.replaying > 0; i++) await new Promise((r) => setImmediate(r));
}

test('a replay re-reads for a push that went live during its read, then stops', async () => {
  const { gw, s, reads, sent } = fakes([{ pushes: [push(1)], more: false, headSeq: 2 }, { pushes: [push(2)], more: false, headSeq: 2 }]);
  replay(gw, s, 0);
  s.liveMissed = 2; // delivery skipped seq 2 while the first read was in flight
  await settle(s);
  assert.deepEqual(reads, [0, 1]);
  assert.deepEqual(sent, [1, 2]);
  assert.equal(s.replaying, 0);
  assert.equal(s.liveMissed, 0, 'cleared with the replay');
});

test('a replay waiting for a push that expired meanwhile stops after one empty re-read', async () => {
  const { gw, s, reads } = fakes([]);
  replay(gw, s, 0);
  s.liveMissed = 5; // skipped, then expired before the re-read
  await settle(s);
  assert.equal(s.replaying, 0, 'the replay ended');
  assert.deepEqual(reads, [0, 0]);
});

test('replay state lives off the session object while idle', () => {
  const { s } = fakes([]);
  s.replaying++;
  s.liveMissed = 3;
  assert.equal(s.liveMissed, 3);
  s.replaying--;
  assert.equal(s.liveMissed, 0);
  assert.equal((s as unknown as { rare: unknown }).rare, null);
});

test('live durable pushes arriving out of order go out in seq order, from the inbox, each once', async () => {
  // Pushes that enter through two workers race to the holder: 27 got here before 25 and 26.
  const { gw, s, reads, sent } = fakes([{ pushes: [push(25), push(26), push(27)], more: false, headSeq: 27 }]);
  Object.assign(gw, {
    hub: { get: () => s },
    flow: { deliver: (_h: PushHeader, devs: Array<[string, number]>, fn: (d: Array<[string, number]>) => void) => fn(devs), holdDurable: () => false },
  });
  Object.assign(gw.compression, { transient: () => () => Buffer.alloc(0) });
  s.sentSeq = 24;
  const h: PushHeader = { id: 'p', topic: '', priority: 0, exp: 0, sent: Date.now() };
  const live = (seq: number) => deliverLocal(gw, h, [['d', seq]], Buffer.alloc(0));
  live(27);
  live(25); // during the replay: left to it
  await settle(s);
  live(26); // after it: sent already
  live(28); // next in order: sent live
  assert.deepEqual(reads, [24], 'one read of the inbox after the last seq sent');
  assert.deepEqual(sent, [25, 26, 27, 28]);
  assert.equal(s.sentSeq, 28);
});

test('a replay that finds nothing to send moves sentSeq to the head it saw, so the next live push is in order', async () => {
  const { gw, s } = fakes([{ pushes: [], more: false, headSeq: 10 }]);
  replay(gw, s, 0); // everything up to 10 was acked or expired
  await settle(s);
  assert.equal(s.sentSeq, 10);
});
