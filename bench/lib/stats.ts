/**
 * The statistics every benchmark reports. Rounds are few (3–5) and the box is shared, so the
 * summaries are medians, and ratios between variants are paired: taken within a round (where the
 * variants ran back to back under the same noise) and then summarised across rounds.
 */

/** Median of a non-empty list (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error("median of an empty list");
  const s = sortedFinite(values, "median");
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** p-th percentile (0–100) by linear interpolation between closest ranks, as numpy's default. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error("percentile of an empty list");
  if (!(p >= 0 && p <= 100)) throw new Error(`percentile ${p}: must be between 0 and 100`);
  const s = sortedFinite(values, "percentile");
  const rank = (p / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = s[lo] as number;
  const b = s[hi] as number;
  return a + (b - a) * (rank - lo);
}

/** Arithmetic mean of a non-empty list. */
export function mean(values: readonly number[]): number {
  if (values.length === 0) throw new Error("mean of an empty list");
  return sortedFinite(values, "mean").reduce((a, b) => a + b, 0) / values.length;
}

/** a / b, or null when b is zero or either side is missing (no ratio is better than Infinity). */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a == null || b == null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return null;
  return a / b;
}

/** A median over rounds with its spread: the smallest and largest per-round value. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  /** Rounds that had a value. */
  n: number;
}

/** Median, min and max of the values, or null when there is none. */
export function spreadOf(values: readonly number[]): Spread | null {
  if (values.length === 0) return null;
  const s = sortedFinite(values, "spread");
  return { median: median(s), min: s[0] as number, max: s[s.length - 1] as number, n: s.length };
}

/** The per-round ratios a[i] / b[i]; rounds where either side is missing or b is zero are left out. */
export function perRoundRatios(a: readonly (number | null)[], b: readonly (number | null)[]): number[] {
  if (a.length !== b.length) throw new Error(`paired ratio over ${a.length} and ${b.length} rounds: the round counts must match`);
  const per: number[] = [];
  for (let i = 0; i < a.length; i++) {
    const r = ratio(a[i], b[i]);
    if (r !== null) per.push(r);
  }
  return per;
}

/**
 * Median over rounds of the per-round ratio a[i] / b[i]. Rounds where either side is missing or
 * b is zero are left out; null when no round is left.
 */
export function pairedRatio(a: readonly (number | null)[], b: readonly (number | null)[]): number | null {
  return pairedRatioSpread(a, b)?.median ?? null;
}

/** pairedRatio with its spread across rounds. */
export function pairedRatioSpread(a: readonly (number | null)[], b: readonly (number | null)[]): Spread | null {
  return spreadOf(perRoundRatios(a, b));
}

/**
 * Median over rounds of (a[i] - base[i]) / (b[i] - base[i]): how an added cost (latency over the
 * direct path) compares with another's. Rounds where b adds nothing measurable are left out.
 */
export function pairedAddedRatio(
  a: readonly (number | null)[],
  b: readonly (number | null)[],
  base: readonly (number | null)[],
): number | null {
  return pairedAddedRatioSpread(a, b, base)?.median ?? null;
}

/** pairedAddedRatio with its spread across rounds. */
export function pairedAddedRatioSpread(
  a: readonly (number | null)[],
  b: readonly (number | null)[],
  base: readonly (number | null)[],
): Spread | null {
  if (a.length !== b.length || a.length !== base.length) throw new Error("paired added ratio: the round counts must match");
  const per: number[] = [];
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    const z = base[i];
    if (x == null || y == null || z == null) continue;
    const r = ratio(x - z, y - z);
    if (r !== null && y - z > 0) per.push(r);
  }
  return spreadOf(per);
}

/** Rounds a number to a number of significant digits (for reports; never for math). */
export function sig(value: number, digits = 3): number {
  if (!Number.isFinite(value) || value === 0) return value;
  const p = 10 ** (digits - Math.ceil(Math.log10(Math.abs(value))));
  return Math.round(value * p) / p;
}

/** Median of the non-null values, or null when there is none. */
export function medianOrNull(values: readonly (number | null)[]): number | null {
  const present = values.filter((v): v is number => v !== null);
  return present.length ? median(present) : null;
}

function sortedFinite(values: readonly number[], what: string): number[] {
  for (const v of values) if (!Number.isFinite(v)) throw new Error(`${what}: ${v} is not a finite number`);
  return [...values].sort((x, y) => x - y);
}
