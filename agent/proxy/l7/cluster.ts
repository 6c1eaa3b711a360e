/**
 * UpstreamCluster resolution: a service port (optionally a DestinationRule subset) → its ready
 * endpoints and resolved traffic policy. Resolved clusters are cached per MeshView (a snapshot
 * never changes), so the per-request cost is a map lookup; the subset's label filter runs once
 * per snapshot, never per request.
 */
import type {
  ConnectionPoolSettings,
  DestinationPolicy,
  Endpoint,
  LoadBalancerSettings,
  OutlierDetection,
  Service,
  ServicePort,
  TrafficPolicy,
  Workload,
} from "../../../controller/api/model.js";
import { labelsMatch, type MeshView } from "../../state/view.js";

/** The resolved traffic policy of a cluster (Istio precedence: subset over top level; port-level over whole). */
export interface ResolvedTrafficPolicy {
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
  /** Key ("<ns>/<name>") of the DestinationRule the policy came from. */
  destinationRule?: string;
}

/** A backend: the ready endpoints of one service port, optionally narrowed to a subset. */
export interface UpstreamCluster {
  /**
   * Stable across snapshots: "<ns>/<svc>:<port>" or "<ns>/<svc>:<port>|<subset>"; keys
   * per-cluster state (balancer, outlier, limits). Clients picking different DestinationRules
   * (workloadSelector) share the key but not `policy`.
   */
  key: string;
  service: Service;
  port: ServicePort;
  subset?: string;
  /** Ready endpoints whose workload carries the subset labels. */
  endpoints: readonly Endpoint[];
  policy: ResolvedTrafficPolicy;
}

/** A cluster, or why none could be resolved. */
export type ClusterResult = { ok: true; cluster: UpstreamCluster } | { ok: false; reason: string };

/** What to resolve: a service, the port asked for (if any), the request's port, a subset. */
export interface ClusterRequest {
  serviceKey: string;
  /** Port named by the destination; absent: the request's port, else the service's only port. */
  port?: number;
  /** The service port the request was sent to. */
  requestPort: number;
  subset?: string;
}

type Fields = Pick<TrafficPolicy, "loadBalancer" | "connectionPool" | "outlierDetection">;

/** One level of a policy at a port: a matching portLevel entry replaces the three fields, unset ones included (Istio). */
function atPort(p: TrafficPolicy, port: number): Fields {
  const pl = p.portLevel.find((x) => x.port === port);
  const src: Fields = pl ?? p;
  const out: Fields = {};
  if (src.loadBalancer) out.loadBalancer = src.loadBalancer;
  if (src.connectionPool) out.connectionPool = src.connectionPool;
  if (src.outlierDetection) out.outlierDetection = src.outlierDetection;
  return out;
}

/**
 * Istio's MergeTrafficPolicy: the rule's policy at the port, each field a subset sets overriding
 * it, and a subset portLevel entry for the port replacing all three fields.
 */
export function resolvePolicy(dr: DestinationPolicy | undefined, subset: string | undefined, port: number): ResolvedTrafficPolicy {
  if (!dr) return {};
  const out: ResolvedTrafficPolicy = dr.trafficPolicy ? atPort(dr.trafficPolicy, port) : {};
  const sub = subset !== undefined ? dr.subsets.find((s) => s.name === subset)?.trafficPolicy : undefined;
  if (sub) {
    if (sub.loadBalancer) out.loadBalancer = sub.loadBalancer;
    if (sub.connectionPool) out.connectionPool = sub.connectionPool;
    if (sub.outlierDetection) out.outlierDetection = sub.outlierDetection;
    if (sub.portLevel.some((x) => x.port === port)) {
      delete out.loadBalancer;
      delete out.connectionPool;
      delete out.outlierDetection;
      Object.assign(out, atPort(sub, port));
    }
  }
  out.destinationRule = dr.key;
  return out;
}

/** Picks the service port a destination means: its own, else the request's number, else the only one. */
export function resolvePort(service: Service, port: number | undefined, requestPort: number): ServicePort | string {
  if (port !== undefined) {
    return service.ports.find((p) => p.port === port) ?? `service ${service.key} has no port ${port}`;
  }
  const same = service.ports.find((p) => p.port === requestPort);
  if (same) return same;
  if (service.ports.length === 1) return service.ports[0] as ServicePort;
  return `service ${service.key} has no port ${requestPort} and several others; the route must name one`;
}

interface ViewCache {
  clusters: Map<string, ClusterResult>;
  /** The DestinationRule per (client workload, service); undefined results stored as null. */
  rules: WeakMap<Workload, Map<string, DestinationPolicy | null>>;
}

const caches = new WeakMap<MeshView, ViewCache>();

function cacheOf(view: MeshView): ViewCache {
  let c = caches.get(view);
  if (!c) {
    c = { clusters: new Map(), rules: new WeakMap() };
    caches.set(view, c);
  }
  return c;
}

/** The DestinationRule a client uses for a service (memoized per snapshot and client). */
export function destinationRuleFor(view: MeshView, serviceKey: string, client: Workload): DestinationPolicy | undefined {
  const c = cacheOf(view);
  let perClient = c.rules.get(client);
  if (!perClient) {
    perClient = new Map();
    c.rules.set(client, perClient);
  }
  let dr = perClient.get(serviceKey);
  if (dr === undefined) {
    dr = view.destinationPolicyFor(serviceKey, client) ?? null;
    perClient.set(serviceKey, dr);
  }
  return dr ?? undefined;
}

/** Resolves a cluster for a client; cached per snapshot, service, port, subset and DestinationRule. */
export function resolveCluster(view: MeshView, req: ClusterRequest, client: Workload): ClusterResult {
  const service = view.serviceByKey(req.serviceKey);
  if (!service) return { ok: false, reason: `service ${req.serviceKey} does not exist` };
  const port = resolvePort(service, req.port, req.requestPort);
  if (typeof port === "string") return { ok: false, reason: port };
  const dr = destinationRuleFor(view, req.serviceKey, client);
  const cacheKey = `${service.key}:${port.port}|${req.subset ?? ""}|${dr?.key ?? ""}`;
  const c = cacheOf(view);
  let hit = c.clusters.get(cacheKey);
  if (!hit) {
    hit = build(view, service, port, req.subset, dr);
    c.clusters.set(cacheKey, hit);
  }
  return hit;
}

function build(
  view: MeshView,
  service: Service,
  port: ServicePort,
  subset: string | undefined,
  dr: DestinationPolicy | undefined,
): ClusterResult {
  const base = `${service.key}:${port.port}`;
  let endpoints = service.endpoints.filter((e) => e.ready);
  if (subset !== undefined) {
    const def = dr?.subsets.find((s) => s.name === subset);
    if (!def) {
      const where = dr ? `DestinationRule ${dr.key}` : "no DestinationRule";
      return { ok: false, reason: `subset '${subset}' of service ${service.key} is not defined (${where})` };
    }
    endpoints = endpoints.filter((e) => {
      const w = view.workloadByUid(e.workloadUid);
      return w !== undefined && labelsMatch(def.labels, w.labels);
    });
  }
  const cluster: UpstreamCluster = {
    key: subset !== undefined ? `${base}|${subset}` : base,
    service,
    port,
    endpoints,
    policy: resolvePolicy(dr, subset, port.port),
  };
  if (subset !== undefined) cluster.subset = subset;
  return { ok: true, cluster };
}
