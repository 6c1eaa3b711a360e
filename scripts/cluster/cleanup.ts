/**
 * Tearing a cluster down, including what a crashed run left behind: every process in its netns
 * or cgroups, every netns and cgroup with its prefix, every BPF pin under its names.
 */
import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "../../common/errors.js";
import { cgroupPath, killCgroup, removeCgroupTree, subtreePids } from "../../native/cgroup.js";
import { deleteNetns, listNetns, netnsInode } from "../../native/netns.js";
import { isSameProcess, pidsInNetns, signal, waitGone } from "../../native/proc.js";
import { type ClusterState, RUN_DIR, removeState } from "./state.js";
import { DEFAULT_SPEC, Topology } from "./topology.js";

/** Where BPF objects are pinned. */
export const BPFFS = "/sys/fs/bpf";

/** What cleanup found and removed, for the CLI to report. */
export interface CleanupReport {
  processes: number;
  netns: string[];
  cgroups: string[];
  pins: string[];
  problems: string[];
}

/** Names of netns belonging to a cluster (or to every weft cluster with all=true). */
export function ownedNetns(name: string, all: boolean): string[] {
  const topo = new Topology({ ...DEFAULT_SPEC, name });
  return listNetns().filter((ns) => (all ? ns.startsWith("weft-") : topo.ownsNetns(ns)));
}

/** Top-level cgroup directories of a cluster (or all weft clusters). */
function ownedCgroups(name: string, all: boolean): string[] {
  let root: string;
  try {
    root = cgroupPath("");
  } catch {
    return [];
  }
  if (!all) return existsSync(join(root, name)) ? [join(root, name)] : [];
  return readdirSync(root)
    .filter((d) => d === "weft" || d.startsWith("weft-"))
    .map((d) => join(root, d))
    .filter((p) => statSync(p).isDirectory());
}

/** BPF pin paths of a cluster's agents (/sys/fs/bpf/<name>-node<N>), or every weft pin. */
function ownedPins(name: string, all: boolean): string[] {
  if (!existsSync(BPFFS)) return [];
  const re = all ? /^weft($|-)/ : new RegExp(`^${name}-node\\d+$`);
  return readdirSync(BPFFS)
    .filter((d) => re.test(d))
    .map((d) => join(BPFFS, d));
}

/**
 * Removes everything of cluster `name` (state may be null after a crash). Order matters:
 * processes first (they hold sockets and cgroups), then netns (veths go with them), then
 * cgroups (must be empty), then pins (links detach once nothing holds them).
 */
export async function teardown(name: string, state: ClusterState | null, all = false): Promise<CleanupReport> {
  const report: CleanupReport = { processes: 0, netns: [], cgroups: [], pins: [], problems: [] };
  const netns = ownedNetns(name, all);
  const cgroups = ownedCgroups(name, all);

  const targets = new Set<number>();
  for (const p of state?.processes ?? []) if (isSameProcess(p.pid, p.startTime)) targets.add(p.pid);
  const inodes = new Set(netns.map(netnsInode).filter((i): i is bigint => i !== null));
  for (const pid of pidsInNetns(inodes)) targets.add(pid);
  for (const cg of cgroups) for (const pid of subtreePids(cg)) targets.add(pid);
  targets.delete(process.pid);

  // TERM first so agents can detach cleanly; KILL whatever is still there.
  for (const pid of targets) signal(pid, "SIGTERM");
  let alive = await waitGone([...targets], 3000);
  for (const pid of alive) signal(pid, "SIGKILL");
  for (const cg of cgroups) killCgroup(cg);
  alive = await waitGone(alive, 3000);
  report.processes = targets.size;
  if (alive.length > 0) report.problems.push(`processes still alive after SIGKILL: ${alive.join(", ")}`);

  for (const ns of netns) {
    await deleteNetns(ns);
    report.netns.push(ns);
  }
  for (const cg of cgroups) {
    const left = await removeCgroupWithRetry(cg);
    if (left.length) report.problems.push(...left.map((l) => `cgroup not removed: ${l}`));
    else report.cgroups.push(cg);
  }
  for (const pin of ownedPins(name, all)) {
    try {
      rmSync(pin, { recursive: true, force: true });
      report.pins.push(pin);
    } catch (e) {
      report.problems.push(`pin not removed: ${pin}: ${errorMessage(e)}`);
    }
  }
  // Agents' admin sockets and pidfiles live beside the clusters' state (/run/weft/agent-<node>.sock, .pid).
  const sockRe = all ? /^agent-weft(-.*)?\.(sock|pid)$/ : new RegExp(`^agent-${name}-node\\d+\\.(sock|pid)$`);
  try {
    for (const f of readdirSync(RUN_DIR)) if (sockRe.test(f)) rmSync(join(RUN_DIR, f), { force: true });
  } catch {
    // no run dir
  }
  if (all) {
    for (const d of listRunDirs()) removeState(d);
  } else {
    removeState(name);
  }
  return report;
}

/** A cgroup stays busy for a moment after its last process is reaped; retry briefly. */
async function removeCgroupWithRetry(cg: string): Promise<string[]> {
  let left: string[] = [];
  for (let i = 0; i < 50; i++) {
    left = removeCgroupTree(cg);
    if (left.length === 0) return [];
    await new Promise((r) => setTimeout(r, 20));
  }
  return left;
}

function listRunDirs(): string[] {
  const dir = RUN_DIR;
  try {
    return readdirSync(dir).filter((d) => /^weft(-[a-z0-9]+)?$/.test(d));
  } catch {
    return [];
  }
}
