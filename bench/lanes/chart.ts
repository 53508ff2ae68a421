/**
 * The SVG of `bench lanes`: every high-priority probe push's latency over time (log
 * scale, one colour per condition, shaded where that condition ran, its p99 as a
 * dashed line), and below it the gateway worker's RSS over the same time axis.
 */

export interface Point {
  /** Seconds since the bench started measuring. */
  t: number;
  v: number;
}

/** A measured condition: its points and their p99. */
export interface Series {
  name: string;
  color: string;
  points: Point[];
  p99: number;
}

/** A stretch of time spent in one condition (shaded in its colour). */
export interface Block {
  color: string;
  start: number;
  end: number;
}

const W = 960;
const TOP_H = 360;
const BOT_H = 180;
const PAD = { l: 70, r: 20, t: 40, b: 36 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}

export function lanesChart(title: string, series: Series[], blocks: Block[], rss: Point[]): string {
  const tMax = Math.max(1, ...blocks.map((b) => b.end), ...rss.map((p) => p.t));
  const all = series.flatMap((p) => p.points.map((x) => x.v)).filter((v) => v > 0);
  const lo = Math.max(0.1, Math.min(...all, 1));
  const hi = Math.max(10, ...all);
  const lx = (t: number) => PAD.l + ((W - PAD.l - PAD.r) * t) / tMax;
  const ly = (v: number) => PAD.t + (TOP_H - PAD.t - PAD.b) * (1 - (Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)));
  const out: string[] = [];
  const H = TOP_H + BOT_H;
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${PAD.l}" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`);
  // Latency panel: decades on a log axis.
  for (let d = Math.floor(Math.log10(lo)); d <= Math.ceil(Math.log10(hi)); d++) {
    const v = 10 ** d;
    if (v < lo || v > hi) continue;
    out.push(`<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${ly(v)}" y2="${ly(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${PAD.l - 6}" y="${ly(v) + 4}" text-anchor="end">${v >= 1 ? v : v.toFixed(1)} ms</text>`);
  }
  for (const b of blocks) out.push(`<rect x="${lx(b.start)}" y="${PAD.t}" width="${Math.max(1, lx(b.end) - lx(b.start))}" height="${TOP_H - PAD.t - PAD.b}" fill="${b.color}" opacity="0.08"/>`);
  series.forEach((p, i) => {
    out.push(`<text x="${PAD.l + 8 + 250 * i}" y="${PAD.t - 6}" fill="${p.color}">● ${esc(p.name)}: p99 ${p.p99.toFixed(1)} ms</text>`);
    for (const x of p.points) out.push(`<circle cx="${lx(x.t).toFixed(1)}" cy="${ly(x.v).toFixed(1)}" r="1.6" fill="${p.color}" opacity="0.6"/>`);
    if (Number.isFinite(p.p99)) out.push(`<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${ly(p.p99)}" y2="${ly(p.p99)}" stroke="${p.color}" stroke-width="1.5" stroke-dasharray="6 3"/>`);
  });
  out.push(`<text x="16" y="${(PAD.t + TOP_H - PAD.b) / 2}" transform="rotate(-90 16 ${(PAD.t + TOP_H - PAD.b) / 2})" text-anchor="middle">high-priority push latency (log)</text>`);
  // RSS panel.
  const r0 = TOP_H;
  const rMax = Math.max(1, ...rss.map((p) => p.v));
  const ry = (v: number) => r0 + 10 + (BOT_H - PAD.b - 10) * (1 - v / rMax);
  out.push(`<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${ry(0)}" y2="${ry(0)}" stroke="#999"/>`);
  out.push(`<text x="${PAD.l - 6}" y="${ry(rMax) + 4}" text-anchor="end">${rMax.toFixed(0)} MB</text>`);
  out.push(`<text x="${PAD.l - 6}" y="${ry(0) + 4}" text-anchor="end">0</text>`);
  if (rss.length > 1) out.push(`<polyline fill="none" stroke="#333" stroke-width="1.5" points="${rss.map((p) => `${lx(p.t).toFixed(1)},${ry(p.v).toFixed(1)}`).join(' ')}"/>`);
  out.push(`<text x="16" y="${r0 + BOT_H / 2}" transform="rotate(-90 16 ${r0 + BOT_H / 2})" text-anchor="middle">worker RSS</text>`);
  for (let t = 0; t <= tMax; t += Math.max(5, Math.round(tMax / 12 / 5) * 5)) out.push(`<text x="${lx(t)}" y="${H - 10}" text-anchor="middle">${t} s</text>`);
  out.push('</svg>');
  return out.join('\n');
}
