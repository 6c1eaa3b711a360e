/**
 * The benchmarks' own local cluster, driven through the same functions `weft cluster` runs
 * (in-process: no node start-up per command, typed results). Commands run in a pod join its
 * cgroup and netns exactly as `weft cluster exec` does.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type RunResult, run } from "../../native/exec.js";
import { isSameProcess, processStartTime, signal, waitGone } from "../../native/proc.js";
import { addPod, clusterDown, clusterUp, label, requireState, runDetached } from "../../scripts/cluster/cluster.js";
import { execArgv, resolvePlace } from "../../scripts/cluster/processes.js";
import { type ClusterState, type PodRecord, type ProcessRecord, stateDir } from "../../scripts/cluster/state.js";
import { DEFAULT_SPEC, Topology } from "../../scripts/cluster/topology.js";

/** Options for a command run in the cluster. */
export interface ExecOptions {
  timeoutMs?: number;
  input?: string;
  /** Resolve instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
}

/** A 2-node local cluster the benchmark owns from creation to teardown. */
export class BenchCluster {
  private readonly topo: Topology;

  private constructor(readonly name: string) {
    this.topo = new Topology({ ...DEFAULT_SPEC, name, nodes: 2, podsPerNode: 0 });
  }

  /**
   * Creates the cluster (2 nodes, no pods), removing a leftover of a crashed run first, but never
   * the cluster of a benchmark that is still running (its owner file names a live process).
   */
  static async create(name: string): Promise<BenchCluster> {
    const owner = readOwner(name);
    if (owner && isSameProcess(owner.pid, owner.startTime)) {
      throw new Error(
        `cluster '${name}' belongs to a benchmark still running (pid ${owner.pid}); wait for it, or stop it first (two benchmarks at once would skew each other)`,
      );
    }
    const leftover = await clusterDown(name);
    if (leftover.problems.length) throw new Error(`could not clean up an earlier '${name}' cluster:\n  ${leftover.problems.join("\n  ")}`);
    await clusterUp({ ...DEFAULT_SPEC, name, nodes: 2, podsPerNode: 0 });
    writeFileSync(ownerFile(name), `${process.pid} ${processStartTime(process.pid) ?? ""}\n`);
    return new BenchCluster(name);
  }

  /** The cluster's recorded state (pods, processes). */
  state(): ClusterState {
    return requireState(this.name);
  }

  /** A node's address on the cluster bridge (10.250.0.1N). */
  nodeIp(node: number): string {
    return this.topo.nodeIp(node);
  }

  /** The pod gateway address on node n (10.244.N.1), present on every pod veth of the node. */
  podGateway(node: number): string {
    return this.topo.podGateway(node);
  }

  /** Adds a pod; namespace and name follow Kubernetes' rules. */
  async addPod(namespace: string, name: string, node: number): Promise<PodRecord> {
    return addPod(this.name, { namespace, name, node, labels: { app: name }, serviceAccount: name });
  }

  /** Sets labels on a namespace (enrolment is by label). */
  async labelNamespace(namespace: string, edits: readonly string[]): Promise<void> {
    await label(this.name, "namespace", namespace, edits);
  }

  /** Runs a command to completion in a pod ("ns/name"), a node ("node1") or the fabric. */
  async exec(target: string, argv: readonly string[], opts: ExecOptions = {}): Promise<RunResult> {
    const [cmd, ...args] = execArgv(this.state(), resolvePlace(this.state(), target), argv);
    return run(cmd as string, args, opts);
  }

  /** Starts a command in the cluster with pipes to it; the caller owns the child. */
  spawn(target: string, argv: readonly string[]): ChildProcess {
    const state = this.state();
    const [cmd, ...args] = execArgv(state, resolvePlace(state, target), argv);
    return spawn(cmd as string, args, { stdio: ["pipe", "pipe", "pipe"] });
  }

  /** Starts a background process, recorded so teardown stops it even if the bench crashes. */
  async detach(target: string, argv: readonly string[], what: string): Promise<ProcessRecord> {
    return runDetached(this.name, target, argv, { what });
  }

  /** Stops a background process: SIGTERM, then SIGKILL after graceMs. A recycled pid is never signalled. */
  async stop(proc: Pick<ProcessRecord, "pid" | "startTime">, graceMs = 5000): Promise<void> {
    if (!isSameProcess(proc.pid, proc.startTime)) return;
    signal(proc.pid, "SIGTERM");
    if ((await waitGone([proc.pid], graceMs)).length && isSameProcess(proc.pid, proc.startTime)) {
      signal(proc.pid, "SIGKILL");
      await waitGone([proc.pid], 2000);
    }
  }

  /** Removes the whole cluster; returns what could not be cleaned, if anything. */
  async destroy(): Promise<string[]> {
    const r = await clusterDown(this.name);
    return r.problems;
  }
}

/** Marks which process runs a bench cluster; it lives in the state dir, so `down` removes it. */
function ownerFile(name: string): string {
  return join(stateDir(name), "bench-owner");
}

function readOwner(name: string): { pid: number; startTime: string } | null {
  try {
    const [pid, startTime] = readFileSync(ownerFile(name), "utf8").trim().split(" ");
    return { pid: Number(pid), startTime: startTime ?? "" };
  } catch {
    return null;
  }
}
