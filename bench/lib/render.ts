/**
 * RESULTS.md rendering: pure functions of the bench outputs, so the whole report is unit-tested.
 * Columns whose name contains " vs " are ratios and print as "0.52×". A column "X spread" holding
 * [min, max] (per-round) is printed inside X's cell: "0.52× (0.48–0.6)".
 */
import type { BenchOutput, BenchRow, Cell, TargetCheck } from "./output.js";
import { sig } from "./stats.js";

/** A bench script that did not produce an output. */
export interface BenchFailure {
  bench: string;
  error: string;
  /** Last lines of its stderr. */
  logTail?: string;
}

/** Everything RESULTS.md is made of. */
export interface ResultsDoc {
  generatedAt: string;
  /** The exact command the user ran. */
  command: string;
  quick: boolean;
  /** [label, value] pairs: CPU, memory, kernel, versions… */
  machine: readonly (readonly [string, string])[];
  outputs: readonly BenchOutput[];
  failures: readonly BenchFailure[];
  /** The commit measured and whether the tree had uncommitted changes (null: unknown). */
  git?: { commit: string; dirty: boolean } | null;
  /** This run's tracked figures against the previous committed run's. */
  regressions?: readonly TargetCheck[];
  /** Machine-readable block appended at the end (bench/lib/previous.ts). */
  dataBlock?: string;
}

/** The whole RESULTS.md. */
export function renderResults(doc: ResultsDoc): string {
  const out: string[] = ["# weft benchmarks", ""];
  out.push(`Generated ${doc.generatedAt} by \`${doc.command}\`.`);
  if (doc.git === null || doc.git === undefined) out.push("", "Commit: unknown (not a git checkout).");
  else if (doc.git.dirty)
    out.push(
      "",
      `Commit: \`${doc.git.commit}\` **with uncommitted changes** (run with \`--allow-dirty\`): the numbers belong to no commit; do not commit this file.`,
    );
  else out.push("", `Commit: \`${doc.git.commit}\`, clean tree.`);
  if (doc.quick) {
    out.push("", "**Quick smoke run** (`--quick`): short runs, one round. It shows the harness works; do not quote its numbers.");
  }
  out.push(
    "",
    "Every variant runs in the same run, interleaved round by round in an order that changes each round (A B C, C B A, B C A, …). Numbers are medians over rounds;",
    "ratios (`×`) are paired: taken within each round, then the median across rounds. On a shared 2-core box the",
    "ratios are the result, absolute numbers are context.",
    "",
    "## Machine",
    "",
    markdownTable(
      ["", ""],
      doc.machine.map(([k, v]) => [k, v]),
    ),
  );
  const targets = doc.outputs.flatMap((o) => o.targets ?? []);
  if (targets.length) {
    out.push(
      "",
      "## Targets",
      "",
      "Computed by the run from the tables below: met only when the median holds; the spread is the per-round min–max.",
      "",
      renderTargets(targets),
    );
  }
  if (doc.regressions?.length)
    out.push(
      "",
      "### Against the previous committed run",
      "",
      "The tracked figures may be at most 5 % worse than in the bench/RESULTS.md committed before this run (ratios within each run, so the two runs' machines' load cancels as far as it can).",
      "",
      renderTargets(doc.regressions),
    );
  for (const o of doc.outputs) out.push("", renderSection(o));
  if (doc.failures.length) {
    out.push("", "## Did not complete", "");
    for (const f of doc.failures) {
      out.push(`- **${f.bench}**: ${oneLine(f.error)}`);
      if (f.logTail?.trim())
        out.push(
          "",
          "  ```",
          ...f.logTail
            .trimEnd()
            .split("\n")
            .map((l) => `  ${l}`),
          "  ```",
          "",
        );
    }
  }
  out.push(
    "",
    "Hand-written analysis (profiles, what was tried) is kept apart, dated, in bench/ANALYSIS.md; nothing in this file is written by hand.",
  );
  if (doc.dataBlock) out.push("", doc.dataBlock);
  return `${out
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trimEnd()}\n`;
}

