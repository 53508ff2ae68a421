/**
 * Keeps a policy's class table in the store: loads it at start, then merges and saves
 * every `intervalMs` and about a second after each decision (debounced). Works with any
 * Store engine, so a shared engine shares the table across a fleet. See table.ts for
 * how concurrent writers merge.
 */
import type { Store } from '../store/store';
import type { HeartbeatPolicy } from './policy';
import { mergeTable, parseTable, TABLE_KEY } from './table';

export type MetaStore = Pick<Store, 'getMeta' | 'putMeta'>;

export interface SyncLog {
  warn(obj: object, msg: string): void;
}

/** A decision is saved this soon after it is made, coalescing a burst into one write. */
const DEBOUNCE_MS = 1_000;

export class TableSync {
  private timer: NodeJS.Timeout | null = null;
  private soon: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private loaded = false;

  constructor(
    private readonly policy: HeartbeatPolicy,
    private readonly store: MetaStore,
    private readonly log: SyncLog,
    private readonly intervalMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Loads the stored table (a store failure is logged: the policy starts from defaults). */
  async start(): Promise<void> {
    await this.sync();
    this.timer = setInterval(() => void this.sync(), this.intervalMs);
    this.timer.unref();
    this.policy.onDecision = () => {
      if (this.soon) return;
      this.soon = setTimeout(() => {
        this.soon = null;
        void this.sync();
      }, DEBOUNCE_MS);
      this.soon.unref();
    };
  }

  /** Stops the timers; with `save`, merges and saves once more. */
  stop(save = true): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.soon) clearTimeout(this.soon);
    this.timer = this.soon = null;
    this.policy.onDecision = null;
    return save ? this.sync() : Promise.resolve();
  }

  /** One read-merge-write round; calls during a round coalesce into one more round. */
  sync(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.round()
      .catch((err) => this.log.warn({ err }, 'heartbeat class table not synced with the store'))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          void this.sync();
        }
      });
    return this.running;
  }

  private async round(): Promise<void> {
    const raw = await this.store.getMeta(TABLE_KEY);
    const initial = !this.loaded;
    const merged = mergeTable(this.policy, parseTable(raw), this.clock(), initial);
    this.loaded = true;
    const out = Buffer.from(JSON.stringify(merged), 'utf8');
    if (raw?.equals(out)) return;
    await this.store.putMeta(TABLE_KEY, out);
  }
}
