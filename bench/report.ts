/**
 * Folds the bench scripts' outputs into bench/RESULTS.md.
 *
 *   node dist/bench/report.js --results DIR --out bench/RESULTS.md --command "npm run bench" [--quick] [--order "http bulk …"] [--previous FILE]
 *
 * DIR holds, per script NAME: NAME.out (its stdout, whose last line is the JSON contract),
 * NAME.err (its stderr) and NAME.rc (its exit code), which is what bench/run writes. A script
 * that failed, or printed no valid JSON, is listed under "Did not complete" with its last
 * stderr lines; the others are still reported. Every figure in the file comes from the outputs;
 * the hand-written analysis stays in bench/ANALYSIS.md. Tracked targets are compared with the
 * previous committed RESULTS.md (or --previous FILE).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { errorMessage } from "../common/errors.js";
import { collect } from "./lib/collect.js";
import { committedFile, gitState, machineFacts } from "./lib/machine.js";
import { dataBlock, parsePrevious, regressionChecks } from "./lib/previous.js";
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
      previous: { type: "string" },
    },
    strict: true,
  });
  if (!values.results || !values.out)
    throw new Error("usage: report.js --results DIR --out FILE [--command TEXT] [--quick] [--order 'a b c'] [--previous FILE]");
  if (!existsSync(values.results)) throw new Error(`--results ${values.results}: no such directory`);
  const { outputs, failures } = collect(values.results, (values.order ?? "").split(/\s+/).filter(Boolean));
  // "Must not regress" compares with the committed report (the file on disk when not in git).
  const previous = parsePrevious(
    values.previous !== undefined
      ? readFileSync(values.previous, "utf8")
      : ((await committedFile(REPO, "bench/RESULTS.md")) ?? (existsSync(values.out) ? readFileSync(values.out, "utf8") : null)),
  );
  const git = await gitState(REPO);
  const targets = outputs.flatMap((o) => o.targets ?? []);
  const text = renderResults({
    generatedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    command: values.command ?? "npm run bench",
    quick: values.quick === true,
    machine: await machineFacts(REPO),
    outputs,
    failures,
    git,
    regressions: regressionChecks(targets, previous),
    dataBlock: dataBlock(git ? `${git.commit}${git.dirty ? " with uncommitted changes" : ""}` : null, targets),
  });
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
