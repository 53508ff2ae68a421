import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { PushCommand } from '../src/api/backend';
import { describeFieldErrors, validatePush } from '../src/api/validate-push';

const KEY = 'k1';
const newId = (): string => 'generated-id';

function ok(input: unknown): PushCommand {
  const v = validatePush(input, KEY, newId);
  if (!v.ok) assert.fail(`expected valid, got ${describeFieldErrors(v.errors)}`);
  return v.cmd;
}

/** Asserts rejection and that some error names `field` and contains `why`. */
function bad(input: unknown, field: string, why: RegExp): void {
  const v = validatePush(input, KEY, newId);
  assert.equal(v.ok, false, `expected ${JSON.stringify(input)} to be rejected`);
  if (v.ok) return;
  const hit = v.errors.find((e) => e.field === field && why.test(e.reason));
  assert.ok(hit, `no error on ${field} matching ${why}; got ${describeFieldErrors(v.errors)}`);
}

const long = (n: number): string => 'x'.repeat(n);

describe('validatePush: valid inputs', () => {
  test('device_id with text body: defaults', () => {
    const c = ok({ device_id: 'd1', body: 'hi' });
    assert.deepEqual(c.target, { kind: 'device', deviceIds: ['d1'], single: true });
    assert.deepEqual(c.body, Buffer.from('hi'));
    assert.equal(c.priority, 0);
    assert.equal(c.ttlMs, 0);
    assert.equal(c.durable, true);
    assert.equal(c.id, 'generated-id');
    assert.equal(c.idGiven, false);
    assert.equal(c.apiKey, KEY);
  });
  test('device_ids keeps order, single false', () => {
    const c = ok({ device_ids: ['b', 'a', 'c'], body: '' });
    assert.deepEqual(c.target, { kind: 'device', deviceIds: ['b', 'a', 'c'], single: false });
    assert.equal(c.body.length, 0);
  });
  test('device_ids of exactly 1000', () => {
    const ids = Array.from({ length: 1000 }, (_, i) => `d${i}`);
    assert.equal((ok({ device_ids: ids, body: 'x' }).target as { deviceIds: string[] }).deviceIds.length, 1000);
  });
  test('topic defaults to transient', () => {
    const c = ok({ topic: 'news', body: 'x' });
    assert.deepEqual(c.target, { kind: 'topic', topic: 'news' });
    assert.equal(c.durable, false);
  });
  test('all: true defaults to transient; durable false accepted', () => {
    assert.deepEqual(ok({ all: true, body: 'x' }).target, { kind: 'all' });
    assert.equal(ok({ all: true, body: 'x', durable: false }).durable, false);
  });
  test('all: false beside a device target is not a second target', () => {
    assert.equal(ok({ all: false, device_id: 'd', body: 'x' }).target.kind, 'device');
  });
  test('priorities map to protocol values', () => {
    assert.equal(ok({ device_id: 'd', body: 'x', priority: 'high' }).priority, 1);
    assert.equal(ok({ device_id: 'd', body: 'x', priority: 'normal' }).priority, 0);
    assert.equal(ok({ device_id: 'd', body: 'x', priority: 'bulk' }).priority, 2);
  });
  test('ttl_s becomes milliseconds; 0 allowed', () => {
    assert.equal(ok({ device_id: 'd', body: 'x', ttl_s: 60 }).ttlMs, 60_000);
    assert.equal(ok({ device_id: 'd', body: 'x', ttl_s: 0 }).ttlMs, 0);
  });
  test('durable false for a device', () => {
    assert.equal(ok({ device_id: 'd', body: 'x', durable: false }).durable, false);
  });
  test('id given is kept', () => {
    const c = ok({ device_id: 'd', body: 'x', id: long(128) });
    assert.equal(c.id, long(128));
    assert.equal(c.idGiven, true);
  });
  test('body_b64 decoded, with or without padding', () => {
    assert.deepEqual(ok({ device_id: 'd', body_b64: 'AAEC/w==' }).body, Buffer.from([0, 1, 2, 255]));
    assert.deepEqual(ok({ device_id: 'd', body_b64: 'AAEC/w' }).body, Buffer.from([0, 1, 2, 255]));
    assert.deepEqual(ok({ device_id: 'd', body_b64: '' }).body, Buffer.alloc(0));
  });
  test('UTF-8 body and device id of 128 bytes', () => {
    assert.deepEqual(ok({ device_id: 'é'.repeat(64), body: 'ü' }).body, Buffer.from('ü', 'utf8'));
  });
});

