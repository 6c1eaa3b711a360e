/** The issue's targets as data, checked against what a run measured. */
import type { TargetCheck } from "./output.js";
import { type Spread, sig } from "./stats.js";

/** A bar: measured `op` bound, shown with a unit ("×" for ratios). */
export interface TargetSpec {
  what: string;
  op: ">=" | "<=";
  bound: number;
  unit: string;
  /** Also compare with the previous committed run (bench/report.ts), for figures that must not regress. */
  trackRegression?: boolean;
}

/**
 * Checks one target against the median; a spread (per-round min–max) is shown beside it but
 * never decides. A null measurement is "not measured" with the reason in the note.
 */
export function checkTarget(spec: TargetSpec, measured: number | Spread | null, missingReason?: string): TargetCheck {
  const target = `${spec.op} ${fmt(spec.bound, spec.unit)}`;
  const s = typeof measured === "number" ? { median: measured, min: measured, max: measured, n: 1 } : measured;
  const extra = spec.trackRegression ? { op: spec.op, track: true } : { op: spec.op };
  if (s === null || !Number.isFinite(s.median)) {
    return { what: spec.what, target, measured: null, met: null, note: missingReason ?? "not measured", ...extra };
  }
  const met = spec.op === ">=" ? s.median >= spec.bound : s.median <= spec.bound;
  const spread = typeof measured === "number" ? "" : ` (${fmtSpread(s, spec.unit)})`;
  return {
    what: spec.what,
    target,
    measured: `${fmt(s.median, spec.unit)}${spread}`,
    met,
    value: s.median,
    spread: [s.min, s.max],
    ...extra,
  };
}

/** "0.85–0.95× over 3 rounds", or "1 round". */
export function fmtSpread(s: Spread, unit: string): string {
  if (s.n === 1) return "1 round";
  return `${sig(s.min, 3)}–${fmt(s.max, unit)} over ${s.n} rounds`;
}

function fmt(v: number, unit: string): string {
  return `${sig(v, 3)}${unit === "×" ? "×" : ` ${unit}`}`;
}
