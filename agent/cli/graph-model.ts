/**
 * The service map from Istio's standard metrics (reporter="source"): nodes are workloads (or a
 * Service when the destination workload is unknown), grouped by namespace; an edge is one
 * source workload → destination pair with its request rate, error rate, latency quantiles,
 * whether mTLS carried it, and whether policy denied it.
 */
import type { RateSample } from "./graph-samples.js";

/** A node of the map. */
export interface GraphNode {
  /** "<namespace>/<workload>", or "svc:<hostname>" for a destination known only as a Service. */
  id: string;
  kind: "workload" | "service" | "unknown";
  namespace: string;
  name: string;
}

/** An edge of the map. */
export interface GraphEdge {
  id: string;
  source: string;
  destination: string;
  /** Destination Service hostname(s) the traffic was addressed to. */
  services: string[];
  protocol: "http" | "grpc" | "tcp";
  /** Requests (HTTP) or connections (TCP) per second. */
  rps: number;
  /** Share of requests answered 5xx (or gRPC error), or of connections that failed. */
  errorRate: number;
  /** Median and 99th percentile request latency (HTTP only), from the histogram. */
  p50Ms?: number;
  p99Ms?: number;
  /** mutual_tls on every series, none, or some. */
  mtls: "mutual_tls" | "none" | "partial";
  /** Requests/connections denied by policy per second (response_flags DENY). */
  deniedRate: number;
  /** Any traffic at all was denied (since the agents started). */
  denied: boolean;
  /** Bytes per second both ways (TCP byte counters). */
  bytesPerSecond: number;
  /** Requests/connections since the agents started. */
  total: number;
}

/** The whole map. */
export interface Graph {
  generatedAt: string;
  source: "agents" | "prometheus";
  windowSeconds: number;
  nodes: GraphNode[];
  edges: GraphEdge[];
}

const U = "unknown";

function srcNode(l: Record<string, string>): GraphNode {
  const ns = l.source_workload_namespace ?? U;
  const name = l.source_workload ?? U;
  return { id: `${ns}/${name}`, kind: name === U ? "unknown" : "workload", namespace: ns, name };
}

function dstNode(l: Record<string, string>): GraphNode {
  const name = l.destination_workload ?? U;
  if (name !== U) {
    const ns = l.destination_workload_namespace ?? U;
    return { id: `${ns}/${name}`, kind: "workload", namespace: ns, name };
  }
  const host = l.destination_service ?? U;
  if (host === U) return { id: `${U}/${U}`, kind: "unknown", namespace: U, name: U };
  return { id: `svc:${host}`, kind: "service", namespace: l.destination_service_namespace ?? U, name: l.destination_service_name ?? host };
}

interface Counts {
  rate: number;
  total: number;
  errors: number;
  deniedRate: number;
}

interface Acc {
  edge: GraphEdge;
  http: Counts;
  tcp: Counts;
  mtlsSeries: number;
  plainSeries: number;
  buckets: Map<number, number>;
  isHttp: boolean;
}

