/**
 * A second (third, ...) process on the same embedded store, for test/store-embedded.test.ts:
 *   node store-child.js append <dir> <deviceId> <count> <tag>
 * appends `count` pushes (single calls and small batches, to interleave with a sibling)
 * and prints the seqs it got for `deviceId` as JSON. With no arguments it does nothing:
 * `node --test dist/test/` runs every file here, helpers included.
 */
import { EmbeddedStore } from '../src/store/embedded';

async function main(argv: string[]): Promise<void> {
  const [mode, dir, deviceId, countArg, tag] = argv;
  if (mode !== 'append') return;
  const store = await EmbeddedStore.open(dir);
  const mine: number[] = [];
  const count = Number(countArg);
  for (let i = 0; i < count; ) {
    const push = (n: number) => ({
      id: `${tag}-${n}`,
      topic: '',
      body: Buffer.from(`${tag}-${n}`),
      priority: 0,
      expiresAtMs: 0,
      sentAtMs: n,
    });
    if (i % 5 === 0 && i + 1 < count) {
      // A batch with a bystander device in the middle: seqs must still be per device.
      const seqs = await store.append([
        { deviceId, push: push(i) },
        { deviceId: `bystander-${tag}`, push: push(i) },
        { deviceId, push: push(i + 1) },
      ]);
      mine.push(seqs[0], seqs[2]);
      i += 2;
    } else {
      mine.push(...(await store.append([{ deviceId, push: push(i) }])));
      i += 1;
    }
  }
  await store.close();
  process.stdout.write(JSON.stringify(mine));
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err);
  process.exit(1);
});
