/**
 * Compression without a gateway: the codecs through N-API (round trips, "only when
 * smaller", the bomb guard), the lag policy, the sample ring, the dictionary table, and
 * training/installing/retiring against an in-memory store.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pushCorpus, rng } from '../bench/lib/push-corpus';
import { Codec, compressionCodec, Deflater, dictIdOf, InflateFault, Inflater, setDictId } from '../src/compression/codec';
import { DictTable } from '../src/compression/dicts';
import { type DictIndex, type MetaStore, readIndex, writeInUse, writeSamples } from '../src/compression/docs';
import { ACCEPTS_LZ4, ACCEPTS_ZSTD, LagPolicy, PolicyState } from '../src/compression/policy';
import { decodeSamples, encodeSamples, SampleRing } from '../src/compression/sampler';
import { DictTrainer, retireBeyond } from '../src/compression/train';

const native = compressionCodec();
if (native === null) throw new Error('these tests need the native module (npm run build:native)');
const corpus = pushCorpus(3000, 7).map((m) => m.payload);
const quiet = { warn() {}, info() {} };

function trainDict(size = 16 * 1024, id = 0): Buffer {
  const parts = corpus.slice(0, 2500);
  const dict = native!.trainDictionary(Buffer.concat(parts), Uint32Array.from(parts, (p) => p.length), size);
  if (id) setDictId(dict, id);
  return dict;
}

class MemStore implements MetaStore {
  readonly map = new Map<string, Buffer>();
  async getMeta(key: string): Promise<Buffer | null> {
    return this.map.get(key) ?? null;
  }
  async putMeta(key: string, value: Buffer): Promise<void> {
    this.map.set(key, Buffer.from(value));
  }
}

describe('codecs', () => {
  const dict = trainDict(16 * 1024, 40_123);
  const id = native.zstdLoadDict(dict, 3);
  const held = corpus.slice(2500);

  test('a trained dictionary round-trips every held-out message, and beats zstd alone', () => {
    assert.equal(id, 40_123);
    assert.equal(dictIdOf(dict), 40_123);
    const d = new Deflater(native);
    const inf = new Inflater(native, 65_536);
    let plain = 0;
    let withDict = 0;
    for (const m of held) {
      const n = d.deflate(Codec.ZSTD, m, id, 3);
      assert.ok(n > 0, 'a dictionary always pays on these');
      withDict += n;
      const frame = Buffer.from(d.out.subarray(0, n));
      assert.equal(native.zstdFrameDictId(frame), 40_123, 'the frame header names the dictionary');
      const back = inf.inflate(Codec.ZSTD, frame);
      assert.ok(Buffer.isBuffer(back) && back.equals(m));
      plain += d.deflate(Codec.ZSTD, m, 0, 3) || m.length;
    }
    assert.ok(plain / withDict > 1.5, `dictionary ${withDict} B vs plain ${plain} B`);
  });

  test('lz4 round-trips; compression that does not pay gives 0', () => {
    const d = new Deflater(native);
    const inf = new Inflater(native, 65_536);
    const m = held[0];
    const n = d.deflate(Codec.LZ4, m, 0, 3);
    assert.ok(n > 0 && n < m.length);
    const back = inf.inflate(Codec.LZ4, Buffer.from(d.out.subarray(0, n)));
    assert.ok(Buffer.isBuffer(back) && back.equals(m));
    const noise = Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 7919 + 13) % 251));
    assert.equal(d.deflate(Codec.LZ4, noise, 0, 3), 0);
    assert.equal(d.deflate(Codec.ZSTD, noise, 0, 3), 0);
  });

  test('bomb guard: a payload that would decompress past the limit is refused before it is written', () => {
    const zeros = Buffer.alloc(1 << 20);
    const dst = Buffer.allocUnsafe(2 << 20);
    // zstd with the content size in the header: refused from the header alone.
    const z = Buffer.from(dst.subarray(0, native.zstdCompressInto(zeros, dst, 0, 3)));
    assert.ok(z.length < 200, `a 1 MiB bomb is ${z.length} B`);
    assert.equal(new Inflater(native, 65_536).inflate(Codec.ZSTD, z), InflateFault.TOO_LARGE);
    // lz4: the declared size says it.
    const l = Buffer.from(dst.subarray(0, native.lz4CompressInto(zeros, dst)));
    assert.equal(new Inflater(native, 65_536).inflate(Codec.LZ4, l), InflateFault.TOO_LARGE);
    // Exactly at the limit is fine.
    const atLimit = Buffer.alloc(65_536, 1);
    const ok = Buffer.from(dst.subarray(0, native.zstdCompressInto(atLimit, dst, 0, 3)));
    const back = new Inflater(native, 65_536).inflate(Codec.ZSTD, ok);
    assert.ok(Buffer.isBuffer(back) && back.length === 65_536);
  });

  test('corrupt payloads and unknown dictionaries are faults, never exceptions', () => {
    const inf = new Inflater(native, 65_536);
    const d = new Deflater(native);
    const n = d.deflate(Codec.ZSTD, held[1], id, 3);
    const good = Buffer.from(d.out.subarray(0, n));
    const flipped = Buffer.from(good);
    flipped[flipped.length - 3] ^= 0xff;
    const r = inf.inflate(Codec.ZSTD, flipped);
    assert.ok(r === InflateFault.CORRUPT || (Buffer.isBuffer(r) && !r.equals(held[1])), 'a flipped byte is caught or at least not the message');
    assert.equal(inf.inflate(Codec.ZSTD, Buffer.from('definitely not zstd')), InflateFault.CORRUPT);
    assert.equal(inf.inflate(Codec.ZSTD, good.subarray(0, good.length - 1)), InflateFault.CORRUPT, 'truncated');
    assert.equal(inf.inflate(Codec.ZSTD, Buffer.concat([good, Buffer.from([0])])), InflateFault.CORRUPT, 'trailing byte');
    assert.equal(inf.inflate(Codec.LZ4, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01])), InflateFault.CORRUPT, 'a 6-byte varint');
    assert.equal(inf.inflate(Codec.LZ4, Buffer.from([0x10, 0xf0, 1, 2])), InflateFault.CORRUPT);
    const other = trainDict(8 * 1024, 40_999);
    const otherId = native.zstdLoadDict(other, 3);
    const m = d.deflate(Codec.ZSTD, held[2], otherId, 3);
    const framed = Buffer.from(d.out.subarray(0, m));
    native.zstdUnloadDict(otherId);
    assert.equal(inf.inflate(Codec.ZSTD, framed), InflateFault.UNKNOWN_DICT);
  });
});

describe('LagPolicy', () => {
  const cfg = { lag_ms: 100, lag_recover_ms: 10_000 };

  test('steps up one state per laggy second, back one per calm recovery period', () => {
    const p = new LagPolicy(() => cfg, 0);
    assert.equal(p.state, PolicyState.FULL);
    assert.equal(p.observe(150, 1000), true);
    assert.equal(p.state, PolicyState.RAISED);
    p.observe(150, 2000);
    assert.equal(p.state, PolicyState.LZ4);
    p.observe(150, 3000);
    p.observe(500, 4000);
    assert.equal(p.state, PolicyState.IDENTITY, 'stops at identity');
    assert.equal(p.observe(80, 5000), false, 'between half and full lag: hold');
    assert.equal(p.observe(10, 14_000), false, 'calm since 5 s only');
    assert.equal(p.observe(10, 15_001), true);
    assert.equal(p.state, PolicyState.LZ4);
    p.observe(10, 25_002);
    p.observe(10, 35_003);
    assert.equal(p.state, PolicyState.FULL);
  });

  test('codec per state: threshold, raised threshold, lz4, identity', () => {
    const p = new LagPolicy(() => cfg, 0);
    const both = ACCEPTS_LZ4 | ACCEPTS_ZSTD;
    assert.equal(p.codecFor(0, 5000, 64), Codec.IDENTITY);
    assert.equal(p.codecFor(both, 63, 64), -2, 'below the threshold');
    assert.equal(p.codecFor(both, 64, 64), Codec.ZSTD);
    assert.equal(p.codecFor(ACCEPTS_LZ4, 64, 64), Codec.LZ4, 'lz4 for devices that list only lz4');
    p.state = PolicyState.RAISED;
    assert.equal(p.codecFor(both, 200, 64), -2, 'threshold x 4');
    assert.equal(p.codecFor(both, 256, 64), Codec.ZSTD);
    p.state = PolicyState.LZ4;
    assert.equal(p.codecFor(both, 1000, 64), Codec.LZ4);
    assert.equal(p.codecFor(ACCEPTS_ZSTD, 1000, 64), -1, 'zstd-only devices get identity');
    p.state = PolicyState.IDENTITY;
    assert.equal(p.codecFor(both, 1000, 64), -1);
  });
});

describe('SampleRing', () => {
  test('a circular log of the newest samples within its bytes, whatever their sizes (property)', () => {
    const r = rng(7);
    for (let run = 0; run < 200; run++) {
      const cap = 64 + Math.floor(r() * 4000);
      const ring = new SampleRing(cap, () => 1);
      const added: Buffer[] = [];
      let biggest = 0;
      for (let i = 0; i < 300; i++) {
        const s = Buffer.alloc(1 + Math.floor(r() * (r() < 0.1 ? cap : 120)), i % 251);
        ring.add(s);
        if (4 + s.length <= cap) {
          added.push(s);
          biggest = Math.max(biggest, 4 + s.length);
        }
        // What it must hold: the longest run of newest samples whose records fit in cap.
        let want = 0;
        let bytes = 0;
        for (let k = added.length - 1; k >= 0 && bytes + 4 + added[k].length <= cap; k--) {
          bytes += 4 + added[k].length;
          want++;
        }
        const got = ring.samples();
        const gotBytes = got.reduce((n, x) => n + 4 + x.length, 0);
        assert.ok(got.length <= want && got.length >= Math.min(want, 1), `run ${run} step ${i}: ${got.length} of at most ${want}`);
        // Wrapping wastes less than one record at the end, and the gap before the oldest less than another.
        assert.ok(bytes === 0 || gotBytes > bytes - 2 * biggest, `run ${run} step ${i}: ${gotBytes} B kept of ${bytes}`);
        assert.deepEqual(got, added.slice(added.length - got.length), `run ${run} step ${i}: the newest, in order`);
        assert.equal(ring.size, got.length);
      }
    }
  });

  test('one in N, built only when kept, bounded by bytes (newest kept), stored and loaded', () => {
    const ring = new SampleRing(64 * 1024, () => 2);
    let built = 0;
    for (let i = 0; i < 2000; i++) {
      ring.offer(() => {
        built++;
        return Buffer.alloc(100, i % 256);
      });
    }
    assert.equal(built, 1000, 'a payload is encoded only for the pushes kept');
    const fit = Math.floor((64 * 1024) / 104);
    assert.ok(ring.size >= fit - 1 && ring.size <= fit, `1,000 sampled, the ring holds 64 KiB / (4 + 100) of them (less one record lost to wrapping): ${ring.size}`);
    assert.deepEqual(ring.samples().at(-1), Buffer.alloc(100, 1999 % 256), 'newest kept');
    const all = new SampleRing(64 * 1024, () => 1);
    all.offer(() => Buffer.alloc(20_000));
    assert.equal(all.size, 0, 'payloads over 16 KiB are not samples');
    const stored = ring.serialize();
    assert.equal(ring.dirty, false);
    const again = new SampleRing(64 * 1024, () => 1);
    again.load(stored);
    assert.equal(again.size, ring.size);
    assert.deepEqual(again.samples().at(-1), ring.samples().at(-1));
    assert.deepEqual(decodeSamples(encodeSamples([Buffer.from('ab'), Buffer.from('c')])), [Buffer.from('ab'), Buffer.from('c')]);
    assert.deepEqual(decodeSamples(Buffer.from([5, 0, 0, 0, 1])), [], 'a torn entry is dropped');
    assert.deepEqual(again.samples(), ring.samples());
    const off = new SampleRing(64 * 1024, () => 0);
    off.offer(() => assert.fail('not built when sampling is off'));
    assert.equal(off.size, 0, 'sample_one_in = 0 samples nothing');
  });
});

describe('DictTable', () => {
  test('negotiates the newest active dictionary held; retired ones stay loaded while sessions use them', async () => {
    const a = trainDict(8 * 1024, 41_001);
    const b = trainDict(8 * 1024, 41_002);
    const bytes = new Map([
      [41_001, a],
      [41_002, b],
    ]);
    const fetch = async (id: number) => bytes.get(id) ?? null;
    const t = new DictTable(native, 3, quiet);
    const info = (id: number, retired = 0) => ({ id, bytes: 1, at: 0, samples: 1, retired });
    await t.apply({ gen: 1, lastId: 41_001, dicts: [info(41_001)] }, fetch);
    const ea = t.negotiate([41_001, 7])!;
    assert.equal(ea.id, 41_001);
    t.acquire(ea.slot);
    await t.apply({ gen: 2, lastId: 41_002, dicts: [info(41_001, 2), info(41_002)] }, fetch);
    assert.equal(t.newest?.id, 41_002);
    assert.equal(t.negotiate([41_001])?.id, undefined, 'retired: not given to new sessions');
    assert.equal(t.negotiate([41_001, 41_002])?.id, 41_002);
    assert.deepEqual(t.inUse(), [41_001]);
    await t.apply({ gen: 3, lastId: 41_002, dicts: [info(41_002)] }, fetch);
    assert.equal(t.get(41_001)?.id, 41_001, 'gone from the index, but a session uses it');
    t.release(ea.slot);
    assert.equal(t.get(41_001), null, 'unloaded with its last session');
    assert.deepEqual(t.ids(), [41_002]);
    await t.apply({ gen: 4, lastId: 41_002, dicts: [] }, fetch);
    assert.equal(t.newest, null);
  });
});

describe('DictTrainer', () => {
  async function seeded(): Promise<{ store: MemStore; trainer: DictTrainer; now: { t: number } }> {
    const store = new MemStore();
    await store.putMeta('compression/workers', Buffer.from(JSON.stringify(['n.0'])));
    await writeSamples(store, 'n.0', encodeSamples(corpus.slice(0, 1500)));
    const now = { t: 1_000_000 };
    const config = { dict_bytes: 8 * 1024, dict_min_samples: 100, dict_keep: 1, zstd_level: 3, dict_poll_ms: 1000 } as never;
    return { store, trainer: new DictTrainer(store, () => config, quiet, () => now.t), now };
  }

  test('ids are zdict\'s own unless taken, never reused; versions beyond dict_keep retire, and go once unused', async () => {
    const { store, trainer, now } = await seeded();
    const dict = trainDict(8 * 1024);
    const zid = dictIdOf(dict);
    const first = await trainer.install(Buffer.from(dict), 10);
    const a = first.id;
    assert.equal(a, zid, 'the content-derived id');
    assert.equal(dictIdOf(store.map.get(`compression/dict/${a}`)!), a, 'the stored bytes carry the id');
    // A worker on generation 1 reports its devices use the first dictionary.
    await writeInUse(store, 'n.0', { at: now.t, gen: 1, ids: [a] });
    const second = await trainer.install(Buffer.from(dict), 10);
    const b = second.id;
    assert.notEqual(b, a, 'same bytes, but the id is taken: rehashed');
    assert.ok(b >= 32_768 && b < 2 ** 31);
    assert.deepEqual(second.retired, [a]);
    let index: DictIndex = await readIndex(store);
    assert.equal(index.dicts.find((d) => d.id === a)?.retired, 2);
    assert.deepEqual(await trainer.collect(), [], 'the worker has not seen generation 2 yet');
    await writeInUse(store, 'n.0', { at: now.t, gen: 2, ids: [a] });
    assert.deepEqual(await trainer.collect(), [], 'a connected device still uses it');
    await writeInUse(store, 'n.0', { at: now.t, gen: 2, ids: [] });
    assert.deepEqual(await trainer.collect(), [a]);
    assert.equal(store.map.get(`compression/dict/${a}`)?.length, 0, 'deleted: an empty value is left');
    index = await readIndex(store);
    assert.deepEqual(
      index.dicts.map((d) => d.id),
      [b],
    );
    // Deleted and gone from the index, the id stays taken.
    const third = await trainer.install(Buffer.from(dict), 10);
    assert.ok(![a, b].includes(third.id));
  });

  test('a worker whose report is stale does not hold deletion back; retireBeyond keeps the newest', async () => {
    const { store, trainer, now } = await seeded();
    const dict = trainDict(8 * 1024);
    const { id } = await trainer.install(Buffer.from(dict), 10);
    await writeInUse(store, 'n.0', { at: now.t, gen: 1, ids: [id] });
    await trainer.install(Buffer.from(dict), 10);
    now.t += 61_000;
    assert.deepEqual(await trainer.collect(), [id]);
    const idx: DictIndex = { gen: 5, lastId: 3, dicts: [1, 2, 3].map((id) => ({ id, bytes: 1, at: 0, samples: 1, retired: 0 })) };
    assert.deepEqual(retireBeyond(idx, 2), [1]);
    assert.deepEqual(
      idx.dicts.map((d) => d.retired),
      [5, 0, 0],
    );
  });

  test('training runs in a piscina thread and reports held-out ratios; too few samples is refused', async () => {
    const { store, trainer } = await seeded();
    try {
      const out = await trainer.train();
      assert.ok(out.id >= 32_768);
      assert.equal(out.samples, 1500);
      assert.equal(out.held_out, 150);
      assert.ok(out.ratio_dict > out.ratio_plain, JSON.stringify(out));
      const few = new MemStore();
      await few.putMeta('compression/workers', Buffer.from(JSON.stringify(['n.0'])));
      await writeSamples(few, 'n.0', encodeSamples(corpus.slice(0, 10)));
      const t2 = new DictTrainer(few, () => ({ dict_bytes: 8192, dict_min_samples: 100, dict_keep: 1, zstd_level: 3, dict_poll_ms: 1000 }) as never, quiet);
      await assert.rejects(t2.train(), (e: Error & { code?: string }) => e.code === 'TOO_FEW_SAMPLES' && /10 samples/.test(e.message));
      t2.close();
      assert.ok((await readIndex(store)).dicts.length === 1);
    } finally {
      trainer.close();
    }
  });
});
