/**
 * What the kernel and the machine must offer before redirect touches anything, each problem
 * phrased as what to do about it. Paths are injectable so the detection itself is testable.
 */
import { readFileSync, statSync } from "node:fs";
import { isAbsolute, join, relative } from "node:path";
import { errorMessage, WeftError } from "../../common/errors.js";
import { parseCgroup2Mount } from "../../native/cgroup.js";
import { pathExists } from "../../native/paths.js";
import { OBJECT_FILES } from "./programs.js";
import type { RedirectConfig } from "./types.js";

/** Where preflight looks; tests point these at fixtures. */
export interface PreflightPaths {
  /** The kernel's own BTF (CO-RE needs it). */
  btf: string;
  /** Mount table text source. */
  mounts: string;
  /** Effective uid (-1 when unknown). */
  uid: number;
}

/** The real machine's paths. */
export function systemPaths(): PreflightPaths {
  return { btf: "/sys/kernel/btf/vmlinux", mounts: "/proc/self/mounts", uid: typeof process.getuid === "function" ? process.getuid() : -1 };
}

/** Redirect cannot run here; lists every reason at once. */
export class PreflightError extends WeftError {
  override readonly name = "PreflightError";
  constructor(readonly problems: readonly string[]) {
    super("WEFT_KERNEL", `redirect cannot start:\n  - ${problems.join("\n  - ")}`);
  }
}

interface Mount {
  point: string;
  type: string;
}

function parseMounts(text: string): Mount[] {
  return text
    .split("\n")
    .map((l) => l.split(" "))
    .filter((f) => f.length >= 3)
    .map((f) => ({ point: (f[1] as string).replace(/\\040/g, " "), type: f[2] as string }));
}

function within(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/** Every problem with this machine and config (empty when redirect can start). */
export function preflightProblems(cfg: RedirectConfig, paths: PreflightPaths = systemPaths()): string[] {
  const problems: string[] = [];
  if (paths.uid !== 0) {
    problems.push("not running as root: loading eBPF programs needs root (or CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN); run with sudo");
  }
  if (!pathExists(paths.btf)) {
    problems.push(
      `the kernel has no BTF (${paths.btf} is missing): weft's programs are CO-RE and need a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels 5.8+ are)`,
    );
  }
  let mountsText = "";
  try {
    mountsText = readFileSync(paths.mounts, "utf8");
  } catch (e) {
    problems.push(`cannot read the mount table ${paths.mounts}: ${errorMessage(e)}`);
  }
  const mounts = parseMounts(mountsText);
  const cg2 = parseCgroup2Mount(mountsText);
  if (!cg2) {
    problems.push(
      "cgroup v2 is not mounted: the capture hooks attach to cgroup v2 directories; mount it ('mount -t cgroup2 none /sys/fs/cgroup/unified') or boot with systemd.unified_cgroup_hierarchy=1",
    );
  } else {
    for (const [what, path] of [
      ["pod cgroup parent", cfg.podCgroupParent],
      ["proxy cgroup", cfg.proxyCgroup],
    ] as const) {
      if (!within(path, cg2)) problems.push(`${what} ${path} is not under the cgroup v2 mount ${cg2}`);
      else if (!isDir(path)) problems.push(`${what} ${path} does not exist`);
    }
    if (within(cfg.proxyCgroup, cfg.podCgroupParent)) {
      problems.push(
        `proxy cgroup ${cfg.proxyCgroup} is inside the pod cgroup parent ${cfg.podCgroupParent}: the proxy would capture its own connections; run it outside the pods' cgroup`,
      );
    }
  }
  const bpffs = mounts.filter((m) => m.type === "bpf" && within(cfg.pinDir, m.point));
  if (bpffs.length === 0) {
    problems.push(
      `pin directory ${cfg.pinDir} is not on a bpffs mount: mount one ('mount -t bpf bpf /sys/fs/bpf') or choose a pin dir under it`,
    );
  }
  for (const file of OBJECT_FILES) {
    const path = join(cfg.objectDir, file);
    if (!pathExists(path)) problems.push(`BPF object ${path} is missing: build it with 'npm run build' (or 'bash scripts/build-bpf')`);
  }
  return problems;
}

/** Throws PreflightError when anything is missing. */
export function preflight(cfg: RedirectConfig, paths: PreflightPaths = systemPaths()): void {
  const problems = preflightProblems(cfg, paths);
  if (problems.length > 0) throw new PreflightError(problems);
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
