/**
 * The one suite every store engine runs (embedded now, Redis with the fleet issue):
 * `runStoreSuite(name, open)` where `open` gives a fresh, empty store per test.
 * Time is injected (`nowMs` arguments), so nothing here sleeps or reads the clock.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceRecord, NewPush, Store } from '../src/store/store';

export interface OpenedStore {
  store: Store;
  cleanup(): Promise<void>;
}

/** Far in the future, so an engine that also sets real TTLs (Redis) never drops test data early. */
export const T0 = 4_000_000_000_000;

export function push(over: Partial<NewPush> = {}): NewPush {
  return {
    id: 'p',
    topic: 't',
    body: Buffer.from('hi'),
    priority: 0,
    expiresAtMs: 0,
    sentAtMs: T0,
    ...over,
  };
}

/** Appends `bodies` to one device, one call each, and returns the seqs. */
async function fill(store: Store, deviceId: string, bodies: string[], over: Partial<NewPush> = {}) {
  const seqs: number[] = [];
  for (const b of bodies) {
    seqs.push(...(await store.append([{ deviceId, push: push({ body: Buffer.from(b), ...over }) }])));
  }
  return seqs;
}

function bodies(r: { pushes: Array<{ body: Buffer }> }): string[] {
  return r.pushes.map((p) => p.body.toString());
}

