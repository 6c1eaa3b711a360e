/** What the numbers were measured on: CPU, memory, kernel, and the versions of every tool in the path. */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism, release, totalmem, version } from "node:os";
import { which } from "../../native/exec.js";

/** [label, value] rows for RESULTS.md's machine table. */
export async function machineFacts(repoRoot: string): Promise<[string, string][]> {
  const [haproxy, haproxyTls, wrk, nginx, curl, openssl, commit, dirty] = await Promise.all([
    tool("haproxy", ["-v"]),
    tool("haproxy", ["-vv"]).then((t) => (t ? parseHaproxyOpenssl(t) : null)),
    tool("wrk", ["-v"]),
    tool("nginx", ["-v"]),
    tool("curl", ["--version"]),
    tool("openssl", ["version"]),
    tool("git", ["-C", repoRoot, "rev-parse", "--short", "HEAD"], true),
    // --no-optional-locks: reading status must not refresh (write) the index of a shared checkout.
    // Untracked files are not counted (bench/run's rule too): only changes to tracked files alter the build.
    tool("git", ["-C", repoRoot, "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"], true),
  ]);
  const facts: [string, string][] = [
    ["CPU", `${cpuModel()} (${availableParallelism()} cores available)`],
    ["Memory", `${(totalmem() / 2 ** 30).toFixed(1)} GiB`],
    ["Kernel", `Linux ${release()} (${version()})`],
    ["Node", `${process.version} (OpenSSL ${process.versions.openssl})`],
    ["HAProxy", haproxy ? `${firstLine(haproxy)}${haproxyTls ? `, running on ${haproxyTls}` : ""}` : "not installed"],
    ["wrk", wrk ? firstLine(wrk) : "not installed"],
    ["nginx", nginx ? firstLine(nginx) : "not installed"],
    ["curl", curl ? firstLine(curl) : "not installed"],
    ["openssl (CLI)", openssl ? firstLine(openssl) : "not installed"],
  ];
  if (commit) facts.push(["weft commit", `${commit.trim()}${dirty?.trim() ? " with uncommitted changes" : ""}`]);
  return facts;
}

/** The commit checked out and whether tracked files differ from it (null: not a git checkout). */
export async function gitState(repoRoot: string): Promise<{ commit: string; dirty: boolean } | null> {
  const [commit, status] = await Promise.all([
    tool("git", ["-C", repoRoot, "rev-parse", "--short", "HEAD"], true),
    tool("git", ["-C", repoRoot, "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"], true),
  ]);
  if (!commit || status === null) return null;
  return { commit: commit.trim(), dirty: status.trim() !== "" };
}

/** The committed version of a file at HEAD, or null. */
export async function committedFile(repoRoot: string, path: string): Promise<string | null> {
  return tool("git", ["-C", repoRoot, "show", `HEAD:${path}`], true);
}

/** The CPU model from /proc/cpuinfo ("model name"), or "unknown". */
export function cpuModel(cpuinfo = safeRead("/proc/cpuinfo")): string {
  return /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown";
}

/** "OpenSSL 3.0.x …" from `haproxy -vv`: the library it runs on, which sets its TLS cost. */
export function parseHaproxyOpenssl(vv: string): string | null {
  return /^Running on (OpenSSL version : .+)$/m.exec(vv)?.[1]?.replace("OpenSSL version : ", "") ?? null;
}

/** First non-empty line, trimmed. */
export function firstLine(text: string): string {
  return (
    text
      .split("\n")
      .map((l) => l.trim())
      .find(Boolean) ?? ""
  );
}

/**
 * A tool's stdout+stderr (some print their version to stderr, some exit non-zero doing it), or
 * null when it is absent; with stdoutOnly, stdout of a successful run only.
 */
function tool(cmd: string, args: readonly string[], stdoutOnly = false): Promise<string | null> {
  const path = which(cmd);
  if (!path) return Promise.resolve(null);
  return new Promise((resolve) => {
    execFile(path, args, { timeout: 10_000, encoding: "utf8" }, (err, stdout, stderr) => {
      if (stdoutOnly) resolve(err ? null : stdout);
      else resolve(`${stdout}\n${stderr}`);
    });
  });
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
