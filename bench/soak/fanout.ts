/**
 * Fan-out: one message to every connection (the gateway's `{"all": true}` push, or
 * the bare uWS.js publish), timed until 100% have received it. Each client process
 * stamps receipts with the machine's wall clock (performance.timeOrigin + now(), the
 * same clock the parent stamps the send with), so one completion curve covers all of
 * them. msgs/s = receivers / time until the last one had it.
 */
import type { ClientPool } from './pool';
import type { Status } from './ramp';
import { cdf, int } from './stats';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
export const wallNow = (): number => performance.timeOrigin + performance.now();

export interface FanoutRound {
  round: number;
  expected: number;
  received: number;
  /** ms from the send until 50%, 99%, 100% of the receivers had it. */
  t50: number;
  t99: number;
  t100: number;
  msgsPerS: number;
  /** [ms since the send, fraction of the expected receivers], at most 200 points. */
  curve: Array<[number, number]>;
  /** What the sender reported (the API answer, or the bare publish calls). */
  sender: Record<string, unknown>;
  /** Receive-coalescing naps the client processes took during the round (client.ts). */
  clientNaps: number;
}

export interface FanoutResult {
  rounds: FanoutRound[];
  /** The round with the median rate. */
  median: FanoutRound | null;
}

/**
 * `rounds` broadcasts, 1 s apart. `send(round)` sends message `f<round>` to everyone
 * and resolves with what the sender reports; receipts are collected until every open
 * connection has it or `timeoutMs` passes.
 */
export async function fanout(
  pool: ClientPool,
  status: Status,
  label: string,
  firstRound: number,
  rounds: number,
  timeoutMs: number,
  send: (round: number) => Promise<Record<string, unknown>>,
): Promise<FanoutResult> {
  const out: FanoutRound[] = [];
  for (let k = 0; k < rounds; k++) {
    const round = firstRound + k;
    await sleep(1000);
    const expected = pool.sum((s) => s.open);
    const naps0 = pool.sum((s) => s.naps);
    const t0 = wallNow();
    const sender = await send(round);
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline && pool.sum((s) => (s.fanRound === round ? s.fanGot : 0)) < expected) await sleep(50);
    await sleep(600); // one more report from every client, late receipts included
    const answers = await pool.ask({ t: 'fanout-times', round }, 'fanout-times', 10_000);
    const times = answers.flatMap((a) => a.times.map((x) => x - t0)).sort((a, b) => a - b);
    const received = times.length;
    const at = (f: number): number => (received ? +times[Math.min(received - 1, Math.ceil(f * expected) - 1)].toFixed(2) : Number.NaN);
    const t100 = received ? +times[received - 1].toFixed(2) : Number.NaN;
    const r: FanoutRound = {
      round,
      expected,
      received,
      t50: at(0.5),
      t99: received >= Math.ceil(0.99 * expected) ? at(0.99) : Number.NaN,
      t100,
      msgsPerS: received && t100 > 0 ? Math.round((received * 1000) / t100) : 0,
      curve: cdf(times).map(([ms, f]) => [ms, +((f * received) / Math.max(1, expected)).toFixed(4)]),
      sender,
      clientNaps: pool.sum((s) => s.naps) - naps0,
    };
    out.push(r);
    status.log(`${label} fan-out ${k + 1}/${rounds}: ${int(received)}/${int(expected)} received, 50% in ${r.t50} ms, 100% in ${t100} ms → ${int(r.msgsPerS)} msgs/s (${int(r.clientNaps)} client naps)`);
  }
  const byRate = [...out].sort((a, b) => a.msgsPerS - b.msgsPerS);
  return { rounds: out, median: byRate[Math.floor(byRate.length / 2)] ?? null };
}
