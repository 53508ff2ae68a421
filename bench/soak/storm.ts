/**
 * Reconnect storm: kill -9 one worker while durable pushes flow, and measure how long
 * until its devices are back (each client reconnects with jittered backoff and its
 * `last_seq`), what the reconnects met (refused connections, OVERLOADED), and that no
 * durable push answered 202 was lost (pushers.ts tracks and verifies every one).
 */

import { wallNow } from './fanout';
import type { SoakGateway } from './gateway';
import type { LoopProbe, LoopReport } from './loop-probe';
import type { StormResult } from './messages';
import type { ClientPool } from './pool';
import type { Status } from './ramp';
import { int, type Summary, summarize } from './stats';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface StormReport {
  victim: number;
  victimPid: number;
  /** Sessions the victim held when it was killed (from the clients' view). */
  victimConns: number;
  /** Sessions the clients lost. */
  lost: number;
  maxDown: number;
  /** ms from the kill until the primary reported the worker back; null = not within the timeout. */
  restartMs: number | null;
  /** ms from the kill until every lost session was open again; null = not within the timeout. */
  backMs: number | null;
  /** Reconnect attempts refused (ECONNREFUSED, an HTTP answer instead of the upgrade). */
  refused: number;
  /** Reconnect attempts answered ERROR OVERLOADED. */
  overloaded: number;
  failedHandshakes: number;
  reasons: Record<string, number>;
  pushes: Omit<StormResult, 'latencies'> & { latency: Summary };
  /** Event-loop delay (and with --storm-profile, CPU profile summaries) of the surviving workers, kill to every device back. */
  loop: LoopReport[];
}

function diff(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

function sumWhere(r: Record<string, number>, re: RegExp): number {
  let n = 0;
  for (const [k, v] of Object.entries(r)) if (re.test(k)) n += v;
  return n;
}

function merge(rs: StormResult[]): StormResult {
  const m: StormResult = { sent: 0, accepted: 0, refused: {}, refusedExamples: {}, received: 0, bySync: 0, lost: 0, duplicates: 0, lostExamples: [], syncExamples: [], latencies: [] };
  for (const r of rs) {
    m.sent += r.sent;
    m.accepted += r.accepted;
    m.received += r.received;
    m.bySync += r.bySync;
    m.lost += r.lost;
    m.duplicates += r.duplicates;
    for (const [k, v] of Object.entries(r.refused)) m.refused[k] = (m.refused[k] ?? 0) + v;
    for (const [k, v] of Object.entries(r.refusedExamples)) m.refusedExamples[k] ??= v;
    if (m.lostExamples.length < 10) m.lostExamples.push(...r.lostExamples.slice(0, 10 - m.lostExamples.length));
    if (m.syncExamples.length < 10) m.syncExamples.push(...r.syncExamples.slice(0, 10 - m.syncExamples.length));
    for (const x of r.latencies) m.latencies.push(x);
  }
  return m;
}

/** `probe`: started on the surviving workers just before the kill (loop-probe.ts); `stem`: where its profiles go. */
export async function storm(
  pool: ClientPool,
  gw: SoakGateway,
  status: Status,
  o: { pushesPerS: number; timeoutMs: number; workers: number; probe?: (victim: number) => Promise<LoopProbe | null>; stem?: string },
): Promise<StormReport> {
  const victim = o.workers > 1 ? 1 : 0;
  const victimPid = gw.workers.get(victim);
  if (!victimPid) throw new Error(`storm: no pid known for worker ${victim}`);
  const victimConns = pool.perWorker()[victim] ?? 0;
  status.log(`storm: durable pushes at ${o.pushesPerS}/s; killing worker ${victim} (pid ${victimPid}, ${int(victimConns)} sessions) with SIGKILL in 2 s`);
  pool.rate(o.pushesPerS, (share) => ({ t: 'storm', perS: share, victim }));
  await sleep(2000);
  const reasons0 = pool.reasons();
  const lost0 = pool.sum((s) => s.lost);
  const failed0 = pool.sum((s) => s.failed);
  let restartMs: number | null = null;
  const probe = (await o.probe?.(victim)) ?? null;
  const tKill = wallNow();
  gw.waitForLog((l) => l.msg === 'worker back' && l.worker === victim, o.timeoutMs).then(
    () => {
      restartMs = Math.round(wallNow() - tKill);
    },
    () => {},
  );
  process.kill(victimPid, 'SIGKILL');
  const deadline = performance.now() + o.timeoutMs;
  let maxDown = 0;
  let back = false;
  while (performance.now() < deadline) {
    await sleep(100);
    const down = pool.sum((s) => s.down);
    const lost = pool.sum((s) => s.lost) - lost0;
    maxDown = Math.max(maxDown, down);
    status.live(`storm: ${int(lost)} sessions lost, ${int(down)} down, ${int(pool.sum((s) => s.failed) - failed0)} failed reconnects, worker ${restartMs === null ? 'restarting' : `back after ${restartMs} ms`} · ${((wallNow() - tKill) / 1000).toFixed(1)} s`);
    if (lost >= Math.max(1, victimConns) && down === 0 && restartMs !== null) {
      back = true;
      break;
    }
  }
  const backAt = pool.max((s) => s.backAt);
  const backMs = back && backAt > tKill ? Math.round(backAt - tKill) : null;
  const loop = probe ? await probe.stop(o.stem ?? 'storm') : [];
  for (const l of loop) {
    const worst = l.profile ? `; longest busy stretch ${l.profile.longest_busy_ms} ms: ${l.profile.longest_busy_moor.slice(0, 3).map(([f, ms]) => `${f} ${ms} ms`).join(', ')}` : '';
    status.log(`storm: worker ${l.worker} event-loop delay max ${l.max_ms} ms, p99 ${l.p99_ms} ms${worst}`);
  }
  const reasons = diff(pool.reasons(), reasons0);
  status.log(`storm: ${back ? `every device back ${backMs} ms after the kill` : 'NOT every device came back before the timeout'}; worker restarted after ${restartMs ?? '?'} ms; pushing 2 s more, then verifying`);
  await sleep(2000);
  const rs = (await pool.ask({ t: 'verify', waitMs: 15_000 }, 'verify', 40_000)).map((a) => a.r);
  const m = merge(rs);
  const { latencies, ...rest } = m;
  const report: StormReport = {
    victim,
    victimPid,
    victimConns,
    lost: pool.sum((s) => s.lost) - lost0,
    maxDown,
    restartMs,
    backMs,
    refused: sumWhere(reasons, /ECONNREFUSED|upgrade answered/),
    overloaded: sumWhere(reasons, /OVERLOADED/),
    failedHandshakes: pool.sum((s) => s.failed) - failed0,
    reasons,
    pushes: { ...rest, latency: summarize(latencies) },
    loop,
  };
  status.log(`storm pushes: ${int(m.sent)} sent, ${int(m.accepted)} answered 202, ${int(m.received)} received live or by replay, ${int(m.bySync)} only by SYNC, ${int(m.lost)} LOST; refused answers ${JSON.stringify(m.refused)}`);
  return report;
}
