/**
 * A forced GC and heap figures for a running node process, from outside, through the
 * inspector protocol: SIGUSR1 opens the process's inspector (on a random port when it
 * runs with NODE_OPTIONS=--inspect-port=0), it prints the URL on its stderr, and
 * HeapProfiler.collectGarbage / Runtime.evaluate do the rest. Used by `bench idle --gc`
 * and for heap snapshots while looking for where the bytes go.
 */
import { createWriteStream } from 'node:fs';
import WebSocket from 'ws';

export interface HeapFigures {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** Bytes used per V8 space (old_space, new_space, code_space, map_space, large_object_space…). */
  spaces: Record<string, number>;
  /** Bytes the process holds per V8 space (used or not). */
  committed: Record<string, number>;
}

export class Inspector {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private chunks: ((s: string) => void) | null = null;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string }; method?: string; params?: { chunk: string } };
      if (m.method === 'HeapProfiler.addHeapSnapshotChunk' && m.params) this.chunks?.(m.params.chunk);
      if (m.id === undefined) return;
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error) p?.reject(new Error(m.error.message));
      else p?.resolve(m.result);
    });
  }

  /**
   * Opens the inspector of `pid` (SIGUSR1) and connects. `nextUrl` resolves with the
   * next "Debugger listening on ws://…" URL the process prints.
   */
  static async attach(pid: number, nextUrl: () => Promise<string>): Promise<Inspector> {
    const url = nextUrl();
    process.kill(pid, 'SIGUSR1');
    const ws = new WebSocket(await url, { perMessageDeflate: false, maxPayload: 1 << 30 });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new Inspector(ws);
  }

  call<T = unknown>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  async gc(): Promise<void> {
    // Twice: the first pass can leave objects whose finalizers free more.
    await this.call('HeapProfiler.collectGarbage');
    await this.call('HeapProfiler.collectGarbage');
  }

  /** process.memoryUsage() and per-space usage inside the process. */
  async figures(): Promise<HeapFigures> {
    const expr = `(() => {
      const st = process.mainModule.require('v8').getHeapSpaceStatistics();
      const by = (f) => Object.fromEntries(st.map((s) => [s.space_name, s[f]]));
      return JSON.stringify({ ...process.memoryUsage(), spaces: by('space_used_size'), committed: by('physical_space_size') });
    })()`;
    const r = await this.call<{ result: { value: string } }>('Runtime.evaluate', { expression: expr, returnByValue: true });
    return JSON.parse(r.result.value) as HeapFigures;
  }

  /** Writes a .heapsnapshot (open it in Chrome DevTools → Memory). */
  async snapshot(file: string): Promise<void> {
    const out = createWriteStream(file);
    this.chunks = (s) => out.write(s);
    await this.call('HeapProfiler.takeHeapSnapshot', { reportProgress: false, captureNumericValue: true });
    this.chunks = null;
    await new Promise<void>((r) => out.end(() => r()));
  }

  close(): void {
    this.ws.close();
  }
}
