// Prints "N passed, N failed, N skipped" from vitest's JSON report (the line CI reads).
//
//   node scripts/test-summary.mjs [report.json] [--run-errors run-errors.json] [--exit-code N]
//
// The JSON reporter only knows tests and files. A file that failed to load has no test results
// of its own (status "failed", no assertionResults): it counts as one failure. Unhandled errors
// (a rejection or exception outside any test) are not in that report at all: vitest fails the
// run but the report can still say success. scripts/vitest-run-errors.mjs writes them to their
// own file, each counted as a failure; and when vitest's exit code says the run failed while
// nothing above did, that is one failure too, so the line never reads "0 failed" for a failed run.
import { readFileSync } from "node:fs";

const args = process.argv.slice(2);
let path = "test-results/report.json";
let runErrorsPath = null;
let exitCode = null;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--run-errors") runErrorsPath = args[++i] ?? null;
  else if (a === "--exit-code") exitCode = Number(args[++i]);
  else path = a;
}

let report;
try {
  report = JSON.parse(readFileSync(path, "utf8"));
} catch (e) {
  console.log(`test report ${path} is missing or unreadable (${e.message})`);
  console.log("0 passed, 1 failed, 0 skipped");
  process.exit(0);
}
let passed = 0;
let failed = 0;
let skipped = 0;
const notes = [];
for (const file of report.testResults ?? []) {
  const results = file.assertionResults ?? [];
  for (const t of results) {
    if (t.status === "passed") passed++;
    else if (t.status === "failed") failed++;
    else skipped++;
  }
  if (file.status === "failed" && !results.some((t) => t.status === "failed")) {
    failed++;
    notes.push(`failed to run: ${file.name}${file.message ? ` (${String(file.message).split("\n")[0]})` : ""}`);
  }
}
// Suites (describe blocks) that failed in a hook with every test skipped leave no failed test.
const suitesFailed = Number(report.numFailedTestSuites ?? 0);
const filesFailed = (report.testResults ?? []).filter((f) => f.status === "failed").length;
if (failed === 0 && suitesFailed > 0) {
  failed += suitesFailed;
  notes.push(`${suitesFailed} suite(s) failed with no failed test`);
}
if (runErrorsPath) {
  let runErrors = null;
  try {
    runErrors = JSON.parse(readFileSync(runErrorsPath, "utf8"));
  } catch (e) {
    notes.push(`run-errors file ${runErrorsPath} is missing or unreadable (${e.message})`);
  }
  const unhandled = Array.isArray(runErrors?.unhandledErrors) ? runErrors.unhandledErrors : [];
  if (unhandled.length) {
    failed += unhandled.length;
    for (const m of unhandled) notes.push(`unhandled error: ${String(m).split("\n")[0]}`);
  }
  if (runErrors?.reason === "interrupted") {
    failed++;
    notes.push("the run was interrupted");
  }
}
if (exitCode !== null && Number.isFinite(exitCode) && exitCode !== 0 && failed === 0) {
  failed = 1;
  notes.push(`vitest exited with ${exitCode} although no test or file failed (see its output)`);
}
if (report.success === false && failed === 0 && filesFailed === 0) {
  failed = 1;
  notes.push("the report says the run did not succeed");
}
for (const n of notes) console.log(n);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
