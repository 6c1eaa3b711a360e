/**
 * Which policies apply to an edge: the AuthorizationPolicies and PeerAuthentications whose scope
 * covers the destination workload, the routes of the services it was addressed to, and the
 * DestinationRules of those services. Read from the agents' mesh state (each agent holds its
 * node's selection, so the union over agents covers every destination).
 */
import type { MeshSnapshotData } from "../../controller/api/model.js";
import type { GraphEdge } from "./graph-model.js";

/** One policy that applies, in words. */
export interface AppliedPolicy {
  kind: "AuthorizationPolicy" | "PeerAuthentication" | "VirtualService" | "HTTPRoute" | "DestinationRule";
  key: string;
  /** "DENY", "ALLOW", "STRICT", "routes"… */
  effect: string;
}

type Mesh = Pick<MeshSnapshotData, "workloads" | "authorizationPolicies" | "peerAuthentications" | "rootNamespace"> &
  Partial<Pick<MeshSnapshotData, "routes" | "destinationPolicies" | "services">>;

/** Merges several agents' mesh states (by key: each holds its node's selection). */
export function mergeMeshStates(states: readonly Mesh[]): Mesh {
  const uniq = <T>(lists: T[][], key: (t: T) => string): T[] => [...new Map(lists.flat().map((t) => [key(t), t])).values()];
  return {
    rootNamespace: states[0]?.rootNamespace ?? "weft-system",
    workloads: uniq(
      states.map((s) => s.workloads),
      (w) => w.uid,
    ),
    authorizationPolicies: uniq(
      states.map((s) => s.authorizationPolicies),
      (p) => p.key,
    ),
    peerAuthentications: uniq(
      states.map((s) => s.peerAuthentications),
      (p) => p.key,
    ),
    routes: uniq(
      states.map((s) => s.routes ?? []),
      (r) => r.key,
    ),
    destinationPolicies: uniq(
      states.map((s) => s.destinationPolicies ?? []),
      (d) => d.key,
    ),
    services: uniq(
      states.map((s) => s.services ?? []),
      (s) => s.key,
    ),
  };
}

function covers(
  scope: { kind: string; selector?: Record<string, string> },
  policyNs: string,
  w: { namespace: string; labels: Record<string, string> },
  root: string,
): boolean {
  const sel = scope.selector;
  const labelsMatch = !sel || Object.entries(sel).every(([k, v]) => w.labels[k] === v);
  if (scope.kind === "mesh" || policyNs === root) return labelsMatch;
  return policyNs === w.namespace && labelsMatch;
}

/** Policies that apply to an edge's destination and services. */
export function policiesFor(edge: GraphEdge, mesh: Mesh): AppliedPolicy[] {
  const out: AppliedPolicy[] = [];
  const [ns, name] = edge.destination.startsWith("svc:") ? ["", ""] : edge.destination.split("/");
  const pods = mesh.workloads.filter((w) => w.namespace === ns && w.workloadName === name);
  const applies = (p: { scope: { kind: string; selector?: Record<string, string> }; namespace: string }) =>
    pods.some((w) => covers(p.scope, p.namespace, w, mesh.rootNamespace));
  for (const p of mesh.authorizationPolicies) if (applies(p)) out.push({ kind: "AuthorizationPolicy", key: p.key, effect: p.action });
  for (const p of mesh.peerAuthentications) if (applies(p)) out.push({ kind: "PeerAuthentication", key: p.key, effect: p.mode });
  const serviceKeys = new Set((mesh.services ?? []).filter((s) => edge.services.includes(s.hostname)).map((s) => s.key));
  for (const r of mesh.routes ?? [])
    if (r.services.some((s) => serviceKeys.has(s))) out.push({ kind: r.kind, key: `${r.namespace}/${r.name}`, effect: "routes" });
  for (const d of mesh.destinationPolicies ?? [])
    if (edge.services.includes(d.host)) out.push({ kind: "DestinationRule", key: d.key, effect: "traffic policy" });
  return out;
}
