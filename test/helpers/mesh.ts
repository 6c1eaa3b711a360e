/** Test helpers for a running mesh on a test cluster: pods, processes, agents' admin and metrics. */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { adminGet } from "../../common/admin-server.js";
import { addPod, addService, clusterUp, label, requireState, runDetached } from "../../scripts/cluster/cluster.js";
import { agentSocket, startMesh } from "../../scripts/cluster/mesh.js";
import { execArgv, resolvePlace } from "../../scripts/cluster/processes.js";
import { stateDir } from "../../scripts/cluster/state.js";
import { type ClusterSpec, DEFAULT_SPEC } from "../../scripts/cluster/topology.js";
import { forceDown, PROBE, runProbe } from "./cluster.js";

/** A pod to create. */
export interface TestPod {
  ns: string;
  name: string;
  node: number;
  sa?: string;
  labels?: Record<string, string>;
}

/** Creates a cluster with these pods and namespace labels, then the controller and agents. */
export async function meshUp(
  cluster: string,
  pods: TestPod[],
  enrolled: string[],
  services: { ns: string; name: string; port: number; targetPort: number; selector: Record<string, string>; appProtocol?: string }[] = [],
  spec: Partial<ClusterSpec> = {},
): Promise<void> {
  await forceDown(cluster);
  await clusterUp({ ...DEFAULT_SPEC, name: cluster, podsPerNode: 0, ...spec });
  for (const ns of enrolled) await label(cluster, "namespace", ns, ["weft.dev/mesh=enabled"]);
  for (const p of pods)
    await addPod(cluster, {
      namespace: p.ns,
      name: p.name,
      node: p.node,
      labels: p.labels ?? { app: p.name },
      serviceAccount: p.sa ?? p.name,
    });
  for (const s of services)
    await addService(cluster, {
      namespace: s.ns,
      name: s.name,
      ports: [{ port: s.port, targetPort: s.targetPort, protocol: "TCP", ...(s.appProtocol ? { appProtocol: s.appProtocol } : {}) }],
      selector: s.selector,
    });
  await startMesh(cluster, { debounce: "20ms" });
}

/** Starts the probe in a pod in a server mode; waits until it listens. */
export async function probeServer(cluster: string, pod: string, mode: "echo-server" | "whoami-server", port: number): Promise<void> {
  await runDetached(cluster, pod, [process.execPath, PROBE, mode, String(port)], { what: `${mode} ${pod}` });
}

/** Runs the probe in a pod (joined to its netns and cgroup) and returns its last stdout line as JSON. */
export function probe<T = Record<string, unknown>>(cluster: string, from: string, args: string[], timeoutMs = 60_000): Promise<T> {
  return runProbe<T>(cluster, from, PROBE, args, timeoutMs);
}

/** The address the whoami server saw for a connection from `from` to host:port. */
export async function seenBy(cluster: string, from: string, host: string, port: number): Promise<string> {
  const r = await probe<{ ok: boolean; reply?: string; code?: string }>(cluster, from, ["connect", host, String(port), "hi", "3000"]);
  if (!r.ok) throw new Error(`connect ${from} -> ${host}:${port} failed: ${r.code}`);
  return (r.reply ?? "").split("\n")[0] ?? "";
}

/** A pod's IP. */
export function podIp(cluster: string, ns: string, name: string): string {
  const p = requireState(cluster).pods.find((x) => x.namespace === ns && x.name === name);
  if (!p) throw new Error(`no pod ${ns}/${name}`);
  return p.ip;
}

/** A service's VIP. */
export function vip(cluster: string, ns: string, name: string): string {
  const s = requireState(cluster).services.find((x) => x.namespace === ns && x.name === name);
  if (!s) throw new Error(`no service ${ns}/${name}`);
  return s.vip;
}

/** GET on node n's agent admin API (JSON). */
export async function admin<T = unknown>(cluster: string, n: number, path: string): Promise<T> {
  const r = await adminGet(agentSocket(cluster, n), path, 5000);
  if (r.status !== 200) throw new Error(`admin ${path} on node${n}: HTTP ${r.status} ${r.body}`);
  return JSON.parse(r.body) as T;
}

/** Node n's Prometheus metrics text (fetched from inside the node netns, as Prometheus would). */
export async function metrics(cluster: string, n: number): Promise<string> {
  const state = requireState(cluster);
  const [cmd, ...args] = execArgv(state, resolvePlace(state, `node${n}`), ["curl", "-s", "-m", "3", "http://127.0.0.1:15020/metrics"]);
  return new Promise((resolve, reject) => {
    const c = spawn(cmd as string, args, { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    c.stdout.on("data", (d) => {
      out += d;
    });
    c.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`metrics on node${n}: curl exited ${code}`))));
  });
}

/** Sum of a counter's samples whose labels contain every given k="v". */
export function counterSum(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** Node n's agent log lines (JSON) so far. */
export function agentLog(cluster: string, n: number): Record<string, unknown>[] {
  const file = join(stateDir(cluster), "logs", `agent_${cluster}-node${n}.log`);
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
