/**
 * `moor check-config` and start-up validation: a file with several mistakes gets every
 * one reported at once, each with its key, where it came from and a hint; unknown keys,
 * sections and flags get a "did you mean".
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'moor.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moor-ops-config-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function moor(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: dir, env: { PATH: process.env.PATH } }, (err, out, errText) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out, err: errText });
    });
  });
}

/** `key (from …): message` and its hint line, from the report. */
function issues(report: string): Map<string, { message: string; hint: string }> {
  const out = new Map<string, { message: string; hint: string }>();
  const lines = report.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^ {2}(\S+)(?: \(from [^)]*\))?: (.*)$/.exec(lines[i]);
    if (!m) continue;
    const hint = /^ {6}hint: (.*)$/.exec(lines[i + 1] ?? '')?.[1] ?? '';
    out.set(m[1], { message: m[2], hint });
  }
  return out;
}

const BAD = `wrokers = 2
[ws]
port = 70000
prot = 8080
[store]
kind = "disk"
[upstream]
url = "not a url"
[limits]
max_frame = "big"
[lgo]
level = "info"
[api]
keys = "k"
foo = 1
`;

describe('check-config', () => {
  test('a file with several errors: every one listed, each with its key and a hint', async () => {
    fs.writeFileSync(path.join(dir, 'bad.toml'), BAD);
    const r = await moor(['check-config', '--config', 'bad.toml', '--drain.window_ms=-5', '--tcp.prot=1']);
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    const found = issues(r.err);
    const want = ['wrokers', 'ws.port', 'ws.prot', 'store.kind', 'upstream.url', 'limits.max_frame', 'lgo', 'api.foo', 'drain.window_ms', '--tcp.prot'];
    assert.deepEqual([...found.keys()].sort(), [...want].sort(), r.err);
    assert.match(r.err, new RegExp(`^moor check-config: ${want.length} config errors:`));
    for (const [key, issue] of found) assert.notEqual(issue.hint, '', `${key} has a hint`);
    assert.match(found.get('wrokers')!.hint, /did you mean `workers`\?/);
    assert.match(found.get('ws.prot')!.hint, /did you mean `ws.port`\?/);
    assert.match(found.get('lgo')!.hint, /did you mean `\[log\]`\?/);
    assert.match(found.get('--tcp.prot')!.hint, /did you mean `--tcp.port`\?/);
    assert.match(found.get('api.foo')!.hint, /moor check-config --help/);
    assert.match(found.get('ws.port')!.message, /between 0 and 65535, got 70000/);
    assert.match(found.get('ws.port')!.hint, /the default is 8080/);
    assert.match(found.get('limits.max_frame')!.hint, /without quotes/);
    assert.match(found.get('drain.window_ms')!.message, /got "-5"|got -5/);
  });

  test('moor serve refuses the same file before starting anything, with the same report', async () => {
    const r = await moor(['serve', '--config', 'bad.toml', '--store.path', path.join(dir, 'data')]);
    assert.equal(r.code, 2);
    assert.match(r.err, /^moor serve: 8 config errors:/);
    assert.equal(fs.existsSync(path.join(dir, 'data')), false, 'nothing was created');
  });

  test('a good file is OK', async () => {
    fs.writeFileSync(path.join(dir, 'good.toml'), '[ws]\nport = 9100\n[api]\nkeys = ["k"]\n');
    const r = await moor(['check-config', '--config', 'good.toml']);
    assert.deepEqual([r.code, r.out.trim()], [0, 'config OK']);
  });
});
