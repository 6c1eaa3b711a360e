/**
 * Folds the bench scripts' outputs into bench/RESULTS.md.
 *
 *   node dist/bench/report.js --results DIR --out bench/RESULTS.md --command "npm run bench" [--quick] [--order "http bulk …"]
 *
 * DIR holds, per script NAME: NAME.out (its stdout, whose last line is the JSON contract),
 * NAME.err (its stderr) and NAME.rc (its exit code), which is what bench/run writes. A script
 * that failed, or printed no valid JSON, is listed under "Did not complete" with its last
 * stderr lines; the others are still reported.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { errorMessage } from "../common/errors.js";
import { collect } from "./lib/collect.js";
import { machineFacts } from "./lib/machine.js";
import { renderResults } from "./lib/render.js";

const REPO = join(import.meta.dirname, "..", "..");

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      results: { type: "string" },
      out: { type: "string" },
      command: { type: "string" },
      quick: { type: "boolean" },
      order: { type: "string" },
    },
    strict: true,
  });
  if (!values.results || !values.out)
    throw new Error("usage: report.js --results DIR --out FILE [--command TEXT] [--quick] [--order 'a b c']");
  if (!existsSync(values.results)) throw new Error(`--results ${values.results}: no such directory`);
  const { outputs, failures } = collect(values.results, (values.order ?? "").split(/\s+/).filter(Boolean));
  // The profiles and what was tried for missed targets are written by hand; they ride along.
  const analysisPath = join(REPO, "bench", "ANALYSIS.md");
  const analysis = existsSync(analysisPath) ? `\n${readFileSync(analysisPath, "utf8").trim()}\n` : "";
  const text = `${renderResults({
    generatedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    command: values.command ?? "npm run bench",
    quick: values.quick === true,
    machine: await machineFacts(REPO),
    outputs,
    failures,
  }).trimEnd()}\n${analysis}`;
  // Atomic: a reader (or a crash mid-write) never sees half a report.
  const tmp = join(dirname(values.out), `.RESULTS.${process.pid}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, values.out);
  process.stderr.write(
    `report: wrote ${values.out} (${outputs.length} benchmarks${failures.length ? `, ${failures.length} did not complete` : ""})\n`,
  );
}

main().catch((e) => {
  process.stderr.write(`report: ${errorMessage(e)}\n`);
  process.exitCode = 1;
});
