/**
 * `weft status`: the agent at a glance — version, uptime, readiness (with the reasons when not
 * ready), controller connection and applied versions, what it holds, certificate health, capture
 * programs, the proxy, and the process's CPU and memory. From /status and /runtime.
 */
import type { Command } from "commander";
import { action, emit, parseFormat } from "../../common/cli-output.js";
import type { CertificateStatus } from "../identity/manager.js";
import { agentOptions, connectAgent } from "./agent-client.js";
import { bytes, duration, relative } from "./humanize.js";

/** The parts of GET /status the CLI reads. */
export interface AgentStatus {
  node: string;
  version: string;
  uptimeSeconds: number;
  source: "controller" | "local";
  synced: boolean;
  revision: number;
  appliedVersions: Record<string, string>;
  counts: Record<string, number>;
  ready: { ready: boolean; reasons: string[] };
  components: {
    xds?: { target: string; state: string; since: string; lastError?: string; lastResponseAt?: string; recentNacks?: unknown[] };
    "local-config"?: Record<string, unknown>;
    identity?: CertificateStatus[];
    proxy?: {
      listening: boolean;
      workers: number;
      outbound: { ip: string; port: number };
      hbone: { ip: string; port: number };
      hboneSessions: { outbound: number; inbound: number; opened: number };
    };
    redirect?: {
      attached: boolean;
      synced: boolean;
      desired: number;
      unresolved: { pod: string; error: string }[];
      lastReconcile?: { at: string; result: { failed: unknown[] } };
      bpf: { attached: boolean; programs: { name: string; id: number; attachedTo: string }[]; maps: { name: string; entries: number }[] };
    };
    [name: string]: unknown;
  };
}

/** GET /runtime. */
export interface AgentRuntime {
  pid: number;
  nodejs: string;
  startedAt: string;
  process: {
    rssBytes: number;
    heapUsedBytes: number;
    cpu: { userSeconds: number; systemSeconds: number; averagePercent: number; recentPercent: number; windowMs: number };
    eventLoopUtilization: number;
  };
  proxy: { workers: number; connections: number } | null;
  settings: {
    source: { kind: string; controller?: string; path?: string };
    adminAddress: string | null;
    adminSocket: string | null;
    dataPlane: {
      proxyAddress: string;
      hboneAddress: string;
      workers: number;
      capture: { pinDir: string; podCgroupParent: string; proxyCgroup: string; layout: string; excluded: string[] } | null;
    } | null;
  };
}

function certLine(certs: readonly CertificateStatus[]): string {
  if (certs.length === 0) return "none held (no pod of this node is in the mesh)";
  const byState = new Map<string, number>();
  for (const c of certs) byState.set(c.state, (byState.get(c.state) ?? 0) + 1);
  const parts = [...byState.entries()].map(([s, n]) => `${n} ${s}`);
  const valid = certs.filter((c) => c.notAfter);
  const expiry = valid.map((c) => c.notAfter as string).sort()[0];
  const renew = certs
    .filter((c) => c.renewAt)
    .map((c) => c.renewAt as string)
    .sort()[0];
  const bad = certs.filter((c) => c.state !== "valid").map((c) => `${c.identity}: ${c.state}${c.lastError ? ` (${c.lastError})` : ""}`);
  return [
    `${parts.join(", ")}${renew ? `; next renewal ${relative(renew)}` : ""}${expiry ? `; earliest expiry ${relative(expiry)}` : ""}`,
    ...bad,
  ].join("\n");
}

function controllerLine(s: AgentStatus): string {
  const x = s.components.xds;
  if (!x) return s.source === "local" ? "none: the agent runs from a local config file" : "-";
  const nacks = x.recentNacks?.length ? `; ${x.recentNacks.length} recent NACKs (weft status -o json shows them)` : "";
  if (x.state === "connected")
    return `connected to ${x.target} since ${relative(x.since)}${x.lastResponseAt ? `; last push ${relative(x.lastResponseAt)}` : ""}${nacks}`;
  return `${x.state.toUpperCase()}: ${x.target} since ${relative(x.since)}${x.lastError ? ` (${x.lastError})` : ""}; serving its last config${nacks}`;
}

