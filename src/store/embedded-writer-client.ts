/**
 * The worker's side of the store writer thread (embedded-writer.ts): sends each write
 * transaction there and resolves when it is committed and fsynced.
 *
 * The thread is started with the store and kept unref'd while nothing is pending, so an
 * idle store never holds a process open. If it dies (it should not: a crash there is a
 * bug or an out-of-memory), the writes it held fail with STORE_UNAVAILABLE, which the
 * API answers with 503 and a Retry-After, and the next write starts a new thread.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FromWriter, ToWriter } from './embedded-writer';
import type { WriteOp, WriteResult } from './embedded-writes';

/** The writer thread stopped while writes were in flight; none of them is known to be stored. */
export class StoreWriterLostError extends Error {
  readonly code = 'STORE_UNAVAILABLE' as const;
  readonly retryAfterMs = 1000;

  constructor(detail: string) {
    super(`the embedded store's writer thread stopped (${detail}); the write was not confirmed`);
    this.name = 'StoreWriterLostError';
  }
}

interface Pending {
  resolve: (r: WriteResult) => void;
  reject: (e: Error) => void;
}

// Small heaps: the thread holds a batch of small buffers at a time, and its young
// generation is paged in as it is used: 1 MB instead of 4 kept ~1.5 MB less RSS after
// 6,000 appends and acks (a throwaway measurement), at the price of more, tiny scavenges.
const LIMITS = { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 128 };

export class StoreWriter {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed: Promise<void> | null = null;

  constructor(private readonly dir: string) {
    this.worker = this.spawn();
  }

  run(w: WriteOp): Promise<WriteResult> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    this.worker ??= this.spawn();
    const worker = this.worker;
    const id = this.nextId++;
    return new Promise<WriteResult>((resolve, reject) => {
      if (this.pending.size === 0) worker.ref();
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, w } satisfies ToWriter);
    });
  }

  /** Waits for the writes already sent, then stops the thread and closes its environment. */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      const worker = this.worker;
      if (!worker) return resolve();
      worker.ref();
      worker.once('exit', () => resolve());
      worker.postMessage({ close: true } satisfies ToWriter);
    });
    return this.closed;
  }

  private spawn(): Worker {
    const worker = new Worker(path.join(__dirname, 'embedded-writer.js'), {
      workerData: { dir: this.dir },
      resourceLimits: LIMITS,
    });
    worker.unref();
    worker.on('message', (m: FromWriter) => this.answer(worker, m));
    worker.on('error', (err) => this.lose(worker, err.message));
    worker.on('exit', (code) => this.lose(worker, `exit code ${code}`));
    return worker;
  }

  private answer(worker: Worker, m: FromWriter): void {
    if ('closed' in m) return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (this.pending.size === 0 && !this.closed) worker.unref();
    if (m.ok) p.resolve(m.r);
    else p.reject(Object.assign(new Error(m.e.message), { name: m.e.name }, m.e.code ? { code: m.e.code } : {}));
  }

  private lose(worker: Worker, detail: string): void {
    if (this.worker !== worker) return;
    this.worker = null;
    const lost = [...this.pending.values()];
    this.pending.clear();
    for (const p of lost) p.reject(new StoreWriterLostError(detail));
  }
}
