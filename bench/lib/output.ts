/**
 * The contract between bench scripts and the report: every script prints, as the LAST line of
 * its stdout, one JSON object `{"bench": "...", "rows": [...]}` (progress goes to stderr). The
 * report renders rows it knows nothing about, so a new benchmark needs no change here.
 */

/** A table cell: numbers stay numbers so the JSON is useful to machines too. */
export type Cell = string | number | boolean | null | readonly (string | number)[];

/** One row. `table` groups rows into tables (default: one table per bench); `variant` names the path measured. */
export interface BenchRow {
  table?: string;
  variant?: string;
  [column: string]: Cell | undefined;
}

/** A target from the issue checked by the bench that measures it. */
export interface TargetCheck {
  /** What is compared, e.g. "weft rps at c=50 vs HAProxy pair". */
  what: string;
  /** The bar, e.g. ">= 0.6×". */
  target: string;
  /** The measured value as text, or null when not measured. */
  measured: string | null;
  /** true met, false missed, null not measured. */
  met: boolean | null;
  note?: string;
  /** The median measured, as a number (machines compare runs with it). */
  value?: number;
  /** Per-round min and max of the measured figure. */
  spread?: [number, number];
  /** The bar's direction: ">=" higher is better, "<=" lower is better. */
  op?: ">=" | "<=";
  /** Compared with the previous committed run by the report (must not regress). */
  track?: boolean;
}

/** What one bench script reports. */
export interface BenchOutput {
  /** Short id: "http", "bulk", "capture". */
  bench: string;
  /** Section heading in RESULTS.md. */
  title?: string;
  /** The exact command that produced it. */
  command?: string;
  rows: BenchRow[];
  /** Lines printed under the section (method, caveats). */
  notes?: string[];
  targets?: TargetCheck[];
  /** Anything else the script wants to keep (rendered as key: value lines). */
  [extra: string]: unknown;
}

/** Prints the output as the one final stdout line. */
export function emitBenchOutput(out: BenchOutput): void {
  validateBenchOutput(out, out.bench);
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

/**
 * Reads a script's stdout: the last non-empty line is the JSON object. Scripts written before
 * the contract printed one pretty JSON document; that is accepted too (the whole text parses),
 * named after the script when it carries no `bench`.
 */
export function parseBenchOutput(stdout: string, scriptName: string): BenchOutput {
  const lines = stdout.split("\n").filter((l) => l.trim() !== "");
  const last = lines.at(-1);
  if (last === undefined)
    throw new Error(`${scriptName}: printed nothing on stdout (expected a final JSON line {"bench": ..., "rows": [...]})`);
  let value: unknown;
  try {
    value = JSON.parse(last);
  } catch {
    try {
      value = JSON.parse(stdout);
    } catch {
      throw new Error(`${scriptName}: the last stdout line is not JSON: ${last.slice(0, 200)}`);
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new Error(`${scriptName}: the final JSON is not an object`);
  const obj = value as Record<string, unknown>;
  const out = { ...obj, bench: typeof obj.bench === "string" ? obj.bench : scriptName } as BenchOutput;
  validateBenchOutput(out, scriptName);
  return out;
}

/** Throws naming the first thing that breaks the contract. */
export function validateBenchOutput(out: BenchOutput, scriptName: string): void {
  const where = `${scriptName}:`;
  if (typeof out.bench !== "string" || !/^[a-z0-9][a-z0-9-]*$/.test(out.bench))
    throw new Error(`${where} bench ${JSON.stringify(out.bench)} must be a short lowercase id`);
  if (!Array.isArray(out.rows)) throw new Error(`${where} rows must be an array`);
  out.rows.forEach((row, i) => {
    if (typeof row !== "object" || row === null || Array.isArray(row)) throw new Error(`${where} rows[${i}] is not an object`);
    for (const [col, v] of Object.entries(row)) {
      if (!isCell(v))
        throw new Error(`${where} rows[${i}].${col} is ${typeof v}: cells are strings, numbers, booleans, null or lists of those`);
    }
  });
  for (const key of ["title", "command"] as const) {
    if (out[key] !== undefined && typeof out[key] !== "string") throw new Error(`${where} ${key} must be a string`);
  }
  if (out.notes !== undefined && !(Array.isArray(out.notes) && out.notes.every((n) => typeof n === "string")))
    throw new Error(`${where} notes must be a list of strings`);
  if (out.targets !== undefined) {
    if (!Array.isArray(out.targets)) throw new Error(`${where} targets must be a list`);
    out.targets.forEach((t, i) => {
      if (typeof t?.what !== "string" || typeof t.target !== "string")
        throw new Error(`${where} targets[${i}] needs 'what' and 'target' strings`);
      if (!(t.measured === null || typeof t.measured === "string"))
        throw new Error(`${where} targets[${i}].measured must be a string or null`);
      if (!(t.met === null || typeof t.met === "boolean")) throw new Error(`${where} targets[${i}].met must be true, false or null`);
    });
  }
}

function isCell(v: unknown): boolean {
  if (v === null || ["string", "number", "boolean"].includes(typeof v)) return typeof v !== "number" || Number.isFinite(v);
  return Array.isArray(v) && v.every((x) => typeof x === "string" || (typeof x === "number" && Number.isFinite(x)));
}
