/** The embedded presence engine (the in-process directory) against the shared suite. */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DirectoryPresence } from '../src/presence/embedded';
import { runPresenceSuite } from './presence-suite';

runPresenceSuite('embedded', async () => {
  const presence = new DirectoryPresence('n1', 'boot');
  return { presence, owner: (worker, sid) => ({ node: 'n1', worker, epoch: 'boot', sid }), cleanup: () => presence.close() };
});

describe('embedded presence', () => {
  it('a dead worker’s sessions go with it; other workers’ stay', async () => {
    const p = new DirectoryPresence('n1', 'boot');
    const o = (worker: number, sid: number) => ({ node: 'n1', worker, epoch: 'boot', sid });
    await p.register([
      { deviceId: 'a', owner: o(0, 1) },
      { deviceId: 'b', owner: o(1, 1) },
      { deviceId: 'c', owner: o(1, 2) },
    ]);
    assert.equal(p.dropWorker(1), 2);
    assert.deepEqual(await p.lookup(['a', 'b', 'c']), [o(0, 1), null, null]);
  });

  it('holds one node only', async () => {
    const p = new DirectoryPresence('n1', 'boot');
    await assert.rejects(p.register([{ deviceId: 'x', owner: { node: 'n2', worker: 0, epoch: 'boot', sid: 1 } }]), RangeError);
  });
});
