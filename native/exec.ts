/**
 * Running system tools (ip, nsenter, bpftool…) with errors that name the command and the fix.
 * Every external command weft runs goes through here so a missing tool always names its apt package.
 */
import { execFile, spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { KernelError, WeftError } from "../common/errors.js";

/** Debian packages that provide the tools weft shells out to. */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  ip: "iproute2",
  tc: "iproute2",
  bridge: "iproute2",
  nsenter: "util-linux",
  nft: "nftables",
  bpftool: "bpftool",
  clang: "clang",
  tcpdump: "tcpdump",
  haproxy: "haproxy",
  wrk: "wrk",
  h2load: "nghttp2-client",
  curl: "curl",
  openssl: "openssl",
};

/** A command that could not be run or exited non-zero. */
export class CommandError extends KernelError {
  override readonly name = "CommandError";
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    message: string,
  ) {
    super(message);
  }
}

/** A required tool is not installed; the message names the package to install. */
export class MissingToolError extends WeftError {
  override readonly name = "MissingToolError";
  constructor(readonly tool: string) {
    const pkg = TOOL_PACKAGES[tool] ?? tool;
    super("WEFT_MISSING_DEPENDENCY", `required tool '${tool}' is not installed: run 'apt-get install -y ${pkg}' (or 'npm run setup')`);
  }
}

const found = new Map<string, string | null>();

/** Absolute path of a tool on PATH (plus the sbin dirs non-login shells miss), or null. */
export function which(tool: string): string | null {
  const cached = found.get(tool);
  if (cached !== undefined) return cached;
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin", "/usr/local/sbin"];
  let hit: string | null = null;
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, tool);
    try {
      accessSync(candidate, constants.X_OK);
      hit = candidate;
      break;
    } catch {
      // not here; keep looking
    }
  }
  found.set(tool, hit);
  return hit;
}

/** Path of a tool, or a MissingToolError naming its package. */
export function requireTool(tool: string): string {
  const path = which(tool);
  if (!path) throw new MissingToolError(tool);
  return path;
}

/** Options for run(). */
export interface RunOptions {
  /** Data written to the command's stdin. */
  input?: string;
  /** Kill the command after this many milliseconds (default 30 s). */
  timeoutMs?: number;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
}

/** Result of a finished command. */
export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a tool to completion; throws CommandError (stderr included) when it fails. */
export function run(tool: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const path = requireTool(tool);
  return new Promise((resolve, reject) => {
    const child = execFile(
      path,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024, encoding: "utf8" },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        if (err && !opts.allowFailure) {
          const why = err.killed ? `timed out after ${opts.timeoutMs ?? 30_000} ms` : `exited with ${err.code ?? err.signal}`;
          const detail = stderr.trim() || stdout.trim();
          reject(new CommandError(tool, args, code, stderr, `${tool} ${args.join(" ")}: ${why}${detail ? `: ${detail}` : ""}`));
          return;
        }
        resolve({ stdout, stderr, code });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Synchronous variant for cleanup paths that must finish before the process exits. */
export function runSync(tool: string, args: readonly string[], opts: RunOptions = {}): RunResult {
  const path = requireTool(tool);
  const r = spawnSync(path, args, {
    input: opts.input,
    timeout: opts.timeoutMs ?? 30_000,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  const code = r.status ?? -1;
  if ((r.error || code !== 0) && !opts.allowFailure) {
    const detail = (r.stderr ?? "").trim() || r.error?.message || "";
    throw new CommandError(tool, args, code, r.stderr ?? "", `${tool} ${args.join(" ")}: exited with ${code}: ${detail}`);
  }
  return { stdout: r.stdout ?? "", stderr: r.stderr ?? "", code };
}
