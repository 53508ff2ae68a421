/**
 * The soak report as one self-contained HTML page: the targets, the headline figures,
 * and charts drawn as inline SVG (no script, no external asset): connections and
 * memory over time, CPU, the dial test's latency CDF, the fan-out completion curves.
 */

import type { SoakReport, TransportMemory } from './report';
import type { Sample } from './sampler';

type Point = [number, number];

interface Series {
  name: string;
  color: string;
  points: Point[];
  dash?: boolean;
}

interface ChartOptions {
  title: string;
  x: string;
  y: string;
  series: Series[];
  logX?: boolean;
  yMin?: number;
  yMax?: number;
  /** Vertical lines with a label (phase changes). */
  markers?: Array<{ x: number; label: string }>;
}

const W = 680;
const H = 320;
const M = { l: 70, r: 20, t: 34, b: 70 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Round tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, n = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step, k = 0; v <= hi + step * 1e-9 && k < 50; v += step, k++) out.push(+v.toPrecision(12));
  return out;
}

function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)) && out.length < 40; e++) {
    for (const f of [1, 2, 5]) {
      const v = f * 10 ** e;
      if (v >= lo && v <= hi) out.push(+v.toPrecision(6));
    }
  }
  return out;
}

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  return String(+v.toPrecision(4));
}

export function chart(o: ChartOptions): string {
  const pts = o.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logX || x > 0));
  if (pts.length === 0) return `<figure><figcaption>${esc(o.title)}</figcaption><p class="none">no data</p></figure>`;
  let x0 = Math.min(...pts.map((p) => p[0]));
  let x1 = Math.max(...pts.map((p) => p[0]));
  if (o.logX) {
    // Whole decades: a CDF reads best against 1, 10, 100 ms.
    x0 = 10 ** Math.floor(Math.log10(x0));
    x1 = 10 ** Math.ceil(Math.log10(x1));
  }
  if (x1 <= x0) x1 = x0 + 1;
  const y0 = o.yMin ?? Math.min(0, ...pts.map((p) => p[1]));
  let y1 = o.yMax ?? Math.max(...pts.map((p) => p[1]));
  if (y1 <= y0) y1 = y0 + 1;
  if (o.yMax === undefined) y1 = ticks(y0, y1 * 1.05).at(-1) ?? y1;
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const lx = (x: number): number => (o.logX ? Math.log10(x) : x);
  const sx = (x: number): number => M.l + ((lx(x) - lx(x0)) / (lx(x1) - lx(x0))) * pw;
  const sy = (y: number): number => M.t + ph - ((y - y0) / (y1 - y0)) * ph;
  const parts: string[] = [];
  parts.push(`<text x="${W / 2}" y="20" class="title">${esc(o.title)}</text>`);
  for (const t of o.logX ? logTicks(x0, x1) : ticks(x0, x1)) {
    const x = sx(t).toFixed(1);
    parts.push(`<line x1="${x}" y1="${M.t}" x2="${x}" y2="${M.t + ph}" class="grid"/><text x="${x}" y="${M.t + ph + 16}" class="tick" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of ticks(y0, y1)) {
    const y = sy(t).toFixed(1);
    parts.push(`<line x1="${M.l}" y1="${y}" x2="${M.l + pw}" y2="${y}" class="grid"/><text x="${M.l - 6}" y="${y}" class="tick" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`);
  }
  parts.push(`<rect x="${M.l}" y="${M.t}" width="${pw}" height="${ph}" class="frame"/>`);
  for (const m of o.markers ?? []) {
    if (m.x < x0 || m.x > x1) continue;
    const x = sx(m.x).toFixed(1);
    parts.push(`<line x1="${x}" y1="${M.t}" x2="${x}" y2="${M.t + ph}" class="marker"/><text x="${(+x + 3).toFixed(1)}" y="${M.t + 10}" class="mlabel">${esc(m.label)}</text>`);
  }
  for (const s of o.series) {
    const d = s.points
      .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logX || x > 0))
      .map(([x, y], i) => `${i ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`)
      .join('');
    if (d) parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ' stroke-dasharray="6 4"' : ''}/>`);
  }
  parts.push(`<text x="${M.l + pw / 2}" y="${M.t + ph + 34}" class="axis" text-anchor="middle">${esc(o.x)}</text>`);
  parts.push(`<text transform="translate(16 ${M.t + ph / 2}) rotate(-90)" class="axis" text-anchor="middle">${esc(o.y)}</text>`);
  let lxPos = M.l;
  for (const s of o.series) {
    parts.push(`<rect x="${lxPos}" y="${H - 16}" width="14" height="4" fill="${s.color}"/><text x="${lxPos + 18}" y="${H - 12}" class="legend" dominant-baseline="middle">${esc(s.name)}</text>`);
    lxPos += 26 + s.name.length * 6.5;
  }
  return `<figure><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(o.title)}">${parts.join('')}</svg></figure>`;
}

