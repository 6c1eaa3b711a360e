/** Runs the built `weft` CLI (dist/) as tests' subprocess, the way a user runs it. */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

/** Repository root. */
export const ROOT = join(import.meta.dirname, "..", "..");
/** The compiled CLI entry. */
export const WEFT_BIN = join(ROOT, "dist", "agent", "cli", "main.js");

/** Result of a finished CLI call. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `weft <args>` to completion (never throws on a non-zero exit). */
export function weft(
  args: readonly string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<CliResult> {
  if (!existsSync(WEFT_BIN)) throw new Error(`${WEFT_BIN} is missing: run 'npm run build' (npm test does it)`);
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [WEFT_BIN, ...args],
      { timeout: opts.timeoutMs ?? 60_000, env: { ...process.env, ...opts.env }, maxBuffer: 32 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Runs `weft <args>` and fails the test with its stderr when it exits non-zero. */
export async function weftOk(args: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> {
  const r = await weft(args, opts);
  if (r.code !== 0) throw new Error(`weft ${args.join(" ")} exited ${r.code}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Starts `weft <args>` in the background. */
export function weftSpawn(args: readonly string[]): ChildProcess {
  return spawn(process.execPath, [WEFT_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
}

/** A cluster name unique to this test process, so test clusters never touch a developer's. */
export function testClusterName(tag: string): string {
  return `weft-${tag}${process.pid % 10000}`.slice(0, 17);
}
