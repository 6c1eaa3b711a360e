/**
 * cgroup v2 helpers. Pods get one directory each so the connect hooks can tell them apart;
 * a cgroup's id (what BPF's bpf_get_current_cgroup_id returns) is its directory's inode number.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { isAbsolute, join, relative } from "node:path";
import { KernelError } from "../common/errors.js";

/** cgroup v2 is not mounted, so pods cannot be told apart by the BPF hooks. */
export class NoCgroup2Error extends KernelError {
  override readonly name = "NoCgroup2Error";
  constructor() {
    super(
      "cgroup v2 is not mounted: mount it ('mount -t cgroup2 none /sys/fs/cgroup/unified') or boot with systemd.unified_cgroup_hierarchy=1",
    );
  }
}

let cachedRoot: string | undefined;

/** Mount point of the cgroup v2 hierarchy (pure v2 at /sys/fs/cgroup, or hybrid at …/unified). */
export function cgroup2Root(mounts = "/proc/self/mounts"): string {
  if (cachedRoot && mounts === "/proc/self/mounts") return cachedRoot;
  const root = parseCgroup2Mount(readFileSync(mounts, "utf8"));
  if (!root) throw new NoCgroup2Error();
  if (mounts === "/proc/self/mounts") cachedRoot = root;
  return root;
}

/** Finds the cgroup2 mount point in /proc/mounts text; the shortest path wins (the hierarchy root). */
export function parseCgroup2Mount(mountsText: string): string | null {
  let best: string | null = null;
  for (const line of mountsText.split("\n")) {
    const [, mountPoint, fsType] = line.split(" ");
    if (fsType !== "cgroup2" || !mountPoint) continue;
    const path = mountPoint.replace(/\\040/g, " ");
    if (best === null || path.length < best.length) best = path;
  }
  return best;
}

/** Absolute path of a cgroup given its path relative to the v2 root. */
export function cgroupPath(relative: string): string {
  return join(cgroup2Root(), relative);
}

/** Creates a cgroup (and parents); returns its absolute path. */
export function createCgroup(relative: string): string {
  const path = cgroupPath(relative);
  mkdirSync(path, { recursive: true });
  return path;
}

/**
 * A cgroup's level in the hierarchy (the root is 0), what bpf_get_current_ancestor_cgroup_id
 * counts: its depth below the v2 mount. True in the host's cgroup namespace, where the agent runs.
 */
export function cgroupLevel(absPath: string, root = cgroup2Root()): number {
  const rel = relative(root, absPath);
  if (rel.startsWith("..") || isAbsolute(rel)) throw new KernelError(`cgroup ${absPath} is not under the cgroup v2 root ${root}`);
  return rel.split("/").filter(Boolean).length;
}

/** The cgroup id BPF sees for processes in this cgroup. */
export function cgroupId(absPath: string): bigint {
  return statSync(absPath, { bigint: true }).ino;
}

/** PIDs directly in a cgroup (not its children). */
export function cgroupPids(absPath: string): number[] {
  try {
    return readFileSync(join(absPath, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Sub-cgroup directory names of a cgroup. */
export function childCgroups(absPath: string): string[] {
  try {
    return readdirSync(absPath, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
  } catch {
    return [];
  }
}

/** All PIDs in a cgroup subtree. */
export function subtreePids(absPath: string): number[] {
  const pids = cgroupPids(absPath);
  for (const child of childCgroups(absPath)) pids.push(...subtreePids(join(absPath, child)));
  return pids;
}

/**
 * Kills every process in a cgroup subtree. cgroup.kill (5.14+) is atomic against forks;
 * the per-pid SIGKILL fallback covers older kernels.
 */
export function killCgroup(absPath: string): void {
  if (!existsSync(absPath)) return;
  try {
    writeFileSync(join(absPath, "cgroup.kill"), "1");
    return;
  } catch {
    // no cgroup.kill on this kernel
  }
  for (const pid of subtreePids(absPath)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** Removes a cgroup subtree bottom-up; the cgroups must hold no live processes. Returns leftovers. */
export function removeCgroupTree(absPath: string): string[] {
  if (!existsSync(absPath)) return [];
  const failed: string[] = [];
  for (const child of childCgroups(absPath)) failed.push(...removeCgroupTree(join(absPath, child)));
  try {
    rmdirSync(absPath);
  } catch (e) {
    failed.push(`${absPath}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return failed;
}
