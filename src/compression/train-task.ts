/**
 * The piscina task that trains a dictionary (zdict, in the native module) off the event
 * loop, then measures it on held-out samples: every tenth sample is kept out of
 * training and compressed with the new dictionary and without one.
 */
import { compressionCodec, dictIdOf } from './codec';

export interface TrainTask {
  /** Samples back to back; their lengths in `sizes`. */
  samples: Uint8Array;
  sizes: Uint32Array;
  maxSize: number;
  level: number;
}

export interface TrainResult {
  dict: Uint8Array;
  trained: number;
  heldOut: number;
  /** Held-out bytes before, and after zstd with and without the dictionary. */
  before: number;
  withDict: number;
  without: number;
}

export function train(task: TrainTask): TrainResult {
  const native = compressionCodec();
  if (native === null) throw new Error('the native module (compression) is not available in the training thread');
  const trainParts: Uint8Array[] = [];
  const trainSizes: number[] = [];
  const held: Uint8Array[] = [];
  let off = 0;
  for (let i = 0; i < task.sizes.length; i++) {
    const s = task.samples.subarray(off, off + task.sizes[i]);
    off += task.sizes[i];
    if (i % 10 === 9) held.push(s);
    else {
      trainParts.push(s);
      trainSizes.push(s.length);
    }
  }
  const dict = native.trainDictionary(Buffer.concat(trainParts), Uint32Array.from(trainSizes), task.maxSize);
  const id = native.zstdLoadDict(dict, task.level);
  let before = 0;
  let withDict = 0;
  let without = 0;
  try {
    const dst = Buffer.allocUnsafe(64 * 1024);
    for (const s of held) {
      if (s.length > dst.length) continue;
      before += s.length;
      withDict += native.zstdCompressInto(s, dst, id, task.level) || s.length;
      without += native.zstdCompressInto(s, dst, 0, task.level) || s.length;
    }
  } finally {
    native.zstdUnloadDict(id);
  }
  if (dictIdOf(dict) !== id) throw new Error('trained dictionary has an unexpected header');
  return { dict, trained: trainSizes.length, heldOut: held.length, before, withDict, without };
}
