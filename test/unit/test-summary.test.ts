/**
 * scripts/test-summary.mjs: the closing line CI reads must never say "0 failed" for a failed run.
 * Fixtures have the shape vitest 4's JSON reporter writes (checked against a real run: a file
 * whose import fails is `status: "failed"` with no assertionResults and counts in
 * numFailedTestSuites; an unhandled rejection leaves the report at `success: true`, so only the
 * run-errors reporter and the exit code reveal it).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const SCRIPT = join(import.meta.dirname, "..", "..", "scripts", "test-summary.mjs");
const dir = mkdtempSync(join(tmpdir(), "weft-test-summary-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface FileResult {
  name: string;
  status: "passed" | "failed";
  message?: string;
  tests: ("passed" | "failed" | "skipped" | "pending")[];
}

let n = 0;
function report(files: FileResult[], extra: Record<string, unknown> = {}): string {
  const testResults = files.map((f) => ({
    name: f.name,
    status: f.status,
    message: f.message ?? "",
    assertionResults: f.tests.map((status, i) => ({ title: `t${i}`, fullName: `t${i}`, status, failureMessages: [] })),
  }));
  const tests = files.flatMap((f) => f.tests);
  const failedFiles = files.filter((f) => f.status === "failed").length;
  const body = {
    numTotalTestSuites: files.length,
    numFailedTestSuites: failedFiles,
    numPassedTestSuites: files.length - failedFiles,
    numTotalTests: tests.length,
    numFailedTests: tests.filter((t) => t === "failed").length,
    numPassedTests: tests.filter((t) => t === "passed").length,
    success: failedFiles === 0 && !tests.includes("failed"),
    testResults,
    ...extra,
  };
  return write(body);
}

function write(body: unknown): string {
  const file = join(dir, `f${n++}.json`);
  writeFileSync(file, typeof body === "string" ? body : JSON.stringify(body));
  return file;
}

function summary(...args: string[]): { last: string; lines: string[] } {
  const out = execFileSync(process.execPath, [SCRIPT, ...args], { encoding: "utf8" });
  const lines = out.trim().split("\n");
  return { last: lines.at(-1) ?? "", lines };
}

describe("test-summary", () => {
  it("counts passed, failed and skipped tests", () => {
    const r = report([
      { name: "a.test.ts", status: "failed", tests: ["passed", "failed", "skipped"] },
      { name: "b.test.ts", status: "passed", tests: ["passed", "pending"] },
    ]);
    expect(summary(r).last).toBe("2 passed, 1 failed, 2 skipped");
  });

  it("counts a file that failed to load as a failure and names it", () => {
    const r = report([
      { name: "/x/broken.test.ts", status: "failed", message: "Cannot find module './gone.js'", tests: [] },
      { name: "/x/ok.test.ts", status: "passed", tests: ["passed"] },
    ]);
    const s = summary(r);
    expect(s.last).toBe("1 passed, 1 failed, 0 skipped");
    expect(s.lines.join("\n")).toMatch(/failed to run: \/x\/broken\.test\.ts \(Cannot find module/);
  });

  it("counts each unhandled error from the run-errors file", () => {
    const r = report([{ name: "a.test.ts", status: "passed", tests: ["passed"] }]);
    const errors = write({ reason: "passed", unhandledErrors: ["leaked", "also leaked"] });
    const s = summary(r, "--run-errors", errors, "--exit-code", "1");
    expect(s.last).toBe("1 passed, 2 failed, 0 skipped");
    expect(s.lines).toContain("unhandled error: leaked");
  });

  it("a failed exit code with nothing else failed is still one failure", () => {
    const r = report([{ name: "a.test.ts", status: "passed", tests: ["passed"] }]);
    expect(summary(r, "--exit-code", "1").last).toBe("1 passed, 1 failed, 0 skipped");
    expect(summary(r, "--exit-code", "0").last).toBe("1 passed, 0 failed, 0 skipped");
  });

  it("an unreadable run-errors file does not hide a failed exit", () => {
    const r = report([{ name: "a.test.ts", status: "passed", tests: ["passed"] }]);
    const s = summary(r, "--run-errors", join(dir, "absent.json"), "--exit-code", "1");
    expect(s.last).toBe("1 passed, 1 failed, 0 skipped");
  });

  it("a suite that failed in a hook with every test skipped is a failure", () => {
    const r = report([{ name: "a.test.ts", status: "passed", tests: ["skipped"] }], { numFailedTestSuites: 1, success: false });
    expect(summary(r).last).toBe("0 passed, 1 failed, 1 skipped");
  });

  it("a missing or corrupt report is one failure", () => {
    expect(summary(join(dir, "nope.json")).last).toBe("0 passed, 1 failed, 0 skipped");
    expect(summary(write("{not json")).last).toBe("0 passed, 1 failed, 0 skipped");
  });

  it("an interrupted run is a failure", () => {
    const r = report([{ name: "a.test.ts", status: "passed", tests: ["passed"] }]);
    const errors = write({ reason: "interrupted", unhandledErrors: [] });
    expect(summary(r, "--run-errors", errors).last).toBe("1 passed, 1 failed, 0 skipped");
  });
});
