/**
 * Gathers what bench/run left in its results directory: per script NAME, NAME.out (stdout, whose
 * last line is the JSON contract), NAME.err (stderr) and NAME.rc (exit code).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "../../common/errors.js";
import { type BenchOutput, parseBenchOutput } from "./output.js";
import type { BenchFailure } from "./render.js";

/** Reads every script's files in DIR, in `order` first and then by name. */
export function collect(dir: string, order: readonly string[]): { outputs: BenchOutput[]; failures: BenchFailure[] } {
  const names = new Set(
    readdirSync(dir)
      .filter((f) => /\.(out|rc)$/.test(f))
      .map((f) => f.replace(/\.(out|rc)$/, "")),
  );
  const sorted = [...order.filter((n) => names.has(n)), ...[...names].filter((n) => !order.includes(n)).sort()];
  const outputs: BenchOutput[] = [];
  const failures: BenchFailure[] = [];
  for (const name of sorted) {
    const read = (ext: string) => (existsSync(join(dir, `${name}.${ext}`)) ? readFileSync(join(dir, `${name}.${ext}`), "utf8") : "");
    const rc = read("rc").trim();
    const logTail = read("err").trimEnd().split("\n").slice(-15).join("\n");
    if (rc !== "0") {
      const why = rc === "124" ? "timed out (bench/run's limit)" : rc === "" ? "did not finish" : `exited with ${rc}`;
      failures.push({ bench: name, error: why, logTail });
      continue;
    }
    try {
      outputs.push(parseBenchOutput(read("out"), name));
    } catch (e) {
      failures.push({ bench: name, error: errorMessage(e), logTail });
    }
  }
  return { outputs, failures };
}
