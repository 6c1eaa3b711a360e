/** `--limit name=value` settings, shared by `weft agent` and `weft controller`. */

/**
 * Parses `key=value` limit settings (the `--limit` flag) over defaults; problems (naming the
 * setting) go onto errors. Values are positive integers; unknown keys are refused.
 */
export function parseLimits<T extends object>(defaults: T, settings: readonly string[], flag: string, errors: string[]): T {
  const out: Record<string, number> = { ...(defaults as Record<string, number>) };
  for (const s of settings) {
    const m = /^([A-Za-z]+)=(\d{1,12})$/.exec(s);
    if (!m) {
      errors.push(`${flag} '${s}': expected <name>=<positive integer>`);
      continue;
    }
    const [, key, value] = m as unknown as [string, string, string];
    if (!(key in out)) {
      errors.push(`${flag} '${s}': unknown limit '${key}' (known: ${Object.keys(out).join(", ")})`);
      continue;
    }
    const n = Number(value);
    if (n < 1) {
      errors.push(`${flag} '${s}': must be at least 1`);
      continue;
    }
    out[key] = n;
  }
  return out as T;
}
