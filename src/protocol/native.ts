/**
 * Loads the Rust frame codec (native/, built by `npm run build:native`).
 *
 * Never silent: if the module cannot load, or MOOR_NATIVE=0 turns it off, one loud
 * line goes to stderr (once per process) and callers fall back to the TypeScript codec.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as NativeBinding from '../../native/index';
import { IN_SPILL, OUT_HEADER, OUT_STRIDE } from './decoder';

export type NativeCodec = typeof NativeBinding;
/** An instance of the binding's own FrameDecoder class. */
export type NativeDecoderBinding = InstanceType<NativeCodec['FrameDecoder']>;

let cached: NativeCodec | null | undefined;

/** native/ seen from src/protocol (ts sources) or dist/src/protocol (compiled). */
export function nativeDir(): string | null {
  for (const up of ['../..', '../../..']) {
    const dir = path.resolve(__dirname, up, 'native');
    if (fs.existsSync(path.join(dir, 'index.js'))) return dir;
  }
  return null;
}

/**
 * One function exported by the native module (for bindings outside the codec: sdNotify,
 * releaseFileMapping), or why it cannot be had, for the caller to report.
 */
export function nativeFunction<F>(name: string): F | string {
  const dir = nativeDir();
  if (dir === null) return 'native/index.js not found (npm run build:native)';
  try {
    const mod = require(dir) as Record<string, unknown>;
    if (typeof mod[name] === 'function') return mod[name] as F;
    return `${dir} has no ${name}: rebuild it (npm run build:native)`;
  } catch (err) {
    return `loading ${dir} failed: ${(err as Error).message.split('\n')[0]}`;
  }
}

function warn(reason: string): void {
  process.stderr.write(
    `moor: WARNING: native frame codec unavailable (${reason}); using the slower TypeScript codec. Build it with \`npm run build:native\`.\n`,
  );
}

function load(): NativeCodec | null {
  if (process.env.MOOR_NATIVE === '0') {
    warn('disabled by MOOR_NATIVE=0');
    return null;
  }
  const dir = nativeDir();
  if (dir === null) {
    warn('native/index.js not found');
    return null;
  }
  // The generated loader's own message for this case blames npm; say what is missing.
  if (!fs.readdirSync(dir).some((f) => f.endsWith('.node'))) {
    warn(`${dir} has no .node binary`);
    return null;
  }
  let mod: NativeCodec;
  try {
    mod = require(dir) as NativeCodec;
  } catch (err) {
    warn(`loading ${dir} failed: ${(err as Error).message.split('\n')[0]}`);
    return null;
  }
  // A stale build from an older crate must not half-work.
  for (const name of ['FrameDecoder', 'encodeFrame', 'encodeFrames'] as const) {
    if (typeof mod[name] !== 'function') {
      warn(`${dir} has no ${name}: rebuild it`);
      return null;
    }
  }
  if (mod.OUT_HEADER !== OUT_HEADER || mod.OUT_STRIDE !== OUT_STRIDE || mod.IN_SPILL !== IN_SPILL) {
    warn(`${dir} reports frames in another layout than src/protocol/decoder.ts: rebuild it`);
    return null;
  }
  return mod;
}

/** The native codec, or null (after one warning per process) when it cannot be used. */
export function loadNative(): NativeCodec | null {
  if (cached === undefined) cached = load();
  return cached;
}
