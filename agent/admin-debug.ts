/**
 * The admin endpoints behind the `weft` troubleshooting commands: /runtime (the process and its
 * settings), /workloads (enrolment and capture per pod), /explain and /explain/inbound (dry runs
 * of the data path's decisions), /tap (live connection events as NDJSON). The composition root
 * registers them; they only read the agent's parts.
 */
import { performance } from "node:perf_hooks";
import type { AdminRequest, AdminResponse, AdminServer } from "../common/admin-server.js";
import { PORT_OUTBOUND } from "../controller/api/constants.js";
import { explain, explainInbound, type InboundQuery } from "./admin-explain.js";
import { type CaptureFacts, ExplainError } from "./admin-explain-input.js";
import type { CaptureStatus } from "./capture/component.js";
import { inboundModeOf } from "./capture/desired.js";
import type { AgentConfig } from "./config.js";
import type { CertificateStatus } from "./identity/manager.js";
import type { ConnectionEvent } from "./proxy/connection-manager.js";
import type { ProxyHandle, TapEvent } from "./proxy/handle.js";
import type { RequestEvent } from "./proxy/l7/request-event.js";
import type { RedirectStatus } from "./redirect/types.js";
import type { MeshState } from "./state/updater.js";
import type { MeshView } from "./state/view.js";
import type { ReadonlyWatch } from "./state/watch.js";
import { VERSION } from "./version.js";

/** The parts of the agent these endpoints read (AgentApp satisfies it). */
export interface DebugAgent {
  readonly config: AgentConfig;
  readonly updater: { readonly state: ReadonlyWatch<MeshState> };
  readonly identity: { status(): CertificateStatus[] };
  readonly proxy: { readonly handle: ProxyHandle } | undefined;
  readonly capture: { readonly redirector: { status(): RedirectStatus; excluded(): string[] }; status(): CaptureStatus } | undefined;
}

/** Per-pod capture state on this node. */
export interface WorkloadCapture {
  /** captured: in the BPF map; off: not in the mesh; pending/failed: in the mesh, not applied yet; disabled: no capture here. */
  state: "captured" | "off" | "pending" | "failed" | "disabled";
  guard?: string;
  hostInterface?: string;
  cgroup?: string;
  error?: string;
}

/** One row of /workloads. */
export interface WorkloadInfo {
  namespace: string;
  name: string;
  uid: string;
  addresses: string[];
  node: string;
  local: boolean;
  serviceAccount: string;
  identity: string;
  enrolled: boolean;
  enrolmentReason: string;
  ready: boolean;
  services: string[];
  mtls?: { mode: string; source: string };
  capture?: WorkloadCapture;
}

/** One line of /tap. */
export type TapLine =
  | { type: "start"; node: string; at: string; filter: Record<string, string> }
  | ({ type: "open" | "close"; at: string } & Omit<ConnectionEvent, "type">)
  | { type: "request"; at: string; request: RequestEvent }
  | { type: "dropped"; count: number; at: string }
  | { type: "keepalive" | "end"; at?: string; reason?: string };

const bad = (status: number, error: string): AdminResponse => ({ status, json: { error } });

/** CPU use of the whole process (every thread: the proxy workers too) over a recent window. */
class CpuSampler {
  private last = { at: performance.now(), cpu: process.cpuUsage() };

  async sample(): Promise<{ percent: number; windowMs: number }> {
    let age = performance.now() - this.last.at;
    // A fresh window when the previous sample is too recent to mean anything, or too old to be "now".
    if (age < 500 || age > 60_000) {
      this.last = { at: performance.now(), cpu: process.cpuUsage() };
      await new Promise((r) => setTimeout(r, 250));
      age = performance.now() - this.last.at;
    }
    const d = process.cpuUsage(this.last.cpu);
    this.last = { at: performance.now(), cpu: process.cpuUsage() };
    return { percent: Math.round(((d.user + d.system) / 1000 / age) * 1000) / 10, windowMs: Math.round(age) };
  }
}

