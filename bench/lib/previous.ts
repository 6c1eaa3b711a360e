/**
 * The previous committed run, for the "must not regress" checks: the targets it measured, read
 * from the machine-readable block every RESULTS.md now carries, or, for a report written before
 * that block existed, from its Targets table.
 */
import type { TargetCheck } from "./output.js";
import { sig } from "./stats.js";

/** Marker of the machine-readable block (an HTML comment, invisible in rendered markdown). */
export const DATA_MARKER = "weft-bench-data:";

/** What a previous run measured. */
export interface PreviousRun {
  /** Its commit as the report states it ("924a4cd", possibly "… with uncommitted changes"). */
  commit: string | null;
  /** Median measured per target ("what"). */
  values: Map<string, number>;
}

/** The machine-readable block for RESULTS.md. */
export function dataBlock(commit: string | null, targets: readonly TargetCheck[]): string {
  const values: Record<string, number> = {};
  for (const t of targets) if (typeof t.value === "number") values[t.what] = t.value;
  return `<!-- ${DATA_MARKER} ${JSON.stringify({ commit, values })} -->`;
}

/** Reads a previous RESULTS.md; null when there is none or it holds no target values. */
export function parsePrevious(text: string | null): PreviousRun | null {
  if (!text) return null;
  const commit = /^\| weft commit \| ([^|]+?) \|$/m.exec(text)?.[1]?.trim() ?? null;
  const block = new RegExp(`<!-- ${DATA_MARKER} (\\{.*\\}) -->`).exec(text);
  if (block?.[1]) {
    try {
      const data = JSON.parse(block[1]) as { commit?: string | null; values?: Record<string, unknown> };
      const values = new Map<string, number>();
      for (const [k, v] of Object.entries(data.values ?? {})) if (typeof v === "number" && Number.isFinite(v)) values.set(k, v);
      return { commit: data.commit ?? commit, values };
    } catch {
      // fall through to the table
    }
  }
  const section = /^## Targets\n([\s\S]*?)(?=^## )/m.exec(`${text}\n## `)?.[1] ?? "";
  const values = new Map<string, number>();
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    // | what | bar | measured | result | note |
    if (cells.length < 6 || cells[1] === "target" || cells[1]?.startsWith("---")) continue;
    const m = /^(-?[\d,]*\.?\d+)/.exec(cells[3] ?? "");
    if (cells[1] && m?.[1]) values.set(cells[1], Number(m[1].replace(/,/g, "")));
  }
  return values.size ? { commit, values } : null;
}

/** Allowed regression: 5 % worse than the previous run. */
export const REGRESSION_TOLERANCE = 0.05;

/**
 * For every tracked target: this run's median against the previous run's, at most 5 % worse
 * (lower for a ">=" target, higher for a "<=" one).
 */
export function regressionChecks(current: readonly TargetCheck[], previous: PreviousRun | null): TargetCheck[] {
  const out: TargetCheck[] = [];
  for (const t of current) {
    if (!t.track) continue;
    const what = `${t.what}: this run vs the previous committed run`;
    const before = previous?.values.get(t.what);
    const higherBetter = t.op !== "<=";
    const limit = before === undefined ? null : before * (higherBetter ? 1 - REGRESSION_TOLERANCE : 1 + REGRESSION_TOLERANCE);
    const target =
      before === undefined || limit === null
        ? `${higherBetter ? ">=" : "<="} ${higherBetter ? "95" : "105"} % of the previous run's`
        : `${higherBetter ? ">=" : "<="} ${sig(limit, 3)} (${higherBetter ? "95" : "105"} % of ${sig(before, 3)}${previous?.commit ? `, ${previous.commit}` : ""})`;
    if (before === undefined || limit === null) {
      out.push({
        what,
        target,
        measured: null,
        met: null,
        note: previous ? "the previous run has no such figure" : "no previous RESULTS.md",
      });
      continue;
    }
    if (typeof t.value !== "number") {
      out.push({ what, target, measured: null, met: null, note: t.note ?? "not measured in this run" });
      continue;
    }
    const met = higherBetter ? t.value >= limit : t.value <= limit;
    out.push({ what, target, measured: t.measured, met, value: t.value, ...(t.spread ? { spread: t.spread } : {}) });
  }
  return out;
}