const MB = 1024 * 1024;

/** Where the phase changes, as chart markers. */
function phaseMarkers(samples: Sample[]): Array<{ x: number; label: string }> {
  const out: Array<{ x: number; label: string }> = [];
  let last = '';
  for (const s of samples) {
    if (s.phase !== last) out.push({ x: s.t, label: s.phase.replace(/^gateway: /, '').replace(/^bare: /, 'bare ') });
    last = s.phase;
  }
  return out.filter((m) => !/start|stop|end/.test(m.label));
}

function overTime(r: SoakReport): string {
  // Samples taken while the processes were being stopped only draw a cliff.
  const S = r.samples.filter((s) => !s.phase.endsWith('stop'));
  const markers = phaseMarkers(S);
  const gw = S.filter((s) => s.phase.startsWith('gateway'));
  const workers = Math.max(0, ...gw.map((s) => s.serverRss.length));
  const conns = chart({
    title: 'Connections open over time',
    x: 'seconds since start',
    y: 'connections',
    markers,
    series: [
      { name: 'gateway', color: COLORS[0], points: gw.map((s) => [s.t, s.conns]) },
      { name: 'bare baselines', color: COLORS[7], points: S.filter((s) => s.phase.startsWith('bare')).map((s) => [s.t, s.conns]), dash: true },
      ...Array.from({ length: workers }, (_, w) => ({ name: `worker ${w}`, color: COLORS[(w + 2) % COLORS.length], points: gw.map((s): Point => [s.t, s.perWorker[w] ?? 0]) })),
    ],
  });
  const rss = chart({
    title: 'Server RSS over time (MB)',
    x: 'seconds since start',
    y: 'MB',
    markers,
    series: [
      ...Array.from({ length: workers }, (_, w) => ({ name: `worker ${w}`, color: COLORS[(w + 2) % COLORS.length], points: gw.map((s): Point => [s.t, (s.serverRss[w] ?? 0) / MB]) })),
      { name: 'primary', color: COLORS[8], points: gw.map((s) => [s.t, s.primaryRss / MB]) },
      { name: 'bare baselines (sum)', color: COLORS[7], points: S.filter((s) => s.phase.startsWith('bare')).map((s) => [s.t, s.serverRss.reduce((a, b) => a + b, 0) / MB]), dash: true },
    ],
  });
  const mem = chart({
    title: 'Machine memory: servers, clients, kernel sockets (MB)',
    x: 'seconds since start',
    y: 'MB',
    markers,
    series: [
      { name: 'servers (sum)', color: COLORS[0], points: S.map((s) => [s.t, (s.serverRss.reduce((a, b) => a + b, 0) + s.primaryRss) / MB]) },
      { name: 'client processes', color: COLORS[3], points: S.map((s) => [s.t, s.clientRss / MB]) },
      { name: 'kernel socket slabs + TCP buffers', color: COLORS[4], points: S.map((s) => [s.t, (s.kernel.socketSlab + s.kernel.tcpMem) / MB]) },
    ],
  });
  const cpu = chart({
    title: 'CPU over time (cores)',
    x: 'seconds since start',
    y: 'cores',
    markers,
    series: [
      { name: 'servers', color: COLORS[0], points: S.map((s) => [s.t, s.serverCpu]) },
      { name: 'client processes', color: COLORS[3], points: S.map((s) => [s.t, s.clientCpu]) },
      { name: 'whole machine', color: COLORS[8], points: S.map((s) => [s.t, s.machineCpu]), dash: true },
    ],
  });
  return conns + rss + mem + cpu;
}

function latencyAndFanout(r: SoakReport): string {
  const g = r.gateway;
  const dial = chart({
    title: `Dial test: end-to-end latency CDF (${g.dial.latency.n} pushes)`,
    x: 'ms, POST sent -> PUSH received (log scale)',
    y: 'fraction',
    logX: true,
    yMin: 0,
    yMax: 1,
    series: [{ name: 'push -> device', color: COLORS[0], points: g.dial.cdf }],
  });
  const series: Series[] = [];
  if (g.fanout.median) series.push({ name: `gateway {"all":true} (round ${g.fanout.median.round})`, color: COLORS[0], points: g.fanout.median.curve });
  if (r.bare?.fanout.median) series.push({ name: 'bare uWS.js publish', color: COLORS[7], points: r.bare.fanout.median.curve, dash: true });
  const fan = chart({ title: 'Fan-out completion (median round)', x: 'ms since the send', y: 'fraction received', yMin: 0, yMax: 1, series });
  return dial + fan;
}

