/** The issue's targets as data, checked against what a run measured. */
import type { TargetCheck } from "./output.js";
import { sig } from "./stats.js";

/** A bar: measured `op` bound, shown with a unit ("×" for ratios). */
export interface TargetSpec {
  what: string;
  op: ">=" | "<=";
  bound: number;
  unit: string;
}

/** Checks one target; a null measurement is "not measured" with the reason in the note. */
export function checkTarget(spec: TargetSpec, measured: number | null, missingReason?: string): TargetCheck {
  const target = `${spec.op} ${fmt(spec.bound, spec.unit)}`;
  if (measured === null || !Number.isFinite(measured)) {
    return { what: spec.what, target, measured: null, met: null, note: missingReason ?? "not measured" };
  }
  const met = spec.op === ">=" ? measured >= spec.bound : measured <= spec.bound;
  return { what: spec.what, target, measured: fmt(measured, spec.unit), met };
}

function fmt(v: number, unit: string): string {
  return `${sig(v, 3)}${unit === "×" ? "×" : ` ${unit}`}`;
}
