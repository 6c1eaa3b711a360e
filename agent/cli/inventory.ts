/**
 * `weft workloads`, `weft services`, `weft policies`: what this node's agent holds (istioctl
 * ztunnel-config's workloads/services/policies), with enrolment and the reason for it, capture and
 * guard state per local pod, and which of this node's pods each policy applies to.
 */
import type { Command } from "commander";
import { action, emit, parseFormat, table } from "../../common/cli-output.js";
import type { MeshSnapshotData, PolicyScope, RouteTable } from "../../controller/api/model.js";
import type { WorkloadInfo } from "../admin-debug.js";
import { MeshView } from "../state/view.js";
import { agentOptions, connectAgent } from "./agent-client.js";
import { list } from "./humanize.js";

/** One row of `weft policies`. */
export interface PolicyRow {
  kind: string;
  namespace: string;
  name: string;
  scope: string;
  detail: string;
  /** Local workloads ("ns/name") it applies to, or the services it routes. */
  appliesTo: string[];
}

function scopeText(scope: PolicyScope): string {
  const sel = scope.selector
    ? Object.entries(scope.selector)
        .map(([k, v]) => `${k}=${v}`)
        .join(",")
    : "";
  return scope.kind === "workload" ? sel : scope.kind === "mesh" ? (sel ? `mesh, ${sel}` : "mesh") : "namespace";
}

/** What an invalid policy's row says: it is enforced in its fail-closed form, and why. */
function invalidText(errors: readonly string[] | undefined): string {
  return errors?.length ? `; INVALID, enforced fail-closed: ${errors.join("; ")}` : "";
}

