import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { jwtVerify } from 'jose';
import type { Io } from '../src/cli/common';
import { run } from '../src/cli/main';

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'moor.js');
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'moor-cli-test-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let n = 0;
function tmpDir(): string {
  const dir = path.join(tmpRoot, String(n++));
  fs.mkdirSync(dir);
  return dir;
}

/** Runs a command in-process with captured output and an empty environment. */
async function moor(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), env };
  const code = await run(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** Runs bin/moor.js as a real process (exit code and streams as an operator sees them). */
function moorProcess(argv: string[], cwd: string): Promise<{ code: number; out: string; err: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MOOR_')));
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...argv], { cwd, env }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code) : 0, out: stdout, err: stderr });
    });
  });
}

describe('moor (help, version, unknown commands)', () => {
  test('--help, <cmd> --help and --version', async () => {
    const help = await moor(['--help']);
    assert.equal(help.code, 0);
    for (const cmd of ['serve', 'push', 'token', 'check-config', 'dict train']) assert.match(help.out, new RegExp(cmd));
    const serveHelp = await moor(['serve', '--help']);
    assert.equal(serveHelp.code, 0);
    assert.match(serveHelp.out, /ws\.resume_port_base/);
    assert.match(serveHelp.out, /limits\.max_frame +65536/);
    const version = await moor(['--version']);
    assert.equal(version.out, JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../package.json'), 'utf8')).version);
  });

  test('an unknown command suggests the nearest one and exits 2', async () => {
    const r = await moor(['server']);
    assert.equal(r.code, 2);
    assert.match(r.err, /did you mean `serve`\?/);
  });

  test('dict: a bad subcommand or flag exits 2; an unreachable gateway exits 1', async () => {
    const bad = await moor(['dict', 'untrain']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /unknown subcommand "untrain"/);
    const size = await moor(['dict', 'train', '--max-bytes', '12']);
    assert.equal(size.code, 2);
    assert.match(size.err, /--max-bytes: an integer from 1024/);
    // A port that was just free: nothing listens there.
    const srv = http.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => srv.once('listening', r));
    const port = (srv.address() as AddressInfo).port;
    await new Promise((r) => srv.close(r));
    const down = await moor(['dict', 'train', '--url', `http://127.0.0.1:${port}`, '--key', 'k']);
    assert.equal(down.code, 1);
    assert.match(down.err, /cannot reach http:\/\/127\.0\.0\.1:\d+\/v1\/dicts: ECONNREFUSED/);
    assert.equal(down.out, '');
  });
});

describe('moor check-config', () => {
  test('prints every error of a bad file and exits 1 (real process)', async () => {
    const dir = tmpDir();
    fs.writeFileSync(
      path.join(dir, 'moor.toml'),
      'wrokers = 2\n[ws]\nport = 70000\n[store]\nkind = "disk"\n[upstream]\nurl = "not a url"\n',
    );
    const r = await moorProcess(['check-config', '--config', 'moor.toml', '--limits.max_frame=12'], dir);
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.match(r.err, /5 config errors/);
    assert.match(r.err, /wrokers \(from .*moor\.toml\): unknown key\n\s+hint: did you mean `workers`\?/);
    assert.match(r.err, /ws\.port .*between 0 and 65535, got 70000/);
    assert.match(r.err, /store\.kind .*must be one of embedded, redis, got "disk"/);
    assert.match(r.err, /upstream\.url .*is not an http\(s\) URL/);
    assert.match(r.err, /limits\.max_frame \(from --limits\.max_frame\): must be between 1024/);
  });

  test('a good config prints "config OK"', async () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'moor.toml'), '[ws]\nport = 9100\nresume_port_base = 9200\n');
    const r = await moor(['check-config', `--config=${path.join(dir, 'moor.toml')}`, '--api.port', '9300'], { MOOR_TCP_PORT: '0' });
    assert.deepEqual([r.code, r.out, r.err], [0, 'config OK', '']);
  });

  test('serve refuses a bad config with exit 2 before starting anything', async () => {
    const r = await moor(['serve', '--workers=0', '--ws.prot=1']);
    assert.equal(r.code, 2);
    assert.match(r.err, /2 config errors/);
    assert.match(r.err, /did you mean `--ws\.port`\?/);
  });
});