function runtime(agent: DebugAgent, cpu: CpuSampler): () => Promise<AdminResponse> {
  return async () => {
    const mem = process.memoryUsage();
    const used = process.cpuUsage();
    const uptime = process.uptime();
    const recent = await cpu.sample();
    const c = agent.config;
    const dp = c.dataPlane;
    const handle = agent.proxy?.handle;
    return {
      json: {
        pid: process.pid,
        node: c.node,
        version: VERSION,
        nodejs: process.version,
        startedAt: new Date(Date.now() - uptime * 1000).toISOString(),
        uptimeSeconds: Math.round(uptime),
        process: {
          rssBytes: mem.rss,
          heapUsedBytes: mem.heapUsed,
          heapTotalBytes: mem.heapTotal,
          externalBytes: mem.external,
          cpu: {
            userSeconds: used.user / 1e6,
            systemSeconds: used.system / 1e6,
            averagePercent: Math.round(((used.user + used.system) / 1e6 / Math.max(uptime, 0.001)) * 1000) / 10,
            recentPercent: recent.percent,
            windowMs: recent.windowMs,
          },
          eventLoopUtilization: Math.round(performance.eventLoopUtilization().utilization * 1000) / 1000,
        },
        proxy: handle ? { workers: handle.workers, connections: (await handle.connections()).length } : null,
        settings: {
          source:
            c.source.kind === "controller" ? { kind: "controller", controller: c.source.target } : { kind: "local", path: c.source.path },
          adminAddress: c.adminAddress ? `${c.adminAddress.host}:${c.adminAddress.port}` : null,
          adminSocket: c.adminSocket,
          dataPlane: dp
            ? {
                proxyAddress: dp.proxyAddress,
                hboneAddress: dp.hboneAddress,
                workers: dp.workers,
                metrics: dp.metrics ? `${dp.metrics.host}:${dp.metrics.port}` : null,
                readiness: dp.readiness ? `${dp.readiness.host}:${dp.readiness.port}` : null,
                capture: dp.capture,
              }
            : null,
        },
      },
    };
  };
}

function captureOf(agent: DebugAgent, applied: Map<string, RedirectStatus["pods"][number]>, unresolved: Map<string, string>) {
  return (w: { uid: string; namespace: string; name: string; enrolled: boolean }): WorkloadCapture => {
    if (!agent.capture) return { state: "disabled" };
    const p = applied.get(w.uid);
    if (p?.capture) return { state: "captured", guard: p.inbound, hostInterface: p.hostInterface, cgroup: p.cgroupPath };
    if (!w.enrolled) return { state: "off" };
    const error = unresolved.get(`${w.namespace}/${w.name}`);
    return error ? { state: "failed", error } : { state: "pending" };
  };
}

