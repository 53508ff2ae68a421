/**
 * The worker mesh: every worker listens on a unix socket and dials every other
 * worker. Messages are moor/1 frames (same codec as devices): one-way messages are
 * PUSH frames with stream 0, requests are REQUEST frames with a stream id, answers
 * are RESPONSE frames on the same stream. Payload: [op u8][header length varint]
 * [header JSON][raw bytes]. A worker sends on the socket it dialed and answers on
 * the socket it accepted, so each direction has one ordered channel.
 */
import { mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { FrameType } from '../protocol/constants';
import { IN_SPILL, OUT_HEADER, OUT_STRIDE, outSizeFor, TsFrameDecoder } from '../protocol/decoder';
import { encodeFrame, varintSize, writeVarint } from '../protocol/encoder';

/** Mesh frames may carry batches far above a device's max_frame. */
const MESH_MAX_FRAME = 256 * 1024 * 1024;
const REQUEST_TIMEOUT_MS = 5_000;
const EMPTY = Buffer.alloc(0);

export interface MeshMessage {
  from: number;
  op: number;
  // biome-ignore lint/suspicious/noExplicitAny: headers are small JSON documents, typed per op by the handler
  hdr: any;
  raw: Buffer;
}

export interface MeshReply {
  hdr: unknown;
  raw?: Uint8Array;
}

export interface MeshHandler {
  onMessage(m: MeshMessage): void;
  onRequest(m: MeshMessage): Promise<MeshReply>;
  /** A dialed connection to `peer` came up (first time or after the peer restarted). */
  onPeerUp(peer: number): void;
}

interface Pending {
  resolve(r: MeshMessage): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export class MeshError extends Error {
  readonly code = 'MESH_UNAVAILABLE' as const;
}

export function meshSocketPath(dir: string, index: number): string {
  return path.join(dir, `w${index}.sock`);
}

export function encodeMeshPayload(op: number, hdr: unknown, raw: Uint8Array = EMPTY): Buffer {
  const json = Buffer.from(JSON.stringify(hdr ?? null));
  const out = Buffer.allocUnsafe(1 + varintSize(json.length) + json.length + raw.length);
  out[0] = op;
  let p = writeVarint(out, 1, json.length);
  p += json.copy(out, p);
  out.set(raw, p);
  return out;
}

export function decodeMeshPayload(from: number, payload: Buffer): MeshMessage {
  const op = payload[0];
  let len = 0;
  let shift = 0;
  let p = 1;
  for (;;) {
    const b = payload[p++];
    len += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) break;
    shift += 7;
  }
  const hdr = JSON.parse(payload.toString('utf8', p, p + len));
  return { from, op, hdr, raw: payload.subarray(p + len) };
}

export class Mesh {
  private server: net.Server | null = null;
  private readonly dialed: (net.Socket | null)[];
  private readonly retryMs: number[];
  private readonly pending = new Map<number, Pending>();
  private nextStream = 1;
  private closed = false;

  constructor(
    readonly index: number,
    readonly count: number,
    private readonly dir: string,
    private readonly handler: MeshHandler,
    private readonly log: Logger,
  ) {
    this.dialed = new Array(count).fill(null);
    this.retryMs = new Array(count).fill(50);
  }

  async listen(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    const file = meshSocketPath(this.dir, this.index);
    rmSync(file, { force: true });
    this.server = net.createServer((sock) => this.accept(sock));
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      // exclusive: in a cluster worker, listen() would otherwise share one socket held by the
      // primary across every process that binds the path, old and new worker alike.
      this.server?.listen({ path: file, exclusive: true }, () => resolve());
    });
    for (let i = 0; i < this.count; i++) if (i !== this.index) this.dial(i);
  }

  /** Resolves when every peer link is up, or after `timeoutMs` (a crashing peer must not block start-up). */
  async whenAllUp(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let up = true;
      for (let i = 0; i < this.count; i++) if (!this.isUp(i)) up = false;
      if (up) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  isUp(peer: number): boolean {
    return peer === this.index || this.dialed[peer] !== null;
  }

  send(to: number, op: number, hdr: unknown, raw?: Uint8Array): boolean {
    if (to === this.index) {
      const m: MeshMessage = { from: this.index, op, hdr, raw: raw ? Buffer.from(raw) : EMPTY };
      setImmediate(() => this.handler.onMessage(m));
      return true;
    }
    const sock = this.dialed[to];
    if (!sock) return false;
    sock.write(encodeFrame(FrameType.PUSH, 0, 0, encodeMeshPayload(op, hdr, raw)));
    return true;
  }

  broadcast(op: number, hdr: unknown, raw?: Uint8Array): void {
    for (let i = 0; i < this.count; i++) this.send(i, op, hdr, raw);
  }

  request(to: number, op: number, hdr: unknown, raw?: Uint8Array, timeoutMs = REQUEST_TIMEOUT_MS): Promise<MeshMessage> {
    if (to === this.index) {
      const m: MeshMessage = { from: this.index, op, hdr, raw: raw ? Buffer.from(raw) : EMPTY };
      return this.handler.onRequest(m).then((r) => ({ from: this.index, op, hdr: r.hdr, raw: r.raw ? Buffer.from(r.raw) : EMPTY }));
    }
    const sock = this.dialed[to];
    if (!sock) return Promise.reject(new MeshError(`worker ${to} is not reachable`));
    const stream = this.nextStream;
    this.nextStream = this.nextStream >= 0x7fffffff ? 1 : this.nextStream + 1;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(stream);
        reject(new MeshError(`worker ${to} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(stream, { resolve, reject, timer });
      sock.write(encodeFrame(FrameType.REQUEST, 0, stream, encodeMeshPayload(op, hdr, raw)));
    });
  }

  close(): void {
    this.closed = true;
    this.server?.close();
    for (const s of this.dialed) s?.destroy();
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new MeshError('mesh closed'));
    }
    this.pending.clear();
  }

  private dial(peer: number): void {
    if (this.closed) return;
    const sock = net.connect(meshSocketPath(this.dir, peer));
    sock.setNoDelay(true);
    let up = false;
    sock.once('connect', () => {
      up = true;
      this.retryMs[peer] = 50;
      this.dialed[peer] = sock;
      sock.write(encodeFrame(FrameType.HELLO, 0, 0, encodeMeshPayload(0, { from: this.index })));
      this.log.debug({ peer }, 'mesh peer up');
      this.handler.onPeerUp(peer);
    });
    this.readFrames(sock, peer, (type, stream, payload) => {
      if (type !== FrameType.RESPONSE) return;
      const p = this.pending.get(stream);
      if (!p) return;
      this.pending.delete(stream);
      clearTimeout(p.timer);
      p.resolve(decodeMeshPayload(peer, payload));
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      if (this.dialed[peer] === sock) this.dialed[peer] = null;
      if (up) this.log.debug({ peer }, 'mesh peer down');
      if (this.closed) return;
      const wait = this.retryMs[peer];
      this.retryMs[peer] = Math.min(wait * 2, 1_000);
      setTimeout(() => this.dial(peer), wait).unref();
    });
  }

  private accept(sock: net.Socket): void {
    sock.setNoDelay(true);
    let from = -1;
    this.readFrames(sock, -1, (type, stream, payload) => {
      if (type === FrameType.HELLO) {
        from = decodeMeshPayload(-1, payload).hdr.from;
        return;
      }
      const m = decodeMeshPayload(from, payload);
      if (type === FrameType.PUSH) {
        this.handler.onMessage(m);
        return;
      }
      if (type !== FrameType.REQUEST) return;
      this.handler.onRequest(m).then(
        (r) => {
          if (!sock.destroyed) sock.write(encodeFrame(FrameType.RESPONSE, 0, stream, encodeMeshPayload(m.op, r.hdr, r.raw)));
        },
        (err: Error) => {
          if (!sock.destroyed) sock.write(encodeFrame(FrameType.RESPONSE, 0, stream, encodeMeshPayload(m.op, { error: err.message })));
        },
      );
    });
    sock.on('error', () => {});
  }

  private readFrames(sock: net.Socket, peer: number, onFrame: (type: number, stream: number, payload: Buffer) => void): void {
    const dec = new TsFrameDecoder(MESH_MAX_FRAME);
    let out = new Uint32Array(outSizeFor(65_536));
    sock.on('data', (chunk: Buffer) => {
      if (out.length < outSizeFor(chunk.length)) out = new Uint32Array(outSizeFor(chunk.length));
      dec.feed(chunk, out);
      const n = out[0];
      for (let i = 0; i < n; i++) {
        const o = OUT_HEADER + i * OUT_STRIDE;
        const off = out[o + 3];
        const payload = off === IN_SPILL ? dec.takeSpill() : chunk.subarray(off, off + out[o + 4]);
        try {
          onFrame(out[o], out[o + 2], payload);
        } catch (err) {
          this.log.error({ err, peer }, 'mesh message handler failed');
        }
      }
      if (out[1] !== 0) {
        this.log.error({ peer, fault: out[1] }, 'mesh stream corrupt; reconnecting');
        sock.destroy();
      }
    });
  }
}
