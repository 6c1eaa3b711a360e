/** Test helpers around a local cluster: state, probes in pods, leftover checks. */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cgroup2Root } from "../../native/cgroup.js";
import { listNetns } from "../../native/netns.js";
import type { ClusterState } from "../../scripts/cluster/state.js";
import { ROOT, weft, weftOk } from "./weft.js";

/** Path of the probe program tests run inside pods. */
export const PROBE = join(ROOT, "test", "helpers", "probe.mjs");

/** Reads a test cluster's recorded state. */
export function readState(name: string): ClusterState {
  return JSON.parse(readFileSync(join(process.env.WEFT_RUN_DIR ?? "/run/weft", name, "cluster.json"), "utf8")) as ClusterState;
}

/** Result of probe.mjs connect. */
export interface ProbeResult {
  ok: boolean;
  reply?: string;
  code?: string;
  localAddress?: string;
  remoteAddress?: string;
  remotePort?: number;
  ms: number;
}

/**
 * Runs a probe program (plain Node) in a pod, node or the fabric, joined to its netns and cgroup,
 * and parses its last stdout line as JSON: every probe mode reports that way.
 */
export async function runProbe<T>(cluster: string, from: string, script: string, args: readonly string[], timeoutMs = 60_000): Promise<T> {
  const r = await weft(["cluster", "exec", "--name", cluster, from, "--", process.execPath, script, ...args], { timeoutMs });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`probe ${args.join(" ")} from ${from} printed no result (exit ${r.code}): ${r.stdout} ${r.stderr}`);
  }
}

/** Connects from a pod/node to host:port, sends message, returns what came back. */
export function probeConnect(
  cluster: string,
  from: string,
  host: string,
  port: number,
  message: string,
  timeoutMs = 5000,
): Promise<ProbeResult> {
  return runProbe<ProbeResult>(cluster, from, PROBE, ["connect", host, String(port), message, String(timeoutMs)]);
}

/** Starts an echo server in a pod (recorded, so `down` stops it). */
export async function startEcho(cluster: string, pod: string, port: number): Promise<number> {
  const out = await weftOk([
    "cluster",
    "exec",
    "--name",
    cluster,
    "--detach",
    pod,
    "--",
    process.execPath,
    PROBE,
    "echo-server",
    String(port),
  ]);
  return Number(out.trim());
}

/** Everything of a cluster still on the machine: netns, cgroup dir, pins. */
export function leftovers(name: string): string[] {
  const found = listNetns().filter((n) => n === `${name}-fabric` || n.startsWith(`${name}-node`) || n.startsWith(`${name}-pod-`));
  if (existsSync(join(cgroup2Root(), name))) found.push(`cgroup ${name}`);
  if (existsSync("/sys/fs/bpf")) {
    for (const d of readdirSync("/sys/fs/bpf")) if (d.startsWith(`${name}-`)) found.push(`pin ${d}`);
  }
  return found;
}

/** Best-effort teardown for afterAll hooks. */
export async function forceDown(name: string): Promise<void> {
  await weft(["cluster", "down", "--name", name], { timeoutMs: 60_000 });
}
