/** `store.redis_url` parsing (src/store/redis-url.ts): no server needed. */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRedisUrl, RedisUrlError, redactRedisUrl } from '../src/store/redis-url';

describe('store.redis_url', () => {
  it('one host is a single Redis, with defaults', () => {
    assert.deepEqual(parseRedisUrl('redis://10.0.0.5'), {
      cluster: false,
      nodes: [{ host: '10.0.0.5', port: 6379 }],
      tls: false,
      username: undefined,
      password: undefined,
      db: 0,
      prefix: 'moor',
      timeoutMs: 2000,
      liveTtlMs: 15000,
    });
  });

  it('credentials, db, TLS and parameters', () => {
    const t = parseRedisUrl('rediss://gw:p%40ss%3Aword@redis.internal:6380/3?prefix=fleet-a&timeout_ms=750&live_ttl_ms=3000');
    assert.deepEqual(
      [t.tls, t.username, t.password, t.nodes, t.db, t.prefix, t.timeoutMs, t.liveTtlMs],
      [true, 'gw', 'p@ss:word', [{ host: 'redis.internal', port: 6380 }], 3, 'fleet-a', 750, 3000],
    );
    assert.deepEqual(
      [parseRedisUrl('redis://:secret@h').username, parseRedisUrl('redis://:secret@h').password],
      [undefined, 'secret'],
    );
  });

  it('several hosts, or cluster=1, mean Redis Cluster', () => {
    const t = parseRedisUrl('redis://a:7000,b:7001,[::1]:7002');
    assert.equal(t.cluster, true);
    assert.deepEqual(t.nodes, [
      { host: 'a', port: 7000 },
      { host: 'b', port: 7001 },
      { host: '::1', port: 7002 },
    ]);
    assert.equal(parseRedisUrl('redis://seed:7000?cluster=1').cluster, true);
    assert.equal(parseRedisUrl('redis://seed:7000?cluster=0').cluster, false);
  });

  it('refuses what cannot work, naming the problem', () => {
    const bad: Array<[string, RegExp]> = [
      ['', /is required/],
      ['http://h:6379', /not a redis:\/\/ or rediss:\/\/ URL/],
      ['redis://', /names no host/],
      ['redis://h:0', /port "0"/],
      ['redis://h:99999', /port "99999"/],
      ['redis://h/x', /database "x"/],
      ['redis://a,b?cluster=0', /several hosts/],
      ['redis://a,b/2', /only database 0/],
      ['redis://h?cluster=yes', /cluster must be 1 or 0/],
      ['redis://h?prefix=a{b}', /prefix must be/],
      ['redis://h?timeout_ms=5', /timeout_ms/],
      ['redis://h?timeout=5', /unknown parameter "timeout"/],
      ['redis://h?live_ttl_ms=100', /live_ttl_ms/],
      ['redis://%zz@h', /percent-encoding/],
    ];
    for (const [url, why] of bad) {
      assert.throws(
        () => parseRedisUrl(url),
        (err: unknown) => err instanceof RedisUrlError && err.code === 'STORE_CONFIG' && why.test(err.message),
        url,
      );
    }
  });

  it('redacts the password for logs', () => {
    assert.equal(redactRedisUrl('redis://u:secret@h:1/0'), 'redis://u:***@h:1/0');
    assert.equal(redactRedisUrl('rediss://:secret@h'), 'rediss://:***@h');
    assert.equal(redactRedisUrl('redis://h:1'), 'redis://h:1');
  });
});
