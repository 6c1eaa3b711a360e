/**
 * Running weft on the local cluster: the controller in the fabric netns (on the bridge address)
 * and one agent per node netns, in the node's system cgroup, capturing the node's pods. All are
 * recorded processes of the cluster, so `weft cluster down` stops them and removes their pins.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { defaultAdminSocket } from "../../agent/config.js";
import { WEFT_ROOT } from "../../agent/version.js";
import { adminGet } from "../../common/admin-server.js";
import { PORT_CONTROLLER } from "../../controller/api/constants.js";
import { isSameProcess } from "../../native/proc.js";
import { requireState, runDetached } from "./cluster.js";
import { checkControllerAccess, controllerCommand, controllerGroupArgs, prepareControllerDir } from "./controller-user.js";
import { type ProcessRecord, stateDir } from "./state.js";
import { Topology } from "./topology.js";

/** Where the local controller keeps its CA, tokens and state. */
export function controllerDir(cluster: string): string {
  return join(stateDir(cluster), "controller");
}

/** The built CLI entry. */
export function weftBin(): string {
  return join(WEFT_ROOT, "dist", "agent", "cli", "main.js");
}

/**
 * Node flags for agents. A small young generation: a proxy's garbage is short-lived, and V8's
 * default lets the nursery grow to 3x16 MB, which shows as RSS that never comes back (see
 * bench/RESULTS.md). WEFT_AGENT_NODE_FLAGS overrides.
 */
export function agentNodeFlags(env = process.env): string[] {
  return (env.WEFT_AGENT_NODE_FLAGS ?? "--max-semi-space-size=4").split(/\s+/).filter(Boolean);
}

/** Mesh options. */
export interface MeshOptions {
  /** Proxy worker threads per agent (0: in the agent's thread). */
  proxyWorkers?: number;
  logLevel?: string;
  /** Controller debounce. */
  debounce?: string;
  /** Extra agent flags. */
  agentArgs?: string[];
}

/** A process `until` waits on has gone: no point waiting further. */
class Exited extends Error {}

/** The last lines of a log file, for an error message. */
function logTail(file: string, lines = 8): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n") || "(its log is empty)";
  } catch {
    return `(no log at ${file})`;
  }
}

/** Polls `check` until it returns something, for at most `timeoutMs` (an Exited error ends it at once). */
async function until<T>(what: string, timeoutMs: number, check: () => T | Promise<T>): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      if (e instanceof Exited) throw e;
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The admin socket of a node's agent. */
export function agentSocket(cluster: string, node: number): string {
  return defaultAdminSocket(new Topology(requireState(cluster).spec).nodeName(node));
}

/** Starts the controller, waiting until it has written the root and every node's token. */
export async function startController(cluster: string, opts: MeshOptions = {}): Promise<ProcessRecord> {
  const state = requireState(cluster);
  const topo = new Topology(state.spec);
  const dir = controllerDir(cluster);
  prepareControllerDir(dir);
  checkControllerAccess([{ path: state.storeDir }, { path: dir, write: true }]);
  const rec = await runDetached(
    cluster,
    "fabric",
    // Without root: nothing it does needs a privilege (controller-user.ts).
    controllerCommand(WEFT_ROOT, join(stateDir(cluster), "code"), [
      "controller",
      "--store",
      state.storeDir,
      "--listen",
      `${topo.fabricIp}:${PORT_CONTROLLER}`,
      "--state-dir",
      dir,
      "--debounce",
      opts.debounce ?? "50ms",
      "--log-level",
      opts.logLevel ?? "info",
    ]),
    { what: "controller" },
  );
  await until("the controller's root certificate and node tokens", 30_000, () => {
    // A controller that could not start is reported at once, with what it said.
    if (!isSameProcess(rec.pid, rec.startTime))
      throw new Exited(`the controller exited at start: ${rec.logFile ? logTail(rec.logFile) : "(no log)"}`);
    return (
      existsSync(join(dir, "ca", "root-cert.pem")) && state.nodes.every((n) => existsSync(join(dir, "tokens", `${topo.nodeName(n)}.token`)))
    );
  });
  return rec;
}

/**
 * Capabilities the agent may ever hold: BPF programs and maps (bpf, perfmon for tracing-type
 * helpers, sys_admin for cgroup attach, bpffs pins and setns), TCX/veth and address setup, and
 * IP_TRANSPARENT and SO_MARK sockets (net_admin: the kernel accepts it for both in place of
 * net_raw, and the agent opens no raw socket). Everything else (raw sockets, module loading,
 * ptrace, setuid, kill, chown, overriding file permissions…) is gone for its whole life.
 */
const AGENT_BOUNDING_SET = "-all,+bpf,+perfmon,+sys_admin,+net_admin";

