// Prints "N passed, N failed, N skipped" from vitest's JSON report (the line CI reads).
// A file that failed to load has no test results of its own; it counts as one failure.
import { readFileSync } from "node:fs";

const path = process.argv[2] ?? "test-results/report.json";
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
for (const file of report.testResults ?? []) {
  const results = file.assertionResults ?? [];
  for (const t of results) {
    if (t.status === "passed") passed++;
    else if (t.status === "failed") failed++;
    else skipped++;
  }
  if (file.status === "failed" && !results.some((t) => t.status === "failed")) failed++;
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
