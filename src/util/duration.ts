/**
 * Human durations for the command line (`--ttl 1h`): one or more `<number><unit>` parts,
 * units ms, s, m, h, d, e.g. `500ms`, `90s`, `1h30m`, `1.5h`. Config keys stay plain
 * integers in milliseconds (their names end in `_ms`), so this is only for flags.
 */

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

/** Milliseconds in `text` (rounded to a whole ms); throws RangeError with a hint when malformed. */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (!WHOLE.test(t)) {
    const hint = /^\d+(\.\d+)?$/.test(t) ? ` (add a unit: ${t}s, ${t}m, …)` : '';
    throw new RangeError(`"${text}" is not a duration; use e.g. 500ms, 90s, 30m, 1h, 1h30m${hint}`);
  }
  let ms = 0;
  for (const [, n, unit] of t.matchAll(PART)) ms += Number(n) * UNIT_MS[unit];
  return Math.round(ms);
}
