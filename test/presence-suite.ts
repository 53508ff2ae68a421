/**
 * The one suite every presence engine runs (src/presence/presence.ts):
 * `runPresenceSuite(name, open)` where `open` gives a fresh, empty engine per test and
 * `owner(worker, sid)` names a session the engine may hold (the embedded directory holds
 * one node; Redis holds any).
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Owner, Presence } from '../src/presence/presence';

export interface OpenedPresence {
  presence: Presence;
  owner(worker: number, sid: number): Owner;
  cleanup(): Promise<void>;
}

export function runPresenceSuite(name: string, open: () => Promise<OpenedPresence>): void {
  describe(`presence suite: ${name}`, () => {
    const withPresence = (fn: (p: Presence, owner: OpenedPresence['owner']) => Promise<void>) => async () => {
      const o = await open();
      try {
        await fn(o.presence, o.owner);
      } finally {
        await o.cleanup();
      }
    };

    it(
      'unknown devices look up as null; forgetting them is a no-op',
      withPresence(async (p, owner) => {
        assert.deepEqual(await p.lookup(['nobody', 'nobody-2']), [null, null]);
        await p.unregister([{ deviceId: 'nobody', owner: owner(0, 1) }]);
        assert.deepEqual(await p.lookup([]), []);
      }),
    );

    it(
      'a first registration replaces nothing; the device then looks up as its owner',
      withPresence(async (p, owner) => {
        assert.deepEqual(await p.register([{ deviceId: 'd1', owner: owner(1, 7) }]), [null]);
        assert.deepEqual(await p.lookup(['d1']), [owner(1, 7)]);
      }),
    );

    it(
      'a second session of a device returns the first (to be kicked) and takes over',
      withPresence(async (p, owner) => {
        await p.register([{ deviceId: 'd', owner: owner(0, 1) }]);
        assert.deepEqual(await p.register([{ deviceId: 'd', owner: owner(1, 2) }]), [owner(0, 1)]);
        assert.deepEqual(await p.lookup(['d']), [owner(1, 2)]);
        // Same worker, newer session: the worker's own older session is returned too.
        assert.deepEqual(await p.register([{ deviceId: 'd', owner: owner(1, 3) }]), [owner(1, 2)]);
        // Registering the very same session again replaces nothing.
        assert.deepEqual(await p.register([{ deviceId: 'd', owner: owner(1, 3) }]), [null]);
      }),
    );

    it(
      'a replaced session unregistering leaves the newer one in place',
      withPresence(async (p, owner) => {
        await p.register([{ deviceId: 'd', owner: owner(0, 1) }]);
        await p.register([{ deviceId: 'd', owner: owner(1, 2) }]);
        await p.unregister([{ deviceId: 'd', owner: owner(0, 1) }]);
        assert.deepEqual(await p.lookup(['d']), [owner(1, 2)]);
        await p.unregister([{ deviceId: 'd', owner: owner(1, 2) }]);
        assert.deepEqual(await p.lookup(['d']), [null]);
      }),
    );

    it(
      'batches keep their order, per device and across devices',
      withPresence(async (p, owner) => {
        const ids = Array.from({ length: 500 }, (_, i) => `b${i}`);
        const first = await p.register(ids.map((deviceId, i) => ({ deviceId, owner: owner(i % 3, i + 1) })));
        assert.ok(first.every((o) => o === null));
        // The same device twice in one batch: the second entry replaces the first.
        assert.deepEqual(
          await p.register([
            { deviceId: 'twice', owner: owner(0, 1) },
            { deviceId: 'b3', owner: owner(2, 1000) },
            { deviceId: 'twice', owner: owner(1, 2) },
          ]),
          [null, owner(0, 4), owner(0, 1)],
        );
        const looked = await p.lookup(['b0', 'missing', 'b499', 'twice', 'b3']);
        assert.deepEqual(looked, [owner(0, 1), null, owner(499 % 3, 500), owner(1, 2), owner(2, 1000)]);
        await p.unregister(ids.filter((_, i) => i % 2 === 0).map((deviceId) => ({ deviceId, owner: owner(ids.indexOf(deviceId) % 3, ids.indexOf(deviceId) + 1) })));
        const after = await p.lookup(ids);
        assert.equal(after.filter((o) => o !== null).length, 250);
        assert.deepEqual(after[1], owner(1, 2));
      }),
    );

    it(
      'two sessions registering one device at once: exactly one ends up holding it, and it names the other',
      withPresence(async (p, owner) => {
        for (let round = 0; round < 20; round++) {
          const d = `race-${round}`;
          const [a, b] = await Promise.all([p.register([{ deviceId: d, owner: owner(0, round + 1) }]), p.register([{ deviceId: d, owner: owner(1, round + 1) }])]);
          const [holder] = await p.lookup([d]);
          assert.ok(holder);
          const winner = holder.worker === 0 ? a[0] : b[0];
          const loser = holder.worker === 0 ? b[0] : a[0];
          assert.deepEqual(winner, owner(1 - holder.worker, round + 1), 'the holder learnt whom it replaced');
          assert.equal(loser, null);
        }
      }),
    );

    it(
      'claim registers only where the device has no session or this one',
      withPresence(async (p, owner) => {
        await p.register([{ deviceId: 'taken', owner: owner(1, 9) }]);
        await p.register([{ deviceId: 'mine', owner: owner(0, 5) }]);
        const answers = await p.claim([
          { deviceId: 'free', owner: owner(0, 4) },
          { deviceId: 'mine', owner: owner(0, 5) },
          { deviceId: 'taken', owner: owner(0, 6) },
        ]);
        assert.deepEqual(answers, [true, false, owner(1, 9)]);
        assert.deepEqual(await p.lookup(['free', 'mine', 'taken']), [owner(0, 4), owner(0, 5), owner(1, 9)]);
      }),
    );

    it(
      'ids with braces, percent signs and non-ASCII are distinct devices',
      withPresence(async (p, owner) => {
        const ids = ['}x', '{a}', 'a}b', 'a%7Db', '%', '{}', 'x{y}z', 'ďevice/☃'];
        await p.register(ids.map((deviceId, i) => ({ deviceId, owner: owner(0, i + 1) })));
        assert.deepEqual(
          await p.lookup(ids),
          ids.map((_, i) => owner(0, i + 1)),
        );
      }),
    );

    it(
      'refresh on a healthy engine loses nothing',
      withPresence(async (p, owner) => {
        await p.register([{ deviceId: 'r', owner: owner(0, 1) }]);
        assert.equal(await p.refresh(), false);
        assert.equal(await p.refresh(), false);
        assert.deepEqual(await p.lookup(['r']), [owner(0, 1)]);
      }),
    );
  });
}
