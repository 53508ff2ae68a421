/**
 * A raw TCP device that can stop reading (socket paused: the kernel buffers fill and
 * then the gateway's), for the slow-consumer tests; and a process's anonymous RSS.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { type Frame, FrameReader } from '../../src/client/frames';
import { hello } from '../../src/client/raw';
import { FrameType, TCP_PREFACE } from '../../src/protocol/constants';
import type { Gateway } from './gateway';

export interface PausableDevice {
  sock: net.Socket;
  pause(): void;
  /** Reads again; resolves with every frame read after the resume, once the gateway has closed. */
  resumeUntilClosed(timeoutMs: number): Promise<Frame[]>;
}

export async function openPausable(gw: Gateway, deviceId: string): Promise<PausableDevice> {
  const sock = net.connect({ host: '127.0.0.1', port: gw.tcpPort });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  sock.on('error', () => {});
  const reader = new FrameReader();
  let frames: Frame[] = [];
  let onFrames: (() => void) | null = null;
  sock.on('data', (d: Buffer) => {
    frames.push(...reader.feed(d));
    onFrames?.();
  });
  sock.write(TCP_PREFACE);
  sock.write(hello({ deviceId, token: await gw.token(deviceId) }));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no WELCOME')), 5000);
    onFrames = () => {
      if (frames.some((f) => f.type === FrameType.WELCOME)) {
        clearTimeout(t);
        onFrames = null;
        resolve();
      }
    };
    onFrames();
  });
  return {
    sock,
    pause() {
      frames = [];
      sock.pause();
    },
    resumeUntilClosed(timeoutMs) {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`still open after ${timeoutMs} ms (${frames.length} frames read)`)), timeoutMs);
        sock.once('close', () => {
          clearTimeout(t);
          resolve(frames);
        });
        sock.resume();
      });
    },
  };
}

/** RssAnon of a process, bytes (/proc/<pid>/status): heap and buffers, not mapped files. */
export function rssAnon(pid: number): number {
  const m = /^RssAnon:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no RssAnon for ${pid}`);
  return Number(m[1]) * 1024;
}
