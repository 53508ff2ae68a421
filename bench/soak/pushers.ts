/**
 * The pushes a soak client process sends to its own devices through the HTTP API, so
 * that sending and receiving happen in one process on one clock:
 *
 * - dial: `perS` durable pushes a second, each to a random open device of this
 *   process; end-to-end latency = PUSH received - POST sent.
 * - storm: `perS` durable pushes a second while a worker is killed, half of them to
 *   devices of the killed worker (down or reconnecting: their pushes wait in the
 *   inbox), half to any device. Every push answered 202 is tracked by (device, seq)
 *   and must arrive: live, by the replay after a reconnect, or — checked last — by
 *   a SYNC. What none of these brings is lost.
 */
import http from 'node:http';
import type { DialResult, SoakClientSpec, StormResult } from './messages';

export interface Devices {
  isOpen(i: number): boolean;
  everUp(i: number): boolean;
  workerOf(i: number): number;
  deviceId(i: number): string;
  /** Send SYNC {after_seq} on connection i if it is open. */
  sync(i: number, afterSeq: number): void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Pushers {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  private dialTimer: NodeJS.Timeout | null = null;
  private readonly dialSentAt: number[] = [];
  private readonly dialGot: number[] = [];
  private readonly dial202: Uint8Array[] = [];
  private readonly dialRes: DialResult = { latencies: [], apiMs: [], sent: 0, errors: {}, missing: 0 };

  private stormTimer: NodeJS.Timeout | null = null;
  private victims: number[] = [];
  /** Per storm push k: device index, HTTP status (0 = no answer yet), seq, ms sent, ms received (0 = not yet). */
  private readonly sDev: number[] = [];
  private readonly sStatus: number[] = [];
  private readonly sSeq: number[] = [];
  private readonly sSentAt: number[] = [];
  private readonly sGotAt: number[] = [];
  private stormInflight = 0;
  private syncing = false;
  private bySync = 0;
  private duplicates = 0;
  private readonly refused: Record<string, number> = {};
  private readonly refusedExamples: Record<string, string> = {};

  constructor(
    private readonly spec: SoakClientSpec,
    private readonly dev: Devices,
  ) {}

  /** A random device for which `ok` holds (bounded tries), or -1. */
  private pick(ok: (i: number) => boolean, from: number[] | null = null): number {
    for (let t = 0; t < 32; t++) {
      const i = from ? from[Math.floor(Math.random() * from.length)] : Math.floor(Math.random() * this.spec.count);
      if (i !== undefined && ok(i)) return i;
    }
    return -1;
  }

  private post(body: object, done: (status: number, answer: { seqs?: number[] } | null, text: string) => void): void {
    const data = JSON.stringify(body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port: this.spec.apiPort,
        path: '/v1/push',
        method: 'POST',
        agent: this.agent,
        headers: { authorization: `Bearer ${this.spec.apiKey}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let answer: { seqs?: number[] } | null = null;
          try {
            answer = JSON.parse(text);
          } catch {}
          done(res.statusCode ?? 0, answer, text);
        });
        res.on('error', (err) => done(0, null, err.message));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => done(0, null, err.message));
    req.end(data);
  }

  // ---- dial ----

  dial(perS: number): void {
    if (this.dialTimer) clearInterval(this.dialTimer);
    this.dialTimer = null;
    if (perS > 0) this.dialTimer = setInterval(() => this.dialOne(), 1000 / perS);
  }

  private dialOne(): void {
    const i = this.pick((j) => this.dev.isOpen(j));
    if (i < 0) return;
    const k = this.dialRes.sent++;
    const t0 = performance.now();
    this.dialSentAt[k] = t0;
    this.post({ device_id: this.dev.deviceId(i), body: `d${k}` }, (status) => {
      if (status === 202) {
        this.dialRes.apiMs.push(performance.now() - t0);
        this.mark202(k);
      } else {
        const key = status ? String(status) : 'fetch';
        this.dialRes.errors[key] = (this.dialRes.errors[key] ?? 0) + 1;
      }
    });
  }

  private mark202(k: number): void {
    const page = k >> 12;
    this.dial202[page] ??= new Uint8Array(4096);
    this.dial202[page][k & 4095] = 1;
  }

  dialReceived(k: number): void {
    const t0 = this.dialSentAt[k];
    if (t0 === undefined || this.dialGot[k]) return;
    this.dialGot[k] = 1;
    this.dialRes.latencies.push(performance.now() - t0);
  }

  dialResult(): DialResult {
    let missing = 0;
    for (let k = 0; k < this.dialRes.sent; k++) if (this.dial202[k >> 12]?.[k & 4095] && !this.dialGot[k]) missing++;
    return { ...this.dialRes, missing };
  }

  // ---- storm ----

  storm(perS: number, victim: number): void {
    if (this.stormTimer) clearInterval(this.stormTimer);
    this.stormTimer = null;
    if (perS <= 0) return;
    this.victims = [];
    for (let i = 0; i < this.spec.count; i++) if (this.dev.workerOf(i) === victim) this.victims.push(i);
    this.stormTimer = setInterval(() => this.stormOne(), 1000 / perS);
  }

  private stormOne(): void {
    const aimed = this.victims.length > 0 && this.sDev.length % 2 === 0;
    const i = aimed ? this.pick(() => true, this.victims) : this.pick((j) => this.dev.everUp(j));
    if (i < 0) return;
    const k = this.sDev.length;
    this.sDev.push(i);
    this.sStatus.push(0);
    this.sSeq.push(0);
    this.sSentAt.push(performance.now());
    this.sGotAt.push(0);
    this.stormInflight++;
    this.post({ device_id: this.dev.deviceId(i), body: `s${k}`, durable: true }, (status, answer, text) => {
      this.stormInflight--;
      this.sStatus[k] = status || -1;
      if (status === 202) {
        this.sSeq[k] = answer?.seqs?.[0] ?? 0;
      } else {
        const key = status ? String(status) : 'fetch';
        this.refused[key] = (this.refused[key] ?? 0) + 1;
        this.refusedExamples[key] ??= text.slice(0, 300);
      }
    });
  }

  stormReceived(k: number, _seq: number): void {
    if (!(k < this.sDev.length)) return;
    if (this.sGotAt[k]) {
      this.duplicates++;
      return;
    }
    this.sGotAt[k] = performance.now();
    if (this.syncing) this.bySync++;
  }

  stormDuplicate(): void {
    this.duplicates++;
  }

  private missing(): number[] {
    const out: number[] = [];
    for (let k = 0; k < this.sDev.length; k++) if (this.sStatus[k] === 202 && !this.sGotAt[k]) out.push(k);
    return out;
  }

  /**
   * Stop pushing, wait (bounded) for answers and deliveries, then SYNC what is still
   * missing on devices that are open, and count.
   */
  async verify(waitMs: number): Promise<StormResult> {
    this.storm(0, -1);
    const deadline = performance.now() + waitMs;
    while (performance.now() < deadline && (this.stormInflight > 0 || this.missing().length > 0)) await sleep(100);
    const missing = this.missing();
    const syncExamples = missing.slice(0, 5).map((k) => ({ device: this.dev.deviceId(this.sDev[k]), seq: this.sSeq[k], worker: this.dev.workerOf(this.sDev[k]), sentAtS: +((performance.timeOrigin + this.sSentAt[k]) / 1000).toFixed(3) }));
    if (missing.length > 0) {
      this.syncing = true;
      const after = new Map<number, number>();
      for (const k of missing) {
        const i = this.sDev[k];
        const s = Math.max(0, this.sSeq[k] - 1);
        after.set(i, Math.min(after.get(i) ?? s, s));
      }
      for (const [i, s] of after) this.dev.sync(i, s);
      const syncDeadline = performance.now() + 5_000;
      while (performance.now() < syncDeadline && this.missing().length > 0) await sleep(100);
      this.syncing = false;
    }
    const lost = this.missing();
    let accepted = 0;
    const latencies: number[] = [];
    for (let k = 0; k < this.sDev.length; k++) {
      if (this.sStatus[k] !== 202) continue;
      accepted++;
      if (this.sGotAt[k]) latencies.push(this.sGotAt[k] - this.sSentAt[k]);
    }
    return {
      sent: this.sDev.length,
      accepted,
      refused: this.refused,
      refusedExamples: this.refusedExamples,
      received: accepted - lost.length - this.bySync,
      bySync: this.bySync,
      lost: lost.length,
      duplicates: this.duplicates,
      lostExamples: lost.slice(0, 5).map((k) => ({ device: this.dev.deviceId(this.sDev[k]), seq: this.sSeq[k] })),
      syncExamples,
      latencies,
    };
  }
}
