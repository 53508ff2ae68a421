/**
 * The heartbeat class table in fleet mode: it goes through Store.getMeta/putMeta
 * (src/heartbeat/sync.ts), so on the Redis engine every node shares it. Two "nodes" (two
 * RedisStore instances on one Redis, as two gateway processes would have) add up their
 * evidence, the decision reaches both, and a restarted node reads it back; on a cluster
 * the one meta key works like any other key.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { defaults } from '../src/config/schema';
import { NetKind } from '../src/heartbeat/kinds';
import { HeartbeatPolicy, policyOptions } from '../src/heartbeat/policy';
import { TableSync } from '../src/heartbeat/sync';
import { parseTable, TABLE_KEY } from '../src/heartbeat/table';
import { RedisStore } from '../src/store/redis';
import { type RedisCluster, type RedisServer, startCluster, startRedis } from './helpers/redis';

let single: Promise<RedisServer> | undefined;
let cluster: Promise<RedisCluster> | undefined;
after(async () => {
  await (await single?.catch(() => undefined))?.stop();
  await (await cluster?.catch(() => undefined))?.stop();
});

const CELL = NetKind.CELL_4G;
const fail = { warn: (_o: object, msg: string) => assert.fail(msg) };
let ids = 0;

for (const kind of ['redis', 'redis cluster'] as const) {
  describe(`heartbeat class table on ${kind}`, () => {
    it('evidence from two nodes adds up, the decision reaches both, and a restart keeps it', async () => {
      const url = kind === 'redis' ? (await (single ??= startRedis())).url('hb') : (await (cluster ??= startCluster(3))).url('hb');
      const [sa, sb] = await Promise.all([RedisStore.open(url), RedisStore.open(url)]);
      let t = 1_000_000;
      const clock = () => t;
      const mk = (w: string) => new HeartbeatPolicy({ ...policyOptions(defaults().heartbeat), maxProbes: 100 }, clock, () => 0, null, w);
      const survive = (p: HeartbeatPolicy, k: number) => {
        let tag = p.open(CELL, 'fleet-carrier', false);
        for (let i = 0; i < k; i++) tag = p.ping(tag, p.intervalOf(tag), p.intervalOf(tag), `dev-${++ids}`);
      };
      const a = mk('a.0');
      const b = mk('b.0');
      const syncA = new TableSync(a, sa, fail, 60_000, clock);
      const syncB = new TableSync(b, sb, fail, 60_000, clock);
      try {
        await syncA.start();
        await syncB.start();
        for (let i = 0; i < 3; i++) survive(a, 2);
        for (let i = 0; i < 2; i++) survive(b, 2);
        assert.equal(a.adviceFor(CELL, 'fleet-carrier'), 270_000, 'one node alone has too little evidence');
        await syncA.sync();
        await syncB.sync();
        assert.equal(b.adviceFor(CELL, 'fleet-carrier'), 330_000, '3 + 2 successes across nodes');
        await syncA.sync();
        assert.equal(a.adviceFor(CELL, 'fleet-carrier'), 330_000);
        await syncA.stop();
        await syncB.stop();
        t += 1000;
        const c = mk('a.0');
        await new TableSync(c, sa, fail, 60_000, clock).sync();
        assert.equal(c.adviceFor(CELL, 'fleet-carrier'), 330_000, 'a restarted node reads the shared table');
        const doc = parseTable(await sb.getMeta(TABLE_KEY));
        assert.ok(doc.classes.some((x) => x.c === 'fleet-carrier'));
      } finally {
        await Promise.all([sa.close(), sb.close()]);
      }
    });
  });
}
