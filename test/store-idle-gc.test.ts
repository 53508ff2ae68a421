/**
 * The store writer thread's idle collection (src/store/idle-gc.ts): when it collects
 * (a clock of our own), and that exposeGc gives a worker thread a working gc().
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { IdleCollector } from '../src/store/idle-gc';

describe('idle collector', () => {
  it('collects once enough work was done and none came for the quiet time, then counts again', () => {
    let t = 0;
    let runs = 0;
    const c = new IdleCollector(() => runs++, { afterWork: 10, quietMs: 300 }, () => t);
    c.worked(9);
    t = 1000;
    assert.equal(c.tick(), false, 'below afterWork: not worth a collection');
    c.worked(1);
    t += 299;
    assert.equal(c.tick(), false, 'work 299 ms ago: not quiet yet');
    t += 1;
    assert.equal(c.tick(), true);
    assert.equal(runs, 1);
    t += 5000;
    assert.equal(c.tick(), false, 'nothing done since: no second collection');
    c.worked(25);
    t += 300;
    assert.equal(c.tick(), true);
    assert.equal(runs, 2);
    assert.equal(c.collections, 2);
  });

  it('exposeGc gives a worker thread a gc() that frees its garbage', async () => {
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { exposeGc } = require(workerData);
      const gc = exposeGc();
      let junk = [];
      for (let i = 0; i < 2000; i++) junk.push(new Array(1000).fill(i));
      junk = null;
      const before = process.memoryUsage().heapUsed;
      gc();
      parentPort.postMessage({ type: typeof gc, freed: before - process.memoryUsage().heapUsed });
    `;
    const w = new Worker(code, { eval: true, workerData: path.join(__dirname, '../src/store/idle-gc.js') });
    const r = await new Promise<{ type: string; freed: number }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    await w.terminate();
    assert.equal(r.type, 'function');
    // 2,000 arrays of 1,000 small integers: ~16 MB of garbage.
    assert.ok(r.freed > 8 * 1024 * 1024, `freed ${r.freed} bytes`);
  });
});