function row(k: string, v: unknown): string {
  return `<tr><th>${esc(k)}</th><td>${esc(v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v))}</td></tr>`;
}

function tables(r: SoakReport): string {
  const g = r.gateway;
  const t = Object.entries(r.targets)
    .map(([k, v]) => `<tr class="${v.ok === null ? 'na' : v.ok ? 'ok' : 'bad'}"><th>${esc(k)}</th><td>${esc(String(v.value ?? '—'))}</td><td>${esc(v.limit)}</td><td>${v.ok === null ? 'not measured' : v.ok ? 'met' : 'MISSED'}</td></tr>`)
    .join('');
  const s = g.storm;
  const figures = [
    row('connections up / asked', `${g.ramp.open} / ${g.ramp.target} (${r.options.tcpPct}% raw TCP, TLS ${g.tls})`),
    row('workers, client processes', `${r.options.workers}, ${g.clients}`),
    row('ramp', `${g.ramp.ratePerS}/s (peak ${g.ramp.peakPerS}/s) at --rate=${r.options.rate}; ${g.ramp.failed} failed handshakes ${JSON.stringify(g.ramp.reasons)}`),
    row('sessions lost during the hold', g.holdLost),
    row('gateway RSS bytes per connection', `${g.mem.bytesPerConn} (anonymous ${g.mem.anonBytesPerConn}; per worker: ${g.mem.bytesPerConnEach.join(', ')})`),
    row('bare uWS.js RSS bytes per connection', r.bare ? `${r.bare.mem.bytesPerConn} (anonymous ${r.bare.mem.anonBytesPerConn})` : null),
    row('kernel bytes per TCP socket', g.mem.kernelBytesPerSocket),
    row('client process bytes / CPU ms per connection', `${g.mem.clientBytesPerConn} B, ${g.mem.clientCpuMsPerConn} ms`),
    row('server CPU while holding (cores)', r.idleCpuCores),
    row('other processes on the machine (mean cores)', `${r.othersCpuCores}${r.othersCpuCores > 0.2 ? ' — the machine was shared: timings and kernel figures include others\' load' : ''}`),
    row('I/O stall during the hold (% of time, mean / worst sample)', `${r.holdIoStallPct.mean} / ${r.holdIoStallPct.max}${r.holdIoStallPct.max > 5 ? ' — the disk was slow at times: durable pushes wait for its fsync' : ''}`),
    row('dial latency ms (p50 / p99 / p999 / max)', `${g.dial.latency.p50} / ${g.dial.latency.p99} / ${g.dial.latency.p999} / ${g.dial.latency.max}; API 202 p50 ${g.dial.api.p50} ms; errors ${JSON.stringify(g.dial.errors)}; not received ${g.dial.missing}`),
    row('fan-out gateway msgs/s (t100 ms)', g.fanout.median ? `${g.fanout.median.msgsPerS} (${g.fanout.median.t100} ms for ${g.fanout.median.received}/${g.fanout.median.expected})` : null),
    row('fan-out bare uWS.js msgs/s (t100 ms)', r.bare?.fanout.median ? `${r.bare.fanout.median.msgsPerS} (${r.bare.fanout.median.t100} ms)` : null),
    row('storm: worker killed, sessions lost', s ? `worker ${s.victim} (pid ${s.victimPid}), ${s.lost} sessions` : null),
    row('storm: restart / every device back (ms)', s ? `${s.restartMs ?? 'not seen'} / ${s.backMs ?? 'NOT ALL BACK'}` : null),
    row('storm: refused / overloaded / failed reconnects', s ? `${s.refused} / ${s.overloaded} / ${s.failedHandshakes}; why: ${JSON.stringify(s.reasons)}` : null),
    row('storm: non-202 push answers (first body of each status)', s && Object.keys(s.pushes.refusedExamples).length ? s.pushes.refusedExamples : null),
    row('storm: pushes only a SYNC brought (examples)', s?.pushes.syncExamples.length ? s.pushes.syncExamples : null),
    row('storm: event-loop delay of the surviving workers, ms (max / p99 per worker)', s?.loop.length ? s.loop.map((l) => `worker ${l.worker}: ${l.max_ms} / ${l.p99_ms}`).join('; ') : null),
    row('storm: what took the loops (CPU profile: nearest moor function, ms; longest busy stretch)', s?.loop.some((l) => l.profile) ? s.loop.map((l) => ({ worker: l.worker, top: l.profile?.top_moor.slice(0, 6), longest_busy_ms: l.profile?.longest_busy_ms, longest: l.profile?.longest_busy_moor.slice(0, 4) })) : null),
    row('storm: durable pushes', s ? `${s.pushes.sent} sent, ${s.pushes.accepted} answered 202, ${s.pushes.received} received, ${s.pushes.bySync} by SYNC only, ${s.pushes.lost} lost, non-202 ${JSON.stringify(s.pushes.refused)}` : null),
    row('memory at 1M connections per worker', `${r.extrapolation.total_gb} GB (user ${(r.extrapolation.user_bytes / 1024 ** 3).toFixed(2)} GB + kernel ${(r.extrapolation.kernel_bytes / 1024 ** 3).toFixed(2)} GB)`),
    row('extrapolation method', r.extrapolation.method),
    row('gateway warnings/errors logged', g.problemCount),
  ].join('');
  const logs = g.problems.length || g.stderr ? `<h2>Gateway warnings and errors</h2><details><summary>${g.problemCount} log lines at warn or above (first ${g.problems.length}), and the end of its stderr</summary><pre>${esc([...g.problems, '', g.stderr].join('\n'))}</pre></details>` : '';
  return `<h2>Targets</h2><table class="targets"><tr><th>target</th><th>value</th><th>limit</th><th></th></tr>${t}</table>${memoryTable(r)}<h2>Figures</h2><table>${figures}</table>${logs}`;
}