function workloads(agent: DebugAgent): (req: AdminRequest) => AdminResponse {
  return (req) => {
    const ns = req.url.searchParams.get("namespace");
    const view: MeshView = agent.updater.state.get().view;
    const status = agent.capture?.status();
    const applied = new Map((agent.capture?.redirector.status().pods ?? []).map((p) => [p.uid, p]));
    const unresolved = new Map((status?.unresolved ?? []).map((u) => [u.pod, u.error]));
    const capture = captureOf(agent, applied, unresolved);
    const rows: WorkloadInfo[] = view.data.workloads
      .filter((w) => !ns || w.namespace === ns)
      .map((w) => {
        const local = w.node === view.nodeName;
        const mtls = local ? view.mtlsModeFor(w, 0) : undefined;
        return {
          namespace: w.namespace,
          name: w.name,
          uid: w.uid,
          addresses: w.addresses,
          node: w.node,
          local,
          serviceAccount: w.serviceAccount,
          identity: w.identity,
          enrolled: w.enrolled,
          enrolmentReason: w.enrolmentReason,
          ready: w.ready,
          services: view.servicesOf(w).map((s) => s.key),
          ...(mtls ? { mtls: { mode: w.enrolled ? mtls.mode : "-", source: mtls.source } } : {}),
          ...(local ? { capture: { ...capture(w), ...(w.enrolled && agent.capture ? { guard: inboundModeOf(view, w) } : {}) } } : {}),
        };
      })
      .sort((a, b) => Number(b.local) - Number(a.local) || a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
    return { json: { node: view.nodeName, synced: agent.updater.state.get().synced, workloads: rows } };
  };
}

function captureFacts(agent: DebugAgent): CaptureFacts {
  const dp = agent.config.dataPlane;
  const c = agent.capture;
  if (!c || !dp)
    return {
      enabled: false,
      captured: new Set(),
      unresolved: [],
      proxyAddress: dp?.proxyAddress ?? null,
      outboundPort: PORT_OUTBOUND,
      excluded: [],
    };
  return {
    enabled: true,
    captured: new Set(
      c.redirector
        .status()
        .pods.filter((p) => p.capture)
        .map((p) => p.uid),
    ),
    unresolved: c.status().unresolved,
    proxyAddress: dp.proxyAddress,
    outboundPort: PORT_OUTBOUND,
    excluded: c.redirector.excluded(),
  };
}

function explainHandler(agent: DebugAgent): (req: AdminRequest) => AdminResponse {
  return (req) => {
    const src = req.url.searchParams.get("src");
    const dst = req.url.searchParams.get("dst");
    if (!src || !dst) return bad(400, "explain needs ?src=<pod>&dst=<host:port>");
    const state = agent.updater.state.get();
    if (!state.synced) return bad(503, "this agent has not received its mesh config yet: nothing to explain against");
    try {
      const p = req.url.searchParams;
      const headers: Record<string, string> = {};
      for (const h of p.getAll("header")) {
        const i = h.indexOf(":");
        if (i <= 0) return bad(400, `header '${h}': expected name:value`);
        headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
      }
      const sample = { method: (p.get("method") ?? "GET").toUpperCase(), path: p.get("path") ?? "/", headers };
      return { json: explain(state.view, src, dst, captureFacts(agent), agent.identity.status(), sample) };
    } catch (e) {
      if (e instanceof ExplainError) return { status: e.status, json: { error: e.message, code: e.code } };
      throw e;
    }
  };
}

function inboundHandler(agent: DebugAgent): (req: AdminRequest) => AdminResponse {
  return (req) => {
    const p = req.url.searchParams;
    const kind = p.get("kind") ?? "mesh";
    const sourceIp = p.get("sourceIp");
    const target = p.get("target");
    if (kind !== "mesh" && kind !== "plaintext") return bad(400, `kind '${kind}': expected mesh or plaintext`);
    if (!sourceIp || !target || !/^[\d.]+:\d{1,5}$/.test(target))
      return bad(400, "explain/inbound needs ?sourceIp=<ip>&target=<ip:port> (and sourceIdentity for kind=mesh)");
    if (kind === "mesh" && !p.get("sourceIdentity")) return bad(400, "kind=mesh needs sourceIdentity");
    const q: InboundQuery = {
      kind,
      sourceIp,
      target,
      ...(p.get("sourceIdentity") ? { sourceIdentity: p.get("sourceIdentity") as string } : {}),
      ...(p.get("presentedIdentity") ? { presentedIdentity: p.get("presentedIdentity") as string } : {}),
    };
    return { json: explainInbound(agent.updater.state.get().view, q) };
  };
}

/** True when a workload "ns/name" (or an address) is what a filter names. */
function podMatches(filter: string, workload: string | undefined, ips: readonly string[]): boolean {
  if (ips.includes(filter)) return true;
  if (!workload) return false;
  return filter.includes("/") ? workload === filter : workload.slice(workload.indexOf("/") + 1) === filter;
}

function tap(agent: DebugAgent): (req: AdminRequest) => AdminResponse {
  return (req) => {
    const handle = agent.proxy?.handle;
    if (!handle) return bad(404, "this agent runs without a data plane (no --proxy-address): there are no connections to tap");
    const pod = req.url.searchParams.get("pod") ?? undefined;
    const ns = req.url.searchParams.get("namespace") ?? undefined;
    const matches = (e: TapEvent): boolean => {
      const facts =
        e.type === "request"
          ? { workloads: [e.request.source, e.request.destinationWorkload], ips: [e.request.upstream?.split(":")[0] ?? ""] }
          : {
              workloads: [e.connection.srcWorkload, e.connection.dstWorkload],
              ips: [e.connection.src.ip, e.connection.dst.ip, e.connection.target?.ip ?? ""],
            };
      const [src, dst] = facts.workloads;
      if (ns && !facts.workloads.some((w) => w?.startsWith(`${ns}/`))) return false;
      if (pod) {
        const scoped = ns && !pod.includes("/") ? `${ns}/${pod}` : pod;
        if (!podMatches(scoped, src, facts.ips) && !podMatches(scoped, dst, facts.ips)) return false;
      }
      return true;
    };
    return {
      stream: (out) => {
        let dropped = 0;
        out.send({
          type: "start",
          node: agent.config.node,
          at: new Date().toISOString(),
          filter: { ...(pod ? { pod } : {}), ...(ns ? { namespace: ns } : {}) },
        } satisfies TapLine);
        const off = handle.onConnectionEvent((e) => {
          if (!matches(e)) return;
          const at = new Date().toISOString();
          // A client that stops reading loses events (and is told how many), it never grows our memory.
          if (dropped > 0 && out.send({ type: "dropped", count: dropped, at } satisfies TapLine)) dropped = 0;
          const line: TapLine =
            e.type === "request" ? { type: "request", at, request: e.request } : (({ type, ...rest }) => ({ type, at, ...rest }))(e);
          if (dropped > 0 || !out.send(line)) dropped++;
        });
        out.onClose(off);
      },
    };
  };
}

/** Registers /runtime, /workloads, /explain, /explain/inbound and /tap. */
export function registerDebugEndpoints(admin: AdminServer, agent: DebugAgent): void {
  admin.register("/runtime", runtime(agent, new CpuSampler()), { description: "the agent process (pid, CPU, memory) and its settings" });
  admin.register("/workloads", workloads(agent), {
    description: "workloads with enrolment (and why), capture and guard state; ?namespace=",
  });
  admin.register("/explain", explainHandler(agent), {
    description: "dry run of a connection from a local pod: ?src=<pod>&dst=<host:port>",
  });
  admin.register("/explain/inbound", inboundHandler(agent), {
    description: "the destination side's decision: ?kind=mesh|plaintext&sourceIdentity=&sourceIp=&target=&presentedIdentity=",
  });
  admin.register("/tap", tap(agent), { description: "live connection events (NDJSON stream); ?pod=&namespace=" });
}
