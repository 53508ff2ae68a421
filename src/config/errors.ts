/** Config errors: collected all at once, each naming its key, what is wrong and a hint. */

export interface ConfigIssue {
  /** Dotted key (`ws.port`), or `config` for the file itself, or the raw flag/variable name. */
  key: string;
  message: string;
  hint?: string;
  /** Where the value came from: the file path, `MOOR_WS_PORT`, `--ws.port`. */
  source?: string;
}

export class ConfigError extends Error {
  readonly code = 'ERR_MOOR_CONFIG' as const;
  readonly errors: readonly ConfigIssue[];

  constructor(errors: readonly ConfigIssue[]) {
    super(`invalid configuration (${errors.length} error${errors.length === 1 ? '' : 's'}):\n${formatIssues(errors)}`);
    this.name = 'ConfigError';
    this.errors = errors;
  }
}

/** One issue per line (hint on the next), for terminals and logs. */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues
    .map((e) => {
      const from = e.source && e.source !== e.key ? ` (from ${e.source})` : '';
      return `  ${e.key}${from}: ${e.message}${e.hint ? `\n      hint: ${e.hint}` : ''}`;
    })
    .join('\n');
}

/** Why a file could not be read, in a few words (`no such file`). */
export function readFailure(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
}

/** Optimal string alignment distance: edits, with a swap of neighbours counting as one. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = [];
  for (let i = 0; i <= a.length; i++) d.push([i]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The known names closest to `name`: the nearest within a third of its length (at least
 * 2 edits), else every known name sharing its last segment (`port` → ws.port, tcp.port…).
 */
export function didYouMean(name: string, known: readonly string[]): string[] {
  const n = name.toLowerCase();
  let best = Number.POSITIVE_INFINITY;
  let near: string[] = [];
  for (const k of known) {
    const dist = editDistance(n, k.toLowerCase());
    if (dist < best) [best, near] = [dist, [k]];
    else if (dist === best) near.push(k);
  }
  if (best <= Math.max(2, Math.floor(n.length / 3))) return near;
  const leaf = n.slice(n.lastIndexOf('.') + 1);
  return known.filter((k) => k.slice(k.lastIndexOf('.') + 1) === leaf);
}

/** "did you mean `ws.port`?" / "did you mean `ws.port` or `api.port`?", or undefined. */
export function suggestion(name: string, known: readonly string[], render = (k: string) => k): string | undefined {
  const near = didYouMean(name, known).map((k) => `\`${render(k)}\``);
  if (near.length === 0) return undefined;
  const list = near.length === 1 ? near[0] : `${near.slice(0, -1).join(', ')} or ${near[near.length - 1]}`;
  return `did you mean ${list}?`;
}