/** Every policy the agent holds, with what it applies to on this node. */
export function policyRows(data: MeshSnapshotData): PolicyRow[] {
  const view = new MeshView(data);
  const local = view.localWorkloads();
  const appliesTo = (p: { namespace: string; scope: PolicyScope }) =>
    local
      .filter((w) => view.appliesTo(p, w))
      .map((w) => `${w.namespace}/${w.name}`)
      .sort();
  const rows: PolicyRow[] = [];
  for (const p of data.authorizationPolicies)
    rows.push({
      kind: "AuthorizationPolicy",
      namespace: p.namespace,
      name: p.name,
      scope: scopeText(p.scope),
      detail: `${p.action}, ${p.rules.length} rule${p.rules.length === 1 ? "" : "s"}${p.action === "ALLOW" && p.rules.length === 0 ? " (allows nothing)" : ""}${p.dryRun ? " [dry-run: not enforced]" : ""}${invalidText(p.errors)}`,
      appliesTo: appliesTo(p),
    });
  for (const p of data.peerAuthentications) {
    const ports = Object.entries(p.portLevelMtls).map(([port, mode]) => `${port}:${mode}`);
    rows.push({
      kind: "PeerAuthentication",
      namespace: p.namespace,
      name: p.name,
      scope: scopeText(p.scope),
      detail: `mTLS ${p.mode}${ports.length ? ` (ports ${ports.join(", ")})` : ""}${invalidText(p.errors)}`,
      appliesTo: appliesTo(p),
    });
  }
  for (const r of data.routes ?? [])
    rows.push({
      kind: r.kind,
      namespace: r.namespace,
      name: r.name,
      scope: r.exportTo.includes("*") ? "all namespaces" : `from ${r.exportTo.join(",")}`,
      detail: `${r.http.length} http, ${r.tcp.length} tcp rule${r.http.length + r.tcp.length === 1 ? "" : "s"}${r.unresolvedHosts.length ? `; unknown hosts ${r.unresolvedHosts.join(",")}` : ""}${shadowText(r, data.routes ?? [])}`,
      appliesTo: r.services.map((s) => `service ${s}`),
    });
  for (const d of data.destinationPolicies ?? [])
    rows.push({
      kind: "DestinationRule",
      namespace: d.namespace,
      name: d.name,
      scope: d.workloadSelector ? `clients ${Object.entries(d.workloadSelector).map(([k, v]) => `${k}=${v}`)}` : "all clients",
      detail: `${d.subsets.length} subsets${d.trafficPolicy?.loadBalancer?.simple ? `, ${d.trafficPolicy.loadBalancer.simple}` : ""}`,
      appliesTo: [`service ${d.service ?? d.host}`],
    });
  for (const r of data.refused ?? [])
    rows.push({
      kind: r.kind,
      namespace: r.namespace,
      name: r.name,
      scope: "-",
      detail: `REFUSED (not applied): ${r.errors.join("; ")}`,
      appliesTo: [],
    });
  return rows.sort((a, b) => a.kind.localeCompare(b.kind) || a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
}

/**
 * One table routes a service for a client: the client namespace's own first, then an HTTPRoute
 * over a VirtualService (as Istio treats GAMMA routes), then the oldest. Says which tables win
 * over this one for its services, for clients in its own namespace.
 */
function shadowText(r: RouteTable, all: readonly RouteTable[]): string {
  const rank = (t: RouteTable) => [Number(t.namespace !== r.namespace), Number(t.kind !== "HTTPRoute"), t.createdAt, t.key] as const;
  const before = (a: RouteTable, b: RouteTable) => {
    const x = rank(a);
    const y = rank(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return (x[i] as number | string) < (y[i] as number | string);
    return false;
  };
  const winners = all.filter((t) => t !== r && t.services.some((s) => r.services.includes(s)) && before(t, r));
  return winners.length ? `; SHADOWED by ${winners.map((t) => t.key).join(", ")} (one table per service applies)` : "";
}

/** `weft workloads` as a table (exported for tests). */
export function renderWorkloads(rows: readonly WorkloadInfo[], node: string): string {
  if (rows.length === 0) return "no workloads";
  return table(
    ["NAMESPACE", "NAME", "IP", "NODE", "MESH", "CAPTURE", "MTLS", "WHY"],
    rows.map((w) => [
      w.namespace,
      w.name,
      w.addresses[0] ?? "-",
      w.node === node ? `${w.node} (this)` : w.node,
      w.enrolled ? "yes" : "no",
      w.capture?.state ?? "-",
      w.mtls?.mode ?? "-",
      w.capture?.error ? `${w.enrolmentReason}; capture failed: ${w.capture.error}` : w.enrolmentReason,
    ]),
  );
}

/** Registers `weft workloads`, `weft services` and `weft policies`. */
export function registerInventoryCommands(program: Command): void {
  agentOptions(
    program
      .command("workloads")
      .description("pods this node's agent knows: in the mesh or not and why (which label), capture and guard state, mTLS mode"),
  )
    .option("-n, --namespace <ns>", "only this namespace")
    .option("--local", "only pods of this node")
    .option("-o, --output <format>", "table, json or yaml", "table")
    .action(
      action(async (o) => {
        const format = parseFormat(o.output);
        const agent = await connectAgent(o);
        const q = o.namespace ? `?namespace=${encodeURIComponent(o.namespace)}` : "";
        const r = await agent.json<{ node: string; workloads: WorkloadInfo[] }>(`/workloads${q}`);
        const rows = o.local ? r.workloads.filter((w) => w.local) : r.workloads;
        emit(format, rows, () =>
          rows.length
            ? renderWorkloads(rows, r.node)
            : `no workloads${o.namespace ? ` in namespace ${o.namespace}` : ""}${o.local ? " on this node" : ""} in the state of agent ${r.node}`,
        );
      }),
    );

  agentOptions(
    program.command("services").description("services this node's agent knows: VIPs, ports, endpoints (ready/total, on this node)"),
  )
    .option("-n, --namespace <ns>", "only this namespace")
    .option("-o, --output <format>", "table, json or yaml", "table")
    .action(
      action(async (o) => {
        const format = parseFormat(o.output);
        const agent = await connectAgent(o);
        const data = await agent.json<MeshSnapshotData>("/config_dump");
        const local = new Set(data.workloads.filter((w) => w.node === data.nodeName).map((w) => w.uid));
        const services = data.services.filter((s) => !o.namespace || s.namespace === o.namespace);
        emit(format, services, () =>
          services.length === 0
            ? `no services${o.namespace ? ` in namespace ${o.namespace}` : ""}`
            : table(
                ["NAMESPACE", "NAME", "VIPS", "PORTS", "ENDPOINTS", "ON-THIS-NODE"],
                services.map((s) => [
                  s.namespace,
                  s.name,
                  list(s.vips),
                  list(
                    s.ports.map((p) => `${p.port}${p.targetPort !== p.port ? `->${p.targetPort}` : ""}/${p.appProtocol}`),
                    4,
                  ),
                  `${s.endpoints.filter((e) => e.ready).length}/${s.endpoints.length} ready`,
                  String(s.endpoints.filter((e) => local.has(e.workloadUid)).length),
                ]),
              ),
        );
      }),
    );

  agentOptions(
    program
      .command("policies")
      .description(
        "policies this node's agent holds (authorization, peer authentication, routes, destination rules) and what they apply to here",
      ),
  )
    .option("-n, --namespace <ns>", "only this namespace")
    .option("-o, --output <format>", "table, json or yaml", "table")
    .action(
      action(async (o) => {
        const format = parseFormat(o.output);
        const agent = await connectAgent(o);
        const data = await agent.json<MeshSnapshotData>("/config_dump");
        const rows = policyRows(data).filter((r) => !o.namespace || r.namespace === o.namespace);
        emit(format, rows, () =>
          rows.length === 0
            ? `no policies${o.namespace ? ` in namespace ${o.namespace}` : ""} in the state of agent ${data.nodeName} (it holds the policies that apply to its own pods, and every route)`
            : table(
                ["KIND", "NAMESPACE", "NAME", "SCOPE", "WHAT", "APPLIES-TO (THIS NODE)"],
                rows.map((r) => [r.kind, r.namespace, r.name, r.scope, r.detail, list(r.appliesTo, 4, "no pod here")]),
              ),
        );
      }),
    );
}