/** Starts node n's agent: capture on the node's pods, proxy on the pods' gateway and node address. */
export async function startAgent(cluster: string, n: number, opts: MeshOptions = {}): Promise<ProcessRecord> {
  const state = requireState(cluster);
  const topo = new Topology(state.spec);
  const node = topo.nodeName(n);
  const dir = controllerDir(cluster);
  return runDetached(
    cluster,
    `node${n}`,
    [
      // The agent keeps only the capabilities its jobs need (docs/ARCHITECTURE.md, "Privileges"):
      // the bounding set is per process and inherited by every thread and child, which a capset
      // from JavaScript (per thread) could not promise.
      "setpriv",
      "--bounding-set",
      AGENT_BOUNDING_SET,
      "--inh-caps",
      "-all",
      // Without CAP_DAC_OVERRIDE it reads its token and the root certificate through the group.
      ...controllerGroupArgs(),
      process.execPath,
      ...agentNodeFlags(),
      weftBin(),
      "agent",
      "--node",
      node,
      "--controller",
      `${topo.fabricIp}:${PORT_CONTROLLER}`,
      "--token-file",
      join(dir, "tokens", `${node}.token`),
      "--ca-file",
      join(dir, "ca", "root-cert.pem"),
      "--proxy-address",
      topo.podGateway(n),
      "--hbone-address",
      topo.nodeIp(n),
      "--pod-cgroup",
      topo.podParentCgroup(n),
      "--cgroup-layout",
      topo.kubelet ? "kubelet" : "local",
      "--pin-dir",
      `/sys/fs/bpf/${node}`,
      "--proxy-workers",
      String(opts.proxyWorkers ?? 0),
      "--log-level",
      opts.logLevel ?? "info",
      // Beside the cluster's state, so `weft cluster down` removes it with everything else.
      "--state-dir",
      agentStateDir(cluster, node),
      ...(opts.agentArgs ?? []),
    ],
    // Two malloc arenas: libuv's and V8's helper threads each get one by default, and their
    // fragmentation shows as idle RSS; the agent allocates almost only on its main thread.
    { what: `agent ${node}`, env: { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? "2" } },
  );
}

/** Where node's agent persists its config and certificates on the local cluster. */
export function agentStateDir(cluster: string, node: string): string {
  return join(stateDir(cluster), "agents", node);
}

/** The pid of the agent answering on node n's admin socket (null: none answers). */
async function servingAgent(cluster: string, n: number): Promise<{ pid: number; ready: boolean } | null> {
  try {
    const r = await adminGet(agentSocket(cluster, n), "/status", 2000);
    const s = JSON.parse(r.body) as { pid?: number; ready?: { ready: boolean } };
    return typeof s.pid === "number" ? { pid: s.pid, ready: s.ready?.ready === true } : null;
  } catch {
    return null;
  }
}

/**
 * Restarts node n's agent without loss, as a rolling update would: starts a new agent next to the
 * running one, which takes over (the old one stops accepting and drains its connections), and
 * waits until the new one answers on the admin socket and is ready. Resolves with the new process.
 */
export async function restartAgent(cluster: string, n: number, opts: MeshOptions = {}, timeoutMs = 60_000): Promise<ProcessRecord> {
  const before = await servingAgent(cluster, n);
  const rec = await startAgent(cluster, n, opts);
  await until(`the new agent on node${n} to take over (log: ${join(stateDir(cluster), "logs")})`, timeoutMs, async () => {
    const now = await servingAgent(cluster, n);
    return now !== null && now.pid !== before?.pid && now.ready;
  });
  return rec;
}

/** Waits until node n's agent reports ready; the error carries its reasons. */
export async function waitAgentReady(cluster: string, n: number, timeoutMs = 30_000): Promise<void> {
  const socket = agentSocket(cluster, n);
  let reasons = "agent not answering on its admin socket";
  try {
    await until(`agent on node${n} to be ready`, timeoutMs, async () => {
      const r = await adminGet(socket, "/status", 2000);
      const ready = (JSON.parse(r.body) as { ready?: { ready: boolean; reasons: string[] } }).ready;
      if (ready && !ready.ready) reasons = ready.reasons.join("; ");
      return ready?.ready === true;
    });
  } catch {
    throw new Error(`agent on node${n} is not ready after ${timeoutMs} ms: ${reasons} (log: ${join(stateDir(cluster), "logs")})`);
  }
}

/** The mesh's processes. */
export interface MeshProcesses {
  controller: ProcessRecord;
  /** By node number. */
  agents: Map<number, ProcessRecord>;
}

/** Controller plus every node's agent, ready. */
export async function startMesh(cluster: string, opts: MeshOptions = {}): Promise<MeshProcesses> {
  const controller = await startController(cluster, opts);
  const nodes = requireState(cluster).nodes;
  const agents = new Map<number, ProcessRecord>();
  for (const n of nodes) agents.set(n, await startAgent(cluster, n, opts));
  for (const n of nodes) await waitAgentReady(cluster, n);
  return { controller, agents };
}
