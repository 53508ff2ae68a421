/**
 * The store file's pages leave this process's RSS when released (src/store/mapping-release.ts,
 * native/src/mappings.rs) and read back unchanged.
 */
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EmbeddedStore } from '../src/store/embedded';
import { DEFAULT_RELEASE_INTERVAL_MS, releaseIntervalMs, releaseMappingEvery } from '../src/store/mapping-release';

/** kB of data.mdb resident in this process (/proc/self/smaps). */
function storeRssKb(): number {
  let on = false;
  let kb = 0;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) on = line.endsWith('/lmdb/data.mdb');
    else if (on && line.startsWith('Rss:')) kb += Number(line.split(/\s+/)[1]);
  }
  return kb;
}

const record = (i: number) => ({ deviceId: `dev-${i}`, firstSeenMs: 1, connectedAtMs: 2, network: { kind: 1, carrier: 'c' }, heartbeatMs: 240_000, node: 'n', worker: 0 });

it('released store pages stop counting in RSS and read back unchanged', { skip: process.platform !== 'linux' }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'moor-map-'));
  const store = await EmbeddedStore.open(dir);
  try {
    const n = 5000;
    await Promise.all(Array.from({ length: n }, (_, i) => store.putDevice(record(i))));
    for (let i = 0; i < n; i++) await store.getDevice(`dev-${i}`);
    const before = storeRssKb();
    assert.ok(before >= 100, `reading ${n} records maps their pages: ${before} kB`);
    const stop = releaseMappingEvery(path.join(dir, 'lmdb', 'data.mdb'), 20);
    try {
      for (let t = 0; t < 100 && storeRssKb() > before / 10; t++) await sleep(20);
      assert.ok(storeRssKb() <= before / 10, `released: ${storeRssKb()} of ${before} kB left`);
    } finally {
      stop();
    }
    for (let i = 0; i < n; i += 97) assert.deepEqual(await store.getDevice(`dev-${i}`), record(i));
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});

it('MOOR_STORE_RELEASE_MS sets the release interval within 100 ms..1 h; anything else is the 10 s default', () => {
  assert.equal(releaseIntervalMs({}), DEFAULT_RELEASE_INTERVAL_MS);
  assert.equal(DEFAULT_RELEASE_INTERVAL_MS, 10_000);
  assert.equal(releaseIntervalMs({ MOOR_STORE_RELEASE_MS: '1000' }), 1000);
  for (const bad of ['99', '3600001', '1.5', 'soon', '']) assert.equal(releaseIntervalMs({ MOOR_STORE_RELEASE_MS: bad }), 10_000, bad);
});