/** Bytes per connection per transport, each next to its own baseline. */
function memoryTable(r: SoakReport): string {
  const m = r.memory;
  const line = (name: string, t: TransportMemory | null): string =>
    t
      ? `<tr><th>${esc(name)}</th><td>${t.conns}</td><td>${t.rss_bytes_per_conn}</td><td>${t.anon_bytes_per_conn}</td><td>${t.pss_bytes_per_conn}</td><td>${esc(`${t.baseline}: ${t.baseline_bytes_per_conn ?? '—'}`)}</td><td>${t.ratio ?? '—'}${t.ratio_vs_bare_uws ? ` (${t.ratio_vs_bare_uws} of bare uWS.js)` : ''}</td><td>${esc(JSON.stringify(t.parts_per_conn))}</td></tr>`
      : '';
  const mix = `<tr><th>the mix, after the hold (target)</th><td>${r.gateway.mem.conns}</td><td>${m.bytes_per_conn}</td><td>${m.anon_bytes_per_conn}</td><td>${m.pss_bytes_per_conn}</td><td>bare uWS.js: ${m.bare_uws_bytes_per_conn ?? '—'}</td><td>${m.ratio ?? '—'} (target ≤ ${m.target_ratio})</td><td>${esc(JSON.stringify(r.gateway.mem.partsPerConn))}</td></tr>`;
  return `<h2>Memory per connection</h2><table><tr><th></th><th>sessions</th><th>RSS B</th><th>anonymous B</th><th>PSS B</th><th>baseline B</th><th>ratio</th><th>RSS by mapping (smaps)</th></tr>${line('WebSocket sessions (after the ramp)', m.ws)}${line('raw TCP sessions (after the ramp)', m.tcp)}${mix}</table><p class="sub">The hold added ${m.hold_growth_bytes_per_conn} B per connection. ${esc(m.method)}</p>`;
}

const CSS = `body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px}.sub{color:#666}
table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f6f6;font-weight:600}tr.ok td:last-child{color:#1a7f37;font-weight:600}tr.bad td:last-child{color:#c62828;font-weight:700}tr.na td:last-child{color:#888}
.charts{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;border:1px solid #eee;background:#fff}
svg .title{font-size:14px;font-weight:600;text-anchor:middle}svg .tick{font-size:11px;fill:#555}svg .axis{font-size:12px;fill:#333}
svg .legend{font-size:11px;fill:#333}svg .grid{stroke:#eee}svg .frame{fill:none;stroke:#999}svg .marker{stroke:#bbb;stroke-dasharray:3 3}svg .mlabel{font-size:10px;fill:#888}
.none{padding:12px;color:#888}pre{white-space:pre-wrap;font-size:11px;background:#fafafa;padding:8px;max-height:400px;overflow:auto}`;

export function renderHtml(r: SoakReport): string {
  const sub = `${r.mode} run, ${r.started}, ${r.seconds} s, ${r.options.conns} connections, ${r.options.workers} workers, Node ${r.node}, ${r.machine.cpus} cores, ${r.machine.mem_gb} GB`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>moor soak report</title><style>${CSS}</style></head><body>
<h1>moor soak report</h1><div class="sub">${esc(sub)}</div>
${tables(r)}
<h2>Charts</h2><div class="charts">${overTime(r)}${latencyAndFanout(r)}</div>
</body></html>
`;
}