describe('validatePush: each rule', () => {
  const cases: Array<[name: string, input: unknown, field: string, why: RegExp]> = [
    ['not an object: array', [], '(body)', /JSON object/],
    ['not an object: null', null, '(body)', /JSON object/],
    ['not an object: string', 'x', '(body)', /JSON object/],
    ['unknown fields named', { device_id: 'd', body: 'x', foo: 1, bar: 2 }, 'foo, bar', /unknown fields/],
    ['__proto__ is an unknown field', JSON.parse('{"device_id":"d","body":"x","__proto__":{}}'), '__proto__', /unknown field/],
    ['no target', { body: 'x' }, 'device_id', /target is required/],
    ['all false alone is no target', { all: false, body: 'x' }, 'device_id', /target is required/],
    ['two targets', { device_id: 'd', topic: 't', body: 'x' }, 'topic', /exactly one target.*device_id and topic/],
    ['device_id and all', { device_id: 'd', all: true, body: 'x' }, 'all', /exactly one target/],
    ['all not boolean', { all: 'yes', body: 'x' }, 'all', /boolean/],
    ['device_id not string', { device_id: 5, body: 'x' }, 'device_id', /string/],
    ['device_id empty', { device_id: '', body: 'x' }, 'device_id', /empty/],
    ['device_id 129 bytes', { device_id: long(129), body: 'x' }, 'device_id', /128 bytes/],
    ['device_id multibyte over 128 bytes', { device_id: 'é'.repeat(65), body: 'x' }, 'device_id', /128 bytes/],
    ['device_ids not array', { device_ids: 'd', body: 'x' }, 'device_ids', /array/],
    ['device_ids empty', { device_ids: [], body: 'x' }, 'device_ids', /1 to 1000/],
    ['device_ids 1001', { device_ids: Array.from({ length: 1001 }, (_, i) => `d${i}`), body: 'x' }, 'device_ids', /got 1001/],
    ['device_ids item not string', { device_ids: ['a', 3], body: 'x' }, 'device_ids[1]', /string/],
    ['device_ids item empty', { device_ids: ['a', ''], body: 'x' }, 'device_ids[1]', /empty/],
    ['device_ids item too long', { device_ids: [long(129)], body: 'x' }, 'device_ids[0]', /128 bytes/],
    ['device_ids duplicate', { device_ids: ['a', 'b', 'a'], body: 'x' }, 'device_ids[2]', /duplicate of device_ids\[0\]/],
    ['topic not string', { topic: 1, body: 'x' }, 'topic', /string/],
    ['topic empty', { topic: '', body: 'x' }, 'topic', /empty/],
    ['topic too long', { topic: long(257), body: 'x' }, 'topic', /256 bytes/],
    ['no body', { device_id: 'd' }, 'body', /required/],
    ['both bodies', { device_id: 'd', body: 'x', body_b64: 'eA==' }, 'body_b64', /not both/],
    ['body not string', { device_id: 'd', body: { a: 1 } }, 'body', /string/],
    ['body null', { device_id: 'd', body: null }, 'body', /string/],
    ['body_b64 not string', { device_id: 'd', body_b64: 12 }, 'body_b64', /base64 string/],
    ['body_b64 bad chars', { device_id: 'd', body_b64: 'ab$d' }, 'body_b64', /not valid base64/],
    ['body_b64 url alphabet', { device_id: 'd', body_b64: 'ab-_' }, 'body_b64', /not valid base64/],
    ['body_b64 bad length', { device_id: 'd', body_b64: 'abcde' }, 'body_b64', /not valid base64/],
    ['body_b64 bad padding', { device_id: 'd', body_b64: 'ab=c' }, 'body_b64', /not valid base64/],
    ['body_b64 whitespace', { device_id: 'd', body_b64: 'ab cd' }, 'body_b64', /not valid base64/],
    ['priority unknown', { device_id: 'd', body: 'x', priority: 'urgent' }, 'priority', /high.*normal.*bulk/],
    ['priority number', { device_id: 'd', body: 'x', priority: 1 }, 'priority', /one of/],
    ['priority inherited name', { device_id: 'd', body: 'x', priority: 'toString' }, 'priority', /one of/],
    ['ttl_s negative', { device_id: 'd', body: 'x', ttl_s: -1 }, 'ttl_s', /non-negative integer/],
    ['ttl_s fraction', { device_id: 'd', body: 'x', ttl_s: 1.5 }, 'ttl_s', /non-negative integer/],
    ['ttl_s string', { device_id: 'd', body: 'x', ttl_s: '60' }, 'ttl_s', /non-negative integer/],
    ['ttl_s huge', { device_id: 'd', body: 'x', ttl_s: 2 ** 60 }, 'ttl_s', /non-negative integer/],
    ['durable not boolean', { device_id: 'd', body: 'x', durable: 'true' }, 'durable', /boolean/],
    ['durable with topic', { topic: 't', body: 'x', durable: true }, 'durable', /to a topic are not supported/],
    ['durable with all', { all: true, body: 'x', durable: true }, 'durable', /to all devices are not supported/],
    ['id not string', { device_id: 'd', body: 'x', id: 7 }, 'id', /string/],
    ['id empty', { device_id: 'd', body: 'x', id: '' }, 'id', /empty/],
    ['id 129 chars', { device_id: 'd', body: 'x', id: long(129) }, 'id', /128 characters/],
  ];
  for (const [name, input, field, why] of cases) test(name, () => bad(input, field, why));

  test('every error is reported at once', () => {
    const v = validatePush({ device_id: '', body_b64: '!!', priority: 'x', ttl_s: -2, id: '', zz: 1 }, KEY, newId);
    assert.equal(v.ok, false);
    if (v.ok) return;
    assert.deepEqual(
      v.errors.map((e) => e.field),
      ['zz', 'device_id', 'body_b64', 'priority', 'ttl_s', 'id'],
    );
    assert.match(describeFieldErrors(v.errors), /^zz: unknown field; device_id: must not be empty; /);
  });

  test('newId is called only when no id is given', () => {
    let calls = 0;
    const gen = (): string => {
      calls++;
      return 'g';
    };
    validatePush({ device_id: 'd', body: 'x', id: 'mine' }, KEY, gen);
    validatePush({ device_id: '', body: 'x' }, KEY, gen);
    assert.equal(calls, 0);
    validatePush({ device_id: 'd', body: 'x' }, KEY, gen);
    assert.equal(calls, 1);
  });
});