function captureLine(s: AgentStatus): string {
  const r = s.components.redirect;
  if (!r) return "off: the agent runs without capture (no --pod-cgroup)";
  if (!r.attached) return "NOT ATTACHED";
  const progs = r.bpf.programs;
  const cgroupHooks = progs.filter((p) => p.attachedTo.startsWith("cgroup")).length;
  const guards = progs.length - cgroupHooks;
  const pods = r.bpf.maps.find((m) => m.name === "weft_pods")?.entries ?? 0;
  const problems = r.unresolved.map((u) => `${u.pod}: ${u.error}`);
  return [
    `attached: ${cgroupHooks} cgroup hooks, ${guards} TCX guards; ${pods} pods captured of ${r.desired} desired${r.lastReconcile ? `; last reconcile ${relative(r.lastReconcile.at)}` : ""}`,
    ...problems,
  ].join("\n");
}

function proxyLine(s: AgentStatus, rt: AgentRuntime | undefined): string {
  const p = s.components.proxy;
  if (!p) return "off: the agent runs without a data plane (no --proxy-address)";
  const threads = p.workers === 0 ? "in the agent's thread" : `${p.workers} worker threads`;
  const conns = rt?.proxy ? `${rt.proxy.connections} live connections; ` : "";
  return `${p.listening ? "listening" : "NOT LISTENING"} on ${p.outbound.ip}:${p.outbound.port} (outbound), ${p.hbone.ip}:${p.hbone.port} (HBONE), ${threads}; ${conns}HBONE sessions ${p.hboneSessions.outbound} out, ${p.hboneSessions.inbound} in`;
}

/** The human rendering of status (exported for tests). */
export function renderStatus(s: AgentStatus, rt: AgentRuntime | undefined, via: string): string {
  const c = s.counts;
  const rows: [string, string][] = [
    ["agent", `${s.node}  v${s.version}${rt ? `  pid ${rt.pid}` : ""}  up ${duration(s.uptimeSeconds * 1000)}  (admin ${via})`],
    ["ready", s.ready.ready ? "yes" : `NO\n${s.ready.reasons.join("\n")}`],
    ["controller", controllerLine(s)],
    [
      "config",
      `${s.synced ? "synced" : "NOT SYNCED yet"}, revision ${s.revision}; applied: ${
        Object.entries(s.appliedVersions)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ") || "nothing yet"
      }`,
    ],
    [
      "holds",
      `${c.workloads ?? 0} workloads (${c.localWorkloads ?? 0} on this node), ${c.services ?? 0} services, ${c.authorizationPolicies ?? 0} authorization policies, ${c.peerAuthentications ?? 0} peer authentications, ${c.routes ?? 0} routes, ${c.destinationPolicies ?? 0} destination rules`,
    ],
    ["certificates", certLine(s.components.identity ?? [])],
    ["capture", captureLine(s)],
    ["proxy", proxyLine(s, rt)],
  ];
  if (rt) {
    const p = rt.process;
    rows.push([
      "process",
      `CPU ${p.cpu.recentPercent}% now, ${p.cpu.averagePercent}% average (${(p.cpu.userSeconds + p.cpu.systemSeconds).toFixed(1)} s); RSS ${bytes(p.rssBytes)}, heap ${bytes(p.heapUsedBytes)}; event loop ${Math.round(p.eventLoopUtilization * 100)}% busy; Node ${rt.nodejs}`,
    ]);
  }
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows
    .map(([k, v]) =>
      v
        .split("\n")
        .map((line, i) => `${(i === 0 ? k : "").padEnd(width)}${i === 0 ? line : `  ${line}`}`)
        .join("\n"),
    )
    .join("\n");
}

/** Registers `weft status`. */
export function registerStatusCommand(program: Command): void {
  agentOptions(
    program
      .command("status")
      .description("the node agent at a glance: readiness and why, controller, versions, counts, certificates, capture, proxy, CPU/RSS"),
  )
    .option("-o, --output <format>", "table, json or yaml", "table")
    .option("--all", "every agent side by side with the controller's view: versions, ACK/NACK, certificates, capture, lagging agents")
    .option("--agents <list>", "with --all: comma-separated admin addresses/sockets (default: every /run/weft/agent-*.sock)")
    .option("--controller <socket>", "with --all: the controller's status socket (default /var/lib/weft/controller/controller.sock)")
    .option("--lag-after <duration>", "with --all: a push unanswered this long flags the agent as lagging", "2s")
    .action(
      action(async (o) => {
        const format = parseFormat(o.output);
        if (o.all) {
          const { runStatusAll } = await import("./status-all-command.js");
          return runStatusAll(o, format);
        }
        const agent = await connectAgent(o);
        const status = await agent.json<AgentStatus>("/status");
        // /runtime came with the CLI; an older agent without it still gets a status.
        const runtime = await agent.json<AgentRuntime>("/runtime").catch(() => undefined);
        emit(format, { ...status, ...(runtime ? { runtime } : {}) }, () => renderStatus(status, runtime, agent.label));
      }),
    );
}
