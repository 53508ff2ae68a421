/**
 * The load of `bench lanes`, in a process of its own so the bench's probe timings do
 * not share an event loop with it: a bulk broadcast (`all: true`, priority bulk) at a
 * steady rate from one API key, and a flood of device pushes from another key, up to
 * `floodPerS` with `floodConcurrency` requests in flight. The bench switches it on and
 * off over IPC (idle and load blocks alternate); on `end` it reports and exits.
 * Forked by bench/lanes.ts with its spec as argv[2] (JSON).
 */
import http from 'node:http';
import { apiRequest } from './http';

export interface LoadSpec {
  apiPort: number;
  bulkKey: string;
  floodKey: string;
  /** Broadcasts started per second (at most 2 in flight). */
  broadcastPerS: number;
  broadcastBody: number;
  /** Flood requests in flight. */
  floodConcurrency: number;
  /** Flood requests per second at most (all in-flight slots together). */
  floodPerS: number;
  floodBody: number;
  floodDurable: boolean;
  /** Flood targets: `${prefix}${0..count-1}`. */
  floodPrefix: string;
  floodCount: number;
  /** Hard stop, whatever the bench says. */
  maxLifeMs: number;
}

export type ToLoad = { t: 'on'; broadcast: boolean; flood: boolean } | { t: 'off' } | { t: 'end' };

export interface LoadStats {
  broadcasts: number;
  /** ms from request to 202 (the fan-out done on every worker), per broadcast. */
  broadcastMs: number[];
  /** Devices the last broadcast reached (202 `online`). */
  broadcastOnline: number;
  flood: { passed: number; queued: number; rejected: number; other: number };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function post(port: number, key: string, body: string): Promise<{ status: number; text: string }> {
  return apiRequest(agent, port, 'POST', '/v1/push', body, key);
}

function main(): void {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  const stats: LoadStats = { broadcasts: 0, broadcastMs: [], broadcastOnline: 0, flood: { passed: 0, queued: 0, rejected: 0, other: 0 } };
  const state = { broadcast: false, flood: false, ended: false };
  const deadline = Date.now() + spec.maxLifeMs;
  const running = () => !state.ended && Date.now() < deadline;
  process.on('disconnect', () => process.exit(0));
  const jobs: Array<Promise<void>> = [];

  const bcast = JSON.stringify({ all: true, priority: 'bulk', body: 'b'.repeat(spec.broadcastBody) });
  const every = 1000 / Math.max(1, spec.broadcastPerS);
  jobs.push(
    (async () => {
      let inFlight = 0;
      let next = Date.now();
      while (running()) {
        const wait = next - Date.now();
        if (wait > 0) await sleep(wait);
        next = Math.max(next + every, Date.now() - every);
        if (!state.broadcast || inFlight >= 2) continue;
        inFlight++;
        const t0 = performance.now();
        post(spec.apiPort, spec.bulkKey, bcast).then((r) => {
          inFlight--;
          if (r.status !== 202) return;
          stats.broadcasts++;
          stats.broadcastMs.push(performance.now() - t0);
          stats.broadcastOnline = (JSON.parse(r.text) as { online: number }).online;
        });
      }
    })(),
  );

  const floodBody = 'f'.repeat(spec.floodBody);
  // Each slot keeps its share of the rate.
  const slotMs = (1000 * spec.floodConcurrency) / Math.max(1, spec.floodPerS);
  for (let w = 0; w < spec.floodConcurrency; w++) {
    jobs.push(
      (async () => {
        let next = Date.now();
        while (running()) {
          const wait = next - Date.now();
          if (wait > 0) await sleep(wait);
          next = Math.max(next + slotMs, Date.now() - 10 * slotMs);
          if (!state.flood) continue;
          const device = `${spec.floodPrefix}${Math.floor(Math.random() * spec.floodCount)}`;
          const r = await post(spec.apiPort, spec.floodKey, JSON.stringify({ device_id: device, body: floodBody, durable: spec.floodDurable }));
          if (r.status === 429) stats.flood.rejected++;
          else if (r.status !== 202) stats.flood.other++;
          else if (r.text.includes('"queued":true')) stats.flood.queued++;
          else stats.flood.passed++;
        }
      })(),
    );
  }

  process.on('message', (m: ToLoad) => {
    if (m.t === 'on') Object.assign(state, { broadcast: m.broadcast, flood: m.flood });
    else if (m.t === 'off') Object.assign(state, { broadcast: false, flood: false });
    else state.ended = true;
  });
  Promise.all(jobs).then(async () => {
    // Broadcasts still in flight get a moment to land in the stats.
    await sleep(500);
    process.send?.({ t: 'stats', stats }, () => process.exit(0));
  });
}

if (require.main === module) main();