/** The targets table: every bar, what was measured, and whether it was met. */
export function renderTargets(targets: readonly TargetCheck[]): string {
  return markdownTable(
    ["target", "bar", "measured", "result", "note"],
    targets.map((t) => [t.what, t.target, t.measured ?? "—", t.met === null ? "not measured" : t.met ? "met" : "**missed**", t.note ?? ""]),
  );
}

/** One bench's section: heading, command, notes, its tables, and any extra fields. */
export function renderSection(o: BenchOutput): string {
  const out: string[] = [`## ${o.title ?? o.bench}`, ""];
  if (o.command) out.push(`Command: \`${o.command}\``, "");
  for (const n of o.notes ?? []) out.push(`- ${oneLine(n)}`);
  if (o.notes?.length) out.push("");
  const groups = groupRows(o.rows);
  for (const [table, rows] of groups) {
    if (table !== null && (groups.size > 1 || table !== o.title)) out.push(`### ${table}`, "");
    const cols = columnsOf(rows);
    out.push(
      markdownTable(
        cols,
        rows.map((r) => cols.map((c) => withSpread(c, r))),
      ),
      "",
    );
  }
  const extras = Object.entries(o).filter(([k]) => !["bench", "title", "command", "rows", "notes", "targets"].includes(k));
  for (const [k, v] of extras) out.push(`- ${k}: ${oneLine(typeof v === "string" ? v : JSON.stringify(v))}`);
  return out.join("\n").trimEnd();
}

/** Formats a cell for a column: ratios as "0.52×", big numbers with separators, null as "—". */
export function formatCell(column: string, v: Cell | undefined): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "number") return column.includes(" vs ") ? `${formatNumber(v)}×` : formatNumber(v);
  if (typeof v === "string") return v;
  return v.map((x) => (typeof x === "number" ? formatNumber(x) : x)).join(", ");
}

/** A cell with its per-round spread, when the row has one for that column. */
export function withSpread(column: string, row: BenchRow): string {
  const cell = formatCell(column, row[column]);
  const spread = row[`${column} spread`];
  if (cell === "—" || !Array.isArray(spread) || spread.length !== 2 || !spread.every((x) => typeof x === "number")) return cell;
  const [lo, hi] = spread as [number, number];
  return lo === hi ? cell : `${cell} (${formatNumber(lo)}–${formatNumber(hi)})`;
}

/** 3 significant digits; thousands separators from 1,000 up. */
export function formatNumber(v: number): string {
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
  return String(sig(v, 3));
}

/** A GitHub-flavoured markdown table. */
export function markdownTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.map(escapeCell).join(" | ")} |`;
  return [line(headers), `|${headers.map(() => "---").join("|")}|`, ...rows.map(line)].join("\n");
}

function groupRows(rows: readonly BenchRow[]): Map<string | null, BenchRow[]> {
  const groups = new Map<string | null, BenchRow[]>();
  for (const r of rows) {
    const key = typeof r.table === "string" ? r.table : null;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return groups;
}

function columnsOf(rows: readonly BenchRow[]): string[] {
  const cols: string[] = [];
  for (const r of rows)
    for (const k of Object.keys(r)) {
      const spreadOfColumn = k.endsWith(" spread") && rows.some((x) => k.slice(0, -" spread".length) in x);
      if (k !== "table" && !spreadOfColumn && !cols.includes(k)) cols.push(k);
    }
  // "status" closes the row wherever a row first named it: it is the verdict on the numbers before it.
  return cols.includes("status") ? [...cols.filter((c) => c !== "status"), "status"] : cols;
}

function escapeCell(s: string): string {
  return oneLine(s).replace(/\|/g, "\\|");
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, " ").trim();
}
