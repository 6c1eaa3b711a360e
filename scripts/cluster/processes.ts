/**
 * Running commands inside the cluster: in a pod (its netns and its cgroup, so the BPF hooks see
 * it as that pod), on a node, or on the fabric. Background processes are recorded in the state
 * so `down` can stop them.
 */
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { dirname, join } from "node:path";
import { cgroupPath } from "../../native/cgroup.js";
import { netnsPath } from "../../native/netns.js";
import { processStartTime } from "../../native/proc.js";
import { type ClusterState, type PodRecord, type ProcessRecord, stateDir } from "./state.js";
import { Topology } from "./topology.js";

/** Where a command runs: a pod, a node, or the fabric (where the local controller lives). */
export type Place = { kind: "pod"; pod: PodRecord } | { kind: "node"; node: number } | { kind: "fabric" };

/** Resolves "ns/pod", "pod" (namespace default), "node<N>"/"<cluster>-node<N>" or "fabric". */
export function resolvePlace(state: ClusterState, target: string): Place {
  const topo = new Topology(state.spec);
  if (target === "fabric" || target === topo.fabricNetns) return { kind: "fabric" };
  const nodeMatch = /^(?:.*-)?node(\d+)$/.exec(target);
  if (nodeMatch && state.nodes.includes(Number(nodeMatch[1])) && !target.includes("/")) {
    return { kind: "node", node: Number(nodeMatch[1]) };
  }
  const [ns, name] = target.includes("/") ? (target.split("/", 2) as [string, string]) : ["default", target];
  const pod = state.pods.find((p) => p.namespace === ns && p.name === name);
  if (!pod) {
    const known = state.pods.map((p) => `${p.namespace}/${p.name}`).join(", ") || "none";
    throw new Error(`no pod '${ns}/${name}' in cluster '${state.spec.name}' (pods: ${known}); nodes are node1…node${state.nodes.length}`);
  }
  return { kind: "pod", pod };
}

/** netns name of a place. */
export function placeNetns(state: ClusterState, place: Place): string {
  const topo = new Topology(state.spec);
  if (place.kind === "pod") return place.pod.netns;
  if (place.kind === "node") return topo.nodeName(place.node);
  return topo.fabricNetns;
}

/** cgroup (absolute) a command in this place joins: the pod's own, or the node's system cgroup. */
export function placeCgroup(state: ClusterState, place: Place): string | null {
  const topo = new Topology(state.spec);
  if (place.kind === "pod") return cgroupPath(place.pod.cgroup);
  if (place.kind === "node") return cgroupPath(topo.systemCgroup(place.node));
  return null;
}

/**
 * argv that joins the cgroup first (so the process is the pod's from its first syscall) and then
 * the netns with nsenter; nsenter execs, so the pid is the command's own.
 */
export function execArgv(state: ClusterState, place: Place, argv: readonly string[]): string[] {
  const ns = netnsPath(placeNetns(state, place));
  const cg = placeCgroup(state, place);
  if (!cg) return ["nsenter", `--net=${ns}`, "--", ...argv];
  return [
    "sh",
    "-c",
    'echo $$ > "$1/cgroup.procs" && ns="$2" && shift 2 && exec nsenter --net="$ns" -- "$@"',
    "weft-exec",
    cg,
    ns,
    ...argv,
  ];
}

/** Options for a background process. */
export interface SpawnOptions {
  /** Short description for status and logs ("agent node1", "app bookinfo/details-v1"). */
  what: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Starts a detached process in a place, logging to the cluster's log dir; returns its record. */
export function spawnDetached(state: ClusterState, place: Place, argv: readonly string[], opts: SpawnOptions): ProcessRecord {
  const logDir = join(stateDir(state.spec.name), "logs");
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, `${opts.what.replace(/[^a-zA-Z0-9._-]+/g, "_")}.log`);
  mkdirSync(dirname(logFile), { recursive: true });
  const fd = openSync(logFile, "a");
  const [cmd, ...args] = execArgv(state, place, argv);
  try {
    const child = spawn(cmd as string, args, {
      detached: true,
      stdio: ["ignore", fd, fd],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    if (child.pid === undefined) throw new Error(`could not start ${opts.what}: ${argv.join(" ")}`);
    child.unref();
    return {
      pid: child.pid,
      startTime: processStartTime(child.pid) ?? "",
      what: opts.what,
      netns: placeNetns(state, place),
      logFile,
    };
  } finally {
    closeSync(fd);
  }
}
