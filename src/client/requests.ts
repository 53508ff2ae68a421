/**
 * Outstanding REQUESTs of one session, by stream id. Stream ids live only as long as
 * the connection, so a session's end fails whatever is still open.
 */
import type { moor } from '../protocol/generated/moor';
import { MoorClientError } from './errors';

interface Pending {
  resolve(r: moor.v1.Response): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

const MAX_STREAM = 0xffffffff;

export class RequestTable {
  private next = 1;
  private readonly open = new Map<number, Pending>();

  get size(): number {
    return this.open.size;
  }

  /** A fresh stream id (≠ 0, not in use) and the promise its RESPONSE settles. */
  start(method: string, timeoutMs: number): { stream: number; response: Promise<moor.v1.Response> } {
    let stream = this.next;
    while (this.open.has(stream)) stream = stream === MAX_STREAM ? 1 : stream + 1;
    this.next = stream === MAX_STREAM ? 1 : stream + 1;
    const response = new Promise<moor.v1.Response>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.open.delete(stream);
        reject(new MoorClientError('TIMEOUT', `request ${method} got no response in ${timeoutMs} ms`));
      }, timeoutMs);
      this.open.set(stream, { resolve, reject, timer });
    });
    return { stream, response };
  }

  /** Settle the request on `stream`; false if none is open (late or unknown). */
  settle(stream: number, r: moor.v1.Response): boolean {
    const p = this.open.get(stream);
    if (p === undefined) return false;
    this.open.delete(stream);
    clearTimeout(p.timer);
    p.resolve(r);
    return true;
  }

  /** Fail one request (e.g. its frame could not be sent). */
  fail(stream: number, e: Error): void {
    const p = this.open.get(stream);
    if (p === undefined) return;
    this.open.delete(stream);
    clearTimeout(p.timer);
    p.reject(e);
  }

  failAll(e: Error): void {
    for (const stream of [...this.open.keys()]) this.fail(stream, e);
  }
}