/** Quantile from cumulative bucket rates, interpolating inside the bucket (as histogram_quantile). */
export function bucketQuantile(q: number, buckets: ReadonlyMap<number, number>): number | undefined {
  const les = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Number.POSITIVE_INFINITY) ?? buckets.get(les[les.length - 1] as number) ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const le of les) {
    const count = buckets.get(le) as number;
    if (count >= rank) {
      if (le === Number.POSITIVE_INFINITY) return prevLe;
      const inBucket = count - prevCount;
      return inBucket > 0 ? prevLe + ((le - prevLe) * (rank - prevCount)) / inBucket : le;
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

function isError(l: Record<string, string>): boolean {
  const code = Number(l.response_code);
  if (Number.isFinite(code) && code >= 500) return true;
  if (l.grpc_response_status && l.grpc_response_status !== "0" && l.request_protocol === "grpc") return true;
  return l.response_flags !== undefined && l.response_flags !== "-" && l.response_flags !== "DENY";
}

/** Builds the map from rate samples (source reporter only: each call counted once). */
export function buildGraph(samples: readonly RateSample[], source: Graph["source"], windowSeconds: number, now = new Date()): Graph {
  const nodes = new Map<string, GraphNode>();
  const acc = new Map<string, Acc>();
  const edgeOf = (l: Record<string, string>): Acc => {
    const s = srcNode(l);
    const d = dstNode(l);
    nodes.set(s.id, s);
    nodes.set(d.id, d);
    const id = `${s.id}->${d.id}`;
    let a = acc.get(id);
    if (!a) {
      a = {
        edge: {
          id,
          source: s.id,
          destination: d.id,
          services: [],
          protocol: "tcp",
          rps: 0,
          errorRate: 0,
          mtls: "none",
          deniedRate: 0,
          denied: false,
          bytesPerSecond: 0,
          total: 0,
        },
        http: { rate: 0, total: 0, errors: 0, deniedRate: 0 },
        tcp: { rate: 0, total: 0, errors: 0, deniedRate: 0 },
        mtlsSeries: 0,
        plainSeries: 0,
        buckets: new Map(),
        isHttp: false,
      };
      acc.set(id, a);
    }
    const svc = l.destination_service;
    if (svc && svc !== U && !a.edge.services.includes(svc)) a.edge.services.push(svc);
    if (l.connection_security_policy === "mutual_tls") a.mtlsSeries++;
    else a.plainSeries++;
    return a;
  };
  for (const s of samples) {
    if (s.labels.reporter !== "source") continue;
    const l = s.labels;
    if (s.name === "istio_requests_total") {
      const a = edgeOf(l);
      a.isHttp = true;
      a.edge.protocol = l.request_protocol === "grpc" ? "grpc" : a.edge.protocol === "grpc" ? "grpc" : "http";
      count(a.http, s, isError(l));
      if (l.response_flags === "DENY" && s.value > 0) a.edge.denied = true;
    } else if (s.name === "istio_request_duration_milliseconds_bucket") {
      const a = edgeOf(l);
      const le = l.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(l.le);
      a.buckets.set(le, (a.buckets.get(le) ?? 0) + s.rate);
    } else if (s.name === "istio_tcp_connections_opened_total") {
      const a = edgeOf(l);
      count(a.tcp, s, l.response_flags !== undefined && l.response_flags !== "-" && l.response_flags !== "DENY");
      if (l.response_flags === "DENY" && s.value > 0) a.edge.denied = true;
    } else if (s.name === "istio_tcp_sent_bytes_total" || s.name === "istio_tcp_received_bytes_total") {
      edgeOf(l).edge.bytesPerSecond += s.rate;
    }
  }
  const edges: GraphEdge[] = [];
  for (const a of acc.values()) {
    const e = a.edge;
    // An HTTP edge counts requests; its connections are transport detail.
    const c = a.isHttp ? a.http : a.tcp;
    e.rps = c.rate;
    e.total = c.total;
    e.deniedRate = c.deniedRate;
    if (e.total === 0 && e.rps === 0 && e.bytesPerSecond === 0) continue;
    e.errorRate = e.rps > 0 ? Math.min(1, c.errors / e.rps) : 0;
    e.mtls = a.plainSeries === 0 ? "mutual_tls" : a.mtlsSeries === 0 ? "none" : "partial";
    const p50 = bucketQuantile(0.5, a.buckets);
    const p99 = bucketQuantile(0.99, a.buckets);
    if (p50 !== undefined) e.p50Ms = round(p50);
    if (p99 !== undefined) e.p99Ms = round(p99);
    e.rps = round(e.rps);
    e.deniedRate = round(e.deniedRate);
    e.errorRate = round(e.errorRate, 4);
    e.bytesPerSecond = Math.round(e.bytesPerSecond);
    e.services.sort();
    edges.push(e);
  }
  // The source proxy counts a routed HTTP call's connection against the Service (the request picks
  // the workload later): when the same source has request edges for that Service, it is transport.
  const routed = new Set(edges.filter((e) => e.protocol !== "tcp").flatMap((e) => e.services.map((h) => `${e.source}|svc:${h}`)));
  edges.splice(0, edges.length, ...edges.filter((e) => !(e.protocol === "tcp" && routed.has(`${e.source}|${e.destination}`))));
  edges.sort((x, y) => x.id.localeCompare(y.id));
  const used = new Set(edges.flatMap((e) => [e.source, e.destination]));
  return {
    generatedAt: now.toISOString(),
    source,
    windowSeconds,
    nodes: [...nodes.values()].filter((n) => used.has(n.id)).sort((x, y) => x.id.localeCompare(y.id)),
    edges,
  };
}

function count(c: Counts, s: RateSample, error: boolean): void {
  c.rate += s.rate;
  c.total += s.value;
  if (error) c.errors += s.rate;
  if (s.labels.response_flags === "DENY") c.deniedRate += s.rate;
}

function round(v: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
