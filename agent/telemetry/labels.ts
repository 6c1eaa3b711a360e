/**
 * Istio's standard traffic labels, so dashboards and alerts written for Istio work on weft as they
 * are. Unknown values are "unknown", as Istio reports them.
 */
import type { Service, Workload } from "../../controller/api/model.js";

/** The label names of Istio's standard TCP and HTTP metrics. */
export const TRAFFIC_LABELS = [
  "reporter",
  "source_workload",
  "source_canonical_service",
  "source_canonical_revision",
  "source_workload_namespace",
  "source_principal",
  "source_app",
  "source_version",
  "source_cluster",
  "destination_service",
  "destination_service_namespace",
  "destination_service_name",
  "destination_workload",
  "destination_canonical_service",
  "destination_canonical_revision",
  "destination_workload_namespace",
  "destination_principal",
  "destination_app",
  "destination_version",
  "destination_cluster",
  "request_protocol",
  "response_flags",
  "connection_security_policy",
] as const;

/** One value per Istio traffic label. */
export type TrafficLabels = Record<(typeof TRAFFIC_LABELS)[number], string>;

/**
 * Response flags: ztunnel's for connections ("-" ok, DENY by policy, CONNECT failure upstream)
 * and Envoy's for requests: UO overflow (circuit breaker), UH no healthy upstream, UF upstream
 * connect failure, URX retries exhausted, UT upstream timeout, UC upstream connection
 * terminated, DC downstream closed, DI delay injected, FI fault abort, NR no route, RL rate
 * limited. Several are joined with ",".
 */
export type ResponseFlag =
  | "-"
  | "DENY"
  | "CONNECT"
  | "UO"
  | "UH"
  | "UF"
  | "URX"
  | "UT"
  | "UC"
  | "DC"
  | "DI"
  | "FI"
  | "NR"
  | "RL"
  | "DI,FI"
  | "DI,UT";

/** What the labels of one connection are built from. */
export interface LabelInput {
  reporter: "source" | "destination";
  source?: Workload;
  /** Authenticated source identity; only mTLS-derived identities are reported as principals. */
  sourcePrincipal?: string;
  destination?: Workload;
  service?: Service;
  mtls: boolean;
  responseFlags?: ResponseFlag;
  protocol?: "tcp" | "http" | "grpc";
  clusterId?: string;
}

const U = "unknown";

const cache = new Map<string, TrafficLabels>();
const CACHE_MAX = 8192;

/**
 * The label set of a connection, shared between connections with the same labels: they are
 * immutable, and one object per connection is ~0.5 KB that thousands of idle tunnels would hold.
 */
export function trafficLabels(i: LabelInput): TrafficLabels {
  const s = i.source;
  const d = i.destination;
  const key = [
    i.reporter,
    s?.uid,
    s?.workloadName,
    s?.canonicalName,
    s?.canonicalRevision,
    s?.namespace,
    i.sourcePrincipal,
    d?.uid,
    d?.workloadName,
    d?.canonicalName,
    d?.canonicalRevision,
    d?.namespace,
    d?.identity,
    i.service?.key,
    i.mtls,
    i.responseFlags,
    i.protocol,
    i.clusterId,
  ].join("|");
  let hit = cache.get(key);
  if (!hit) {
    if (cache.size >= CACHE_MAX) cache.clear();
    hit = Object.freeze(buildLabels(i));
    cache.set(key, hit);
  }
  return hit;
}

function buildLabels(i: LabelInput): TrafficLabels {
  const s = i.source;
  const d = i.destination;
  const cluster = i.clusterId ?? "Kubernetes";
  return {
    reporter: i.reporter,
    source_workload: s?.workloadName ?? U,
    source_canonical_service: s?.canonicalName ?? U,
    source_canonical_revision: s?.canonicalRevision ?? U,
    source_workload_namespace: s?.namespace ?? U,
    source_principal: i.sourcePrincipal ?? U,
    source_app: s?.canonicalName ?? U,
    source_version: s?.canonicalRevision ?? U,
    source_cluster: s ? cluster : U,
    destination_service: i.service?.hostname ?? U,
    destination_service_namespace: i.service?.namespace ?? U,
    destination_service_name: i.service?.name ?? U,
    destination_workload: d?.workloadName ?? U,
    destination_canonical_service: d?.canonicalName ?? U,
    destination_canonical_revision: d?.canonicalRevision ?? U,
    destination_workload_namespace: d?.namespace ?? U,
    destination_principal: d && i.mtls ? d.identity : U,
    destination_app: d?.canonicalName ?? U,
    destination_version: d?.canonicalRevision ?? U,
    destination_cluster: d ? cluster : U,
    request_protocol: i.protocol ?? "tcp",
    response_flags: i.responseFlags ?? "-",
    // Istio's values: the destination knows a plaintext connection is "none"; a source does not.
    connection_security_policy: i.mtls ? "mutual_tls" : i.reporter === "destination" ? "none" : "unknown",
  };
}
