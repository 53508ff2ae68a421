/** Small numeric helpers of the soak report: percentiles, a CDF fit for a chart, formatting. */

export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of an ascending array (NaN when empty). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  // The epsilon: 0.999 * 1000 is 999.0000000000001 in floating point.
  const rank = Math.ceil((p / 100) * sorted.length - 1e-9);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

const r2 = (x: number): number => (Number.isFinite(x) ? Math.round(x * 100) / 100 : x);

export function summarize(values: readonly number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.length ? s.reduce((a, b) => a + b, 0) / s.length : Number.NaN;
  return { n: s.length, p50: r2(percentile(s, 50)), p90: r2(percentile(s, 90)), p99: r2(percentile(s, 99)), p999: r2(percentile(s, 99.9)), max: r2(s[s.length - 1] ?? Number.NaN), mean: r2(mean) };
}

/** [value, fraction <= value] pairs of an ascending array, at most `points` of them (the last one kept). */
export function cdf(sorted: readonly number[], points = 200): Array<[number, number]> {
  const n = sorted.length;
  if (n === 0) return [];
  const out: Array<[number, number]> = [];
  const step = Math.max(1, Math.floor(n / points));
  for (let i = step - 1; i < n; i += step) out.push([r2(sorted[i]), (i + 1) / n]);
  if (out[out.length - 1][1] !== 1) out.push([r2(sorted[n - 1]), 1]);
  return out;
}

export const MB = 1024 * 1024;
export const mb = (n: number): string => `${(n / MB).toFixed(1)} MB`;
export const int = (n: number): string => Math.round(n).toLocaleString('en-US');
