/** Waiting on conditions with a deadline, never sleeping and hoping. */

/**
 * Deadlines stretch by this factor (WEFT_TEST_SLACK, default 3): a deadline only decides how long
 * a failing wait takes to report, and on a busy 2-core machine (agents, controller, apps and
 * the test share it) a slow condition is not a broken one. One that holds returns as soon as seen.
 */
const SLACK = Math.max(1, Number(process.env.WEFT_TEST_SLACK) || 3);

/** Polls until check() returns a truthy value (returned) or throws after timeoutMs × SLACK, naming what. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 10_000, intervalMs = 25): Promise<NonNullable<T>> {
  timeoutMs *= SLACK;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? `: last error: ${lastError.message}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