describe('moor token', () => {
  test('mints an HS256 JWT with sub, exp, topics and app, keyed by the stored secret', async () => {
    const dir = tmpDir();
    const r = await moor(['token', '--device', 'dev-1', '--ttl', '2h', '--topics', 'news,alerts', '--app', 'demo', `--store.path=${dir}`]);
    assert.equal(r.code, 0, r.err);
    // First use generates the secrets and says so, once, on stderr.
    assert.match(r.err, /generated secrets, stored in .*secrets\.json/);
    const stored = JSON.parse(fs.readFileSync(path.join(dir, 'secrets.json'), 'utf8'));
    const { payload, protectedHeader } = await jwtVerify(r.out, new TextEncoder().encode(stored.jwt_secret), { algorithms: ['HS256'] });
    assert.equal(protectedHeader.alg, 'HS256');
    assert.equal(payload.sub, 'dev-1');
    assert.deepEqual(payload.topics, ['news', 'alerts']);
    assert.equal(payload.app, 'demo');
    assert.equal(payload.exp! - payload.iat!, 7200);

    const again = await moor(['token', '--device', 'dev-2', `--store.path=${dir}`]);
    assert.doesNotMatch(again.err, /generated/, 'secrets are reused silently');
    const second = await jwtVerify(again.out, new TextEncoder().encode(stored.jwt_secret));
    assert.equal(second.payload.exp! - second.payload.iat!, 3600);
    assert.equal(second.payload.topics, undefined);
  });

  test('uses a configured secret (env) and checks its flags', async () => {
    const dir = tmpDir();
    const secret = 'a-configured-secret-of-at-least-32-bytes';
    // No api.keys either: a token needs only the secret, so nothing is written under store.path.
    const r = await moor(['token', '--device=d', `--store.path=${dir}`], { MOOR_AUTH_JWT_SECRET: secret });
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.equal((await jwtVerify(r.out, new TextEncoder().encode(secret))).payload.sub, 'd');
    assert.equal(fs.existsSync(path.join(dir, 'secrets.json')), false);

    const bad = await moor(['token', '--ttl', '5', '--devce', 'x']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--device ID is required/);
    assert.match(bad.err, /add a unit/);
    assert.match(bad.err, /unknown option --devce \(did you mean --device\?\)/);
  });
});

describe('moor push', () => {
  let server: http.Server;
  let url: string;
  let port: number;
  const seen: Array<{ method?: string; url?: string; auth?: string; type?: string; body: unknown }> = [];
  let status = 202;
  let answer = '';

  before(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        seen.push({ method: req.method, url: req.url, auth: req.headers.authorization, type: req.headers['content-type'], body });
        res.writeHead(status, { 'content-type': 'application/json' }).end(answer);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    url = `http://127.0.0.1:${port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('POSTs /v1/push with every option and prints the answer', async () => {
    status = 202;
    answer = '{"id":"k1","accepted":1,"online":0,"seqs":[7]}';
    seen.length = 0;
    const r = await moor([
      'push', '--device', 'dev-1', '--body', 'hello', '--priority', 'high', '--ttl', '10m',
      '--transient', '--id', 'k1', '--url', `${url}/`, '--key', 'secret-key',
    ]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, answer);
    assert.deepEqual(seen, [
      {
        method: 'POST',
        url: '/v1/push',
        auth: 'Bearer secret-key',
        type: 'application/json',
        body: { device_id: 'dev-1', body: 'hello', priority: 'high', ttl_s: 600, durable: false, id: 'k1' },
      },
    ]);
  });

  test('other targets: --device-ids, --topic, --all', async () => {
    answer = '{}';
    seen.length = 0;
    const base = ['--body', 'b', '--url', url, '--key', 'k'];
    assert.equal((await moor(['push', '--device-ids', 'a, b,c', ...base])).code, 0);
    assert.equal((await moor(['push', '--topic', 'news', ...base])).code, 0);
    assert.equal((await moor(['push', '--all', ...base])).code, 0);
    assert.equal((await moor(['push', '--device', 'a', '--ttl', '0s', ...base])).code, 0, '0s = no expiry, as ttl_s 0');
    assert.deepEqual(
      seen.map((s) => s.body),
      [
        { device_ids: ['a', 'b', 'c'], body: 'b' },
        { topic: 'news', body: 'b' },
        { all: true, body: 'b' },
        { device_id: 'a', body: 'b', ttl_s: 0 },
      ],
    );
  });

  test('finds the API from the config and the key in secrets.json', async () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'secrets.json'), JSON.stringify({ jwt_secret: 'j', api_key: 'stored-key' }), { mode: 0o600 });
    answer = '{}';
    seen.length = 0;
    const r = await moor(['push', '--device', 'd', '--body', 'x'], { MOOR_API_PORT: String(port), MOOR_STORE_PATH: dir });
    assert.equal(r.code, 0, r.err);
    assert.equal(seen[0].auth, 'Bearer stored-key');
  });

  test('an HTTP error prints the error body and exits 1', async () => {
    status = 401;
    answer = '{"error":{"code":"UNAUTHORIZED","message":"bad api key"}}';
    const r = await moor(['push', '--device', 'd', '--body', 'x', '--url', url, '--key', 'wrong']);
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.equal(r.err, `moor push: HTTP 401: ${answer}`);
  });

  test('usage errors exit 2 without sending anything; an unreachable gateway exits 1', async () => {
    seen.length = 0;
    const none = await moor(['push', '--body', 'x', '--url', url, '--key', 'k']);
    assert.equal(none.code, 2);
    assert.match(none.err, /exactly one target/);
    const two = await moor(['push', '--device', 'a', '--topic', 't', '--priority', 'urgent', '--ttl', '1500ms', '--url', url, '--key', 'k']);
    assert.equal(two.code, 2);
    assert.match(two.err, /exactly one target/);
    assert.match(two.err, /--body TEXT is required/);
    assert.match(two.err, /--priority must be high, normal or bulk/);
    assert.match(two.err, /--ttl must be whole seconds/);
    assert.equal(seen.length, 0);

    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const down = await moor(['push', '--device', 'd', '--body', 'x', '--url', `http://127.0.0.1:${deadPort}`, '--key', 'k']);
    assert.equal(down.code, 1);
    assert.match(down.err, /cannot reach .*ECONNREFUSED \(is `moor serve` running\?\)/);
  });
});
