import assert from 'node:assert/strict';
import { test } from 'node:test';
import { workerExecArgv } from '../src/cluster/primary';

test('workers get smaller young-generation semi-spaces unless the operator set them', () => {
  assert.deepEqual(workerExecArgv([]), ['--max-semi-space-size=2']);
  assert.deepEqual(workerExecArgv(['--enable-source-maps']), ['--enable-source-maps', '--max-semi-space-size=2']);
  assert.deepEqual(workerExecArgv(['--max-semi-space-size=32']), ['--max-semi-space-size=32']);
  assert.deepEqual(workerExecArgv([], '--max-semi-space-size=8 --trace-gc'), []);
});
