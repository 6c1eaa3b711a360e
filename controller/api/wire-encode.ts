/**
 * Model values → weft.mesh.v1 message objects. The .proto mirrors the model field for field;
 * the only reshaping is optional label maps, which proto3 cannot mark optional and so travel
 * wrapped in a Labels message (absent wrapper = no selector, empty wrapper = empty selector).
 */
import type { AuthorizationPolicy, DestinationPolicy, PeerAuthentication, PolicyScope, RouteTable } from "./model.js";
import type { MeshConfig } from "./wire-types.js";

type Kind =
  | "MeshConfig"
  | "TrustBundle"
  | "Workload"
  | "Service"
  | "AuthorizationPolicy"
  | "PeerAuthentication"
  | "RequestAuthentication"
  | "RateLimitPolicy"
  | "DestinationPolicy"
  | "RouteTable";

/** Wraps an optional label map for the wire. */
function labels(l: Record<string, string> | undefined): { labels: Record<string, string> } | undefined {
  return l === undefined ? undefined : { labels: l };
}

function scope(s: PolicyScope): object {
  return { kind: s.kind, selector: labels(s.selector) };
}

/** The wire object for a model value of the given resource type. */
export function toWire(kind: Kind, value: unknown): object {
  switch (kind) {
    case "AuthorizationPolicy": {
      const p = value as AuthorizationPolicy;
      return { ...p, scope: scope(p.scope) };
    }
    case "RequestAuthentication":
    case "RateLimitPolicy":
    case "PeerAuthentication": {
      const p = value as PeerAuthentication;
      return { ...p, scope: scope(p.scope) };
    }
    case "MeshConfig": {
      const m = value as MeshConfig;
      return m.tracing ? { ...m, tracing: m.tracing.map((t) => ({ ...t, scope: scope(t.scope) })) } : m;
    }
    case "RouteTable": {
      const r = value as RouteTable;
      return {
        ...r,
        http: r.http.map((rule) => ({ ...rule, matches: rule.matches.map((m) => ({ ...m, sourceLabels: labels(m.sourceLabels) })) })),
        tcp: r.tcp.map((rule) => ({ ...rule, matches: rule.matches.map((m) => ({ ...m, sourceLabels: labels(m.sourceLabels) })) })),
      };
    }
    case "DestinationPolicy": {
      const d = value as DestinationPolicy;
      return { ...d, workloadSelector: labels(d.workloadSelector) };
    }
    default:
      return value as object;
  }
}
