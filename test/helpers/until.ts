/** Polling waits for tests: a condition checked until it holds, never a fixed sleep that a slow disk outlasts. */

/** Resolves once `cond` holds; throws "timed out waiting for <what>" after `timeoutMs`. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