export function runStoreSuite(name: string, open: () => Promise<OpenedStore>): void {
  describe(`store suite: ${name}`, () => {
    /** Runs `fn` on a fresh store and always cleans up. */
    const withStore = (fn: (s: Store) => Promise<void>) => async () => {
      const { store, cleanup } = await open();
      try {
        await fn(store);
      } finally {
        await cleanup();
      }
    };

    it(
      'an unknown device has heads 0/0 and an empty inbox',
      withStore(async (s) => {
        assert.deepEqual(await s.heads('nobody'), { headSeq: 0, ackedSeq: 0 });
        assert.deepEqual(await s.readAfter('nobody', 0, 10, T0), {
          pushes: [],
          more: false,
          headSeq: 0,
        });
        await s.ack('nobody', 5, [1, 2]); // a no-op, not an error
        assert.deepEqual(await s.heads('nobody'), { headSeq: 0, ackedSeq: 0 });
      }),
    );

    it(
      'seqs increase per device from 1, independently per device',
      withStore(async (s) => {
        assert.deepEqual(await fill(s, 'a', ['1', '2', '3']), [1, 2, 3]);
        assert.deepEqual(await fill(s, 'b', ['x']), [1]);
        assert.deepEqual(await s.heads('a'), { headSeq: 3, ackedSeq: 0 });
        const r = await s.readAfter('a', 0, 10, T0);
        assert.deepEqual(
          r.pushes.map((p) => p.seq),
          [1, 2, 3],
        );
        assert.deepEqual(bodies(r), ['1', '2', '3']);
        assert.equal(r.headSeq, 3);
      }),
    );

    it(
      'a batch gets seqs in item order, devices repeated or not',
      withStore(async (s) => {
        const seqs = await s.append(
          ['a', 'b', 'a', 'c', 'a'].map((d, i) => ({ deviceId: d, push: push({ body: Buffer.from(`${d}${i}`) }) })),
        );
        assert.deepEqual(seqs, [1, 1, 2, 1, 3]);
        assert.deepEqual(bodies(await s.readAfter('a', 0, 10, T0)), ['a0', 'a2', 'a4']);
        assert.deepEqual(await s.append([]), []);
      }),
    );

    it(
      'concurrent appends to one device get unique, gap-free seqs',
      withStore(async (s) => {
        const calls = Array.from({ length: 50 }, (_, i) =>
          s.append([{ deviceId: 'd', push: push({ body: Buffer.from(String(i)) }) }]),
        );
        const seqs = (await Promise.all(calls)).flat().sort((x, y) => x - y);
        assert.deepEqual(
          seqs,
          Array.from({ length: 50 }, (_, i) => i + 1),
        );
      }),
    );

    it(
      'a batch of 1,000 devices is one append',
      withStore(async (s) => {
        const items = Array.from({ length: 1000 }, (_, i) => ({ deviceId: `dev-${i}`, push: push() }));
        const seqs = await s.append(items);
        assert.equal(seqs.length, 1000);
        assert.ok(seqs.every((q) => q === 1));
        assert.equal(await s.depth(), 1000);
        assert.deepEqual(await s.heads('dev-999'), { headSeq: 1, ackedSeq: 0 });
      }),
    );

    it(
      'readAfter pages in seq order and says when more remain',
      withStore(async (s) => {
        await fill(s, 'd', ['1', '2', '3', '4', '5']);
        const p1 = await s.readAfter('d', 0, 2, T0);
        assert.deepEqual([bodies(p1), p1.more, p1.headSeq], [['1', '2'], true, 5]);
        const p2 = await s.readAfter('d', 2, 2, T0);
        assert.deepEqual([bodies(p2), p2.more], [['3', '4'], true]);
        const p3 = await s.readAfter('d', 4, 2, T0);
        assert.deepEqual([bodies(p3), p3.more], [['5'], false]);
        const exact = await s.readAfter('d', 3, 2, T0);
        assert.deepEqual([bodies(exact), exact.more], [['4', '5'], false]);
        const past = await s.readAfter('d', 5, 2, T0);
        assert.deepEqual([bodies(past), past.more, past.headSeq], [[], false, 5]);
        const none = await s.readAfter('d', 0, 0, T0);
        assert.deepEqual([bodies(none), none.more], [[], true]);
      }),
    );

    it(
      'ack deletes cumulatively and selectively',
      withStore(async (s) => {
        await fill(s, 'd', ['1', '2', '3', '4', '5', '6']);
        await s.ack('d', 2, [4, 6, 4]);
        const r = await s.readAfter('d', 0, 10, T0);
        assert.deepEqual(bodies(r), ['3', '5']);
        assert.deepEqual(await s.heads('d'), { headSeq: 6, ackedSeq: 2 });
        assert.equal(await s.depth(), 2);
        await s.ack('d', 5, []);
        assert.deepEqual(await s.heads('d'), { headSeq: 6, ackedSeq: 5 });
        assert.equal(await s.depth(), 0);
      }),
    );

    it(
      'cumulative acks wide and narrow (past and within 64 seqs) remove every push, holes and all',
      withStore(async (s) => {
        const names = Array.from({ length: 150 }, (_, i) => String(i + 1));
        await fill(s, 'd', names, { expiresAtMs: T0 + 5 });
        await s.ack('d', 0, [10, 70, 120]); // holes for both kinds of cumulative ack
        await s.ack('d', 100, []); // 100 seqs at once
        assert.equal(await s.depth(), 49);
        await s.ack('d', 140, []); // 40 more
        assert.deepEqual(bodies(await s.readAfter('d', 0, 200, T0)), names.slice(140));
        assert.deepEqual(await s.heads('d'), { headSeq: 150, ackedSeq: 140 });
        assert.equal(await s.depth(), 10);
        // Their expiry entries went with them: a sweep finds only the 10 left.
        assert.equal(await s.sweepExpired(T0 + 10, 500), 10);
        assert.equal(await s.depth(), 0);
      }),
    );

    it(
      'ackedSeq only rises, and never past headSeq',
      withStore(async (s) => {
        await fill(s, 'd', ['1', '2', '3']);
        await s.ack('d', 2, []);
        await s.ack('d', 1, []);
        assert.deepEqual(await s.heads('d'), { headSeq: 3, ackedSeq: 2 });
        await s.ack('d', 99, [1000, -1, 1.5]);
        assert.deepEqual(await s.heads('d'), { headSeq: 3, ackedSeq: 3 });
        assert.equal(await s.depth(), 0);
      }),
    );

    it(
      'seqs never repeat after everything was acked and deleted',
      withStore(async (s) => {
        await fill(s, 'd', ['1', '2']);
        await s.ack('d', 2, []);
        assert.deepEqual(await fill(s, 'd', ['3']), [3]);
        assert.deepEqual(bodies(await s.readAfter('d', 0, 10, T0)), ['3']);
      }),
    );

    it(
      'expired pushes are skipped by reads and more ignores them',
      withStore(async (s) => {
        await fill(s, 'd', ['live1']);
        await fill(s, 'd', ['soon1', 'soon2'], { expiresAtMs: T0 + 10 });
        await fill(s, 'd', ['later'], { expiresAtMs: T0 + 1000 });
        const before = await s.readAfter('d', 0, 10, T0 + 9);
        assert.deepEqual(bodies(before), ['live1', 'soon1', 'soon2', 'later']);
        const at = await s.readAfter('d', 0, 1, T0 + 10); // expiresAt <= now is expired
        assert.deepEqual([bodies(at), at.more], [['live1'], true]);
        const tail = await s.readAfter('d', 1, 1, T0 + 10);
        assert.deepEqual([bodies(tail), tail.more], [['later'], false]);
        const gone = await s.readAfter('d', 0, 1, T0 + 1000);
        assert.deepEqual([bodies(gone), gone.more], [['live1'], false]);
      }),
    );

    it(
      'sweepExpired removes only what is due, at most limit per call',
      withStore(async (s) => {
        await fill(s, 'a', ['keep']);
        await fill(s, 'a', ['x1', 'x2'], { expiresAtMs: T0 + 5 });
        await fill(s, 'b', ['x3'], { expiresAtMs: T0 + 6 });
        await fill(s, 'b', ['y'], { expiresAtMs: T0 + 100 });
        assert.equal(await s.depth(), 5);
        assert.equal(await s.sweepExpired(T0 + 4, 10), 0);
        assert.equal(await s.sweepExpired(T0 + 6, 2), 2);
        assert.equal(await s.sweepExpired(T0 + 6, 2), 1);
        assert.equal(await s.sweepExpired(T0 + 6, 2), 0);
        assert.equal(await s.depth(), 2);
        assert.deepEqual(bodies(await s.readAfter('a', 0, 10, T0)), ['keep']);
        assert.deepEqual(bodies(await s.readAfter('b', 0, 10, T0)), ['y']);
        assert.deepEqual(await s.heads('b'), { headSeq: 2, ackedSeq: 0 });
      }),
    );

    it(
      'acked pushes leave the expiry index too (a later sweep counts nothing twice)',
      withStore(async (s) => {
        await fill(s, 'd', ['1', '2'], { expiresAtMs: T0 + 5 });
        await s.ack('d', 1, [2]);
        assert.equal(await s.depth(), 0);
        assert.equal(await s.sweepExpired(T0 + 10, 10), 0);
        assert.equal(await s.depth(), 0);
      }),
    );

    it(
      'push fields and body bytes come back exact (empty, binary, large, unicode)',
      withStore(async (s) => {
        const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        const large = Buffer.alloc(300_000);
        for (let i = 0; i < large.length; i++) large[i] = (i * 7919) & 0xff;
        const cases: NewPush[] = [
          push({ body: Buffer.alloc(0), id: '', topic: '' }),
          push({ body: all, id: 'ïd-✓', topic: 'tópic/\u0000x', priority: 2 }),
          push({ body: large, priority: 1, expiresAtMs: 2 ** 53 - 1, sentAtMs: 2 ** 40 + 3 }),
          push({ body: Buffer.from('\u0000nul\u0000 ünï'), sentAtMs: 0 }),
        ];
        await s.append(cases.map((p) => ({ deviceId: 'ďevice/☃', push: p })));
        const r = await s.readAfter('ďevice/☃', 0, 10, T0);
        assert.equal(r.pushes.length, cases.length);
        r.pushes.forEach((got, i) => {
          assert.deepEqual(got, { seq: i + 1, ...cases[i] });
          assert.ok(Buffer.isBuffer(got.body));
          assert.ok(got.body.equals(cases[i].body));
        });
      }),
    );

    it(
      'device ids that prefix each other do not see each other',
      withStore(async (s) => {
        await fill(s, 'ab', ['ab1']);
        await fill(s, 'abc', ['abc1', 'abc2']);
        await fill(s, 'a', ['a1']);
        assert.deepEqual(bodies(await s.readAfter('ab', 0, 10, T0)), ['ab1']);
        assert.deepEqual(bodies(await s.readAfter('a', 0, 10, T0)), ['a1']);
        await s.ack('ab', 1, []);
        assert.deepEqual(bodies(await s.readAfter('abc', 0, 10, T0)), ['abc1', 'abc2']);
      }),
    );

    it(
      'rejects a bad device id or push before writing anything',
      withStore(async (s) => {
        await assert.rejects(s.append([{ deviceId: '', push: push() }]), RangeError);
        await assert.rejects(
          s.append([
            { deviceId: 'ok', push: push() },
            { deviceId: 'ok', push: push({ expiresAtMs: -1 }) },
          ]),
          RangeError,
        );
        assert.deepEqual(await s.heads('ok'), { headSeq: 0, ackedSeq: 0 });
        assert.equal(await s.depth(), 0);
      }),
    );

    it(
      'device records round trip and overwrite',
      withStore(async (s) => {
        assert.equal(await s.getDevice('d'), null);
        const rec: DeviceRecord = {
          deviceId: 'd',
          firstSeenMs: T0,
          connectedAtMs: T0 + 5,
          network: { kind: 5, carrier: '310-260' },
          heartbeatMs: 270_000,
          node: 'n1',
          worker: 1,
        };
        await s.putDevice(rec);
        assert.deepEqual(await s.getDevice('d'), rec);
        await s.putDevice({ ...rec, worker: 0, connectedAtMs: T0 + 9 });
        assert.deepEqual(await s.getDevice('d'), { ...rec, worker: 0, connectedAtMs: T0 + 9 });
        assert.equal(await s.getDevice('e'), null);
      }),
    );

    it(
      'idempotency answers live until their expiry, overwrite moves it',
      withStore(async (s) => {
        assert.equal(await s.getIdempotent('k', T0), null);
        await s.putIdempotent('k', '{"id":"k","accepted":1}', T0 + 100);
        assert.equal(await s.getIdempotent('k', T0 + 99), '{"id":"k","accepted":1}');
        assert.equal(await s.getIdempotent('k', T0 + 100), null);
        await s.putIdempotent('k', '{"v":2}', T0 + 200);
        assert.equal(await s.getIdempotent('k', T0 + 150), '{"v":2}');
        await s.putIdempotent('forever', 'ünï', 0);
        assert.equal(await s.sweepExpired(T0 + 150, 10), 0); // idempotency keys are not pushes
        assert.equal(await s.getIdempotent('k', T0 + 150), '{"v":2}');
        assert.equal(await s.getIdempotent('forever', T0 + 10 ** 12), 'ünï');
      }),
    );

    it(
      'an idempotency key is claimed once: later claims see the claim, then the answer, then nothing once expired',
      withStore(async (s) => {
        const claims = await Promise.all(Array.from({ length: 8 }, () => s.claimIdempotent('c', T0, T0 + 100)));
        assert.equal(claims.filter((c) => c === null).length, 1, 'exactly one of 8 concurrent claims wins');
        assert.deepEqual(
          claims.filter((c) => c !== null),
          Array(7).fill(''),
          'the others see a claim in progress',
        );
        await s.putIdempotent('c', '{"id":"c"}', T0 + 1000);
        assert.equal(await s.claimIdempotent('c', T0 + 10, T0 + 110), '{"id":"c"}');
        assert.equal(await s.getIdempotent('c', T0 + 10), '{"id":"c"}');
        assert.equal(await s.claimIdempotent('c', T0 + 1000, T0 + 1100), null, 'an expired answer is claimed anew');
        assert.equal(await s.claimIdempotent('c', T0 + 1001, T0 + 1100), '');
      }),
    );

    it(
      'meta documents round trip as exact bytes',
      withStore(async (s) => {
        assert.equal(await s.getMeta('m'), null);
        const bin = Buffer.from([0, 255, 1, 254, 0]);
        await s.putMeta('m', bin);
        assert.ok((await s.getMeta('m'))?.equals(bin));
        await s.putMeta('m', Buffer.alloc(0));
        assert.equal((await s.getMeta('m'))?.length, 0);
        await s.putMeta('hb/classes', Buffer.from('{"a":1}'));
        assert.equal((await s.getMeta('hb/classes'))?.toString(), '{"a":1}');
      }),
    );

    it(
      'depth counts stored pushes over all devices',
      withStore(async (s) => {
        assert.equal(await s.depth(), 0);
        await fill(s, 'a', ['1', '2', '3']);
        await fill(s, 'b', ['1']);
        assert.equal(await s.depth(), 4);
        await s.ack('a', 1, [3, 3]);
        assert.equal(await s.depth(), 2);
        assert.equal(await s.ping(), true);
      }),
    );
  });
}
