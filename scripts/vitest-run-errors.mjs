// A vitest reporter for what its JSON reporter leaves out: errors raised outside any test
// (unhandled rejections and exceptions) and how the run ended. scripts/test-summary.mjs counts
// them as failures. Writes WEFT_RUN_ERRORS_FILE (default test-results/run-errors.json).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";

/** Records unhandled errors and the end reason of a vitest run. */
export default class RunErrorsReporter {
  onTestRunEnd(_testModules, unhandledErrors, reason) {
    const file = resolve(process.env.WEFT_RUN_ERRORS_FILE ?? "test-results/run-errors.json");
    mkdirSync(dirname(file), { recursive: true });
    const messages = (unhandledErrors ?? []).map((e) => (e && typeof e === "object" && "message" in e ? String(e.message) : String(e)));
    writeFileSync(file, `${JSON.stringify({ reason: reason ?? null, unhandledErrors: messages })}\n`);
  }
}
