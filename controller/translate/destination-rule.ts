/** networking.istio.io DestinationRule → DestinationPolicy (load balancing, pools, outlier detection, subsets). */
import type { KubeObject } from "../api/kube-types.js";
import type {
  ConnectionPoolSettings,
  DestinationPolicy,
  LoadBalancerSettings,
  OutlierDetection,
  PortTrafficPolicy,
  TrafficPolicy,
} from "../api/model.js";
import { durationField, Fields, InvalidField } from "./fields.js";
import { exportTo, type ServiceIndex } from "./hosts.js";
import { type Diagnostics, refOf } from "./types.js";

const SIMPLE = ["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "PASSTHROUGH", "UNSPECIFIED", "LEAST_CONN"] as const;

function loadBalancer(f: Fields): LoadBalancerSettings {
  const lb: LoadBalancerSettings = {};
  const simple = f.str("simple");
  if (simple !== undefined) {
    if (!(SIMPLE as readonly string[]).includes(simple))
      throw new InvalidField(f.at("simple"), `'${simple}' is not one of ${SIMPLE.join(", ")}`);
    // LEAST_CONN is Istio's deprecated spelling of LEAST_REQUEST.
    lb.simple = simple === "LEAST_CONN" ? "LEAST_REQUEST" : (simple as LoadBalancerSettings["simple"]);
  }
  const ch = f.obj("consistentHash");
  if (ch) {
    const hash: NonNullable<LoadBalancerSettings["consistentHash"]> = {};
    const header = ch.str("httpHeaderName");
    if (header) hash.header = header.toLowerCase();
    const cookie = ch.obj("httpCookie");
    if (cookie) {
      hash.cookie = { name: cookie.reqStr("name") };
      const path = cookie.str("path");
      if (path) hash.cookie.path = path;
      const ttl = durationField(cookie, "ttl");
      if (ttl !== undefined) hash.cookie.ttlMs = ttl;
      cookie.unsupported("attributes");
      cookie.finish();
    }
    const src = ch.bool("useSourceIp");
    if (src) hash.sourceIp = true;
    const qp = ch.str("httpQueryParameterName");
    if (qp) hash.queryParameter = qp;
    if (Object.keys(hash).length !== 1)
      throw new InvalidField(ch.path, "needs exactly one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName");
    ch.accept("ringHash", "maglev", "minimumRingSize"); // the hash ring's shape: an implementation detail
    ch.finish();
    if (lb.simple !== undefined) throw new InvalidField(f.path, "simple and consistentHash are exclusive");
    lb.consistentHash = hash;
  }
  const warmup = durationField(f, "warmupDurationSecs");
  if (warmup !== undefined) lb.warmupDurationMs = warmup;
  f.unsupported("localityLbSetting", "(locality load balancing) is not supported: endpoints are balanced regardless of locality");
  f.unsupported("warmup");
  f.finish();
  return lb;
}

function connectionPool(f: Fields): ConnectionPoolSettings {
  const cp: ConnectionPoolSettings = {};
  const tcp = f.obj("tcp");
  if (tcp) {
    cp.tcp = {};
    const max = tcp.int("maxConnections", 0);
    if (max !== undefined) cp.tcp.maxConnections = max;
    const ct = durationField(tcp, "connectTimeout");
    if (ct !== undefined) cp.tcp.connectTimeoutMs = ct;
    const idle = durationField(tcp, "idleTimeout");
    if (idle !== undefined) cp.tcp.idleTimeoutMs = idle;
    tcp.unsupported("tcpKeepalive");
    tcp.unsupported("maxConnectionDuration");
    tcp.finish();
  }
  const http = f.obj("http");
  if (http) {
    cp.http = {};
    for (const key of [
      "http1MaxPendingRequests",
      "http2MaxRequests",
      "maxRequestsPerConnection",
      "maxRetries",
      "maxConcurrentStreams",
    ] as const) {
      const v = http.int(key, 0);
      if (v !== undefined) cp.http[key] = v;
    }
    const idle = durationField(http, "idleTimeout");
    if (idle !== undefined) cp.http.idleTimeoutMs = idle;
    http.unsupported("h2UpgradePolicy");
    http.unsupported("useClientProtocol");
    http.finish();
  }
  f.finish();
  return cp;
}

function outlier(f: Fields): OutlierDetection {
  const o: OutlierDetection = {};
  for (const key of ["consecutive5xxErrors", "consecutiveGatewayErrors", "consecutiveLocalOriginFailures"] as const) {
    const v = f.int(key, 0);
    if (v !== undefined) o[key] = v;
  }
  const interval = durationField(f, "interval");
  if (interval !== undefined) o.intervalMs = interval;
  const base = durationField(f, "baseEjectionTime");
  if (base !== undefined) o.baseEjectionTimeMs = base;
  const maxPct = f.int("maxEjectionPercent", 0, 100);
  if (maxPct !== undefined) o.maxEjectionPercent = maxPct;
  const minHealth = f.int("minHealthPercent", 0, 100);
  if (minHealth !== undefined) o.minHealthPercent = minHealth;
  f.unsupported("consecutiveErrors", "is deprecated in Istio and not supported; use consecutive5xxErrors");
  f.unsupported("splitExternalLocalOriginErrors");
  f.finish();
  return o;
}

function tls(f: Fields | undefined, warn: (p: string, n: string) => void): void {
  if (!f) return;
  const mode = f.str("mode");
  // Mesh traffic is already mutual TLS (HBONE); only ISTIO_MUTUAL describes that.
  if (mode !== undefined && mode !== "ISTIO_MUTUAL")
    warn(f.at("mode"), `${mode} (origination of TLS to the destination) is not supported; mesh traffic uses weft's mTLS`);
  f.accept(
    "mode",
    "sni",
    "subjectAltNames",
    "insecureSkipVerify",
    "clientCertificate",
    "privateKey",
    "caCertificates",
    "credentialName",
    "caCrl",
  );
}

function portPolicy(f: Fields, warn: (p: string, n: string) => void): PortTrafficPolicy {
  const port = f.obj("port");
  const number = port?.int("number", 1, 65535);
  if (number === undefined) throw new InvalidField(f.at("port.number"), "is required");
  port?.finish();
  const p: PortTrafficPolicy = { port: number };
  const lb = f.obj("loadBalancer");
  if (lb) p.loadBalancer = loadBalancer(lb);
  const cp = f.obj("connectionPool");
  if (cp) p.connectionPool = connectionPool(cp);
  const od = f.obj("outlierDetection");
  if (od) p.outlierDetection = outlier(od);
  tls(f.obj("tls"), warn);
  f.finish();
  return p;
}

function trafficPolicy(f: Fields, warn: (p: string, n: string) => void): TrafficPolicy {
  const tp: TrafficPolicy = { portLevel: f.list("portLevelSettings").map((p) => portPolicy(p, warn)) };
  const lb = f.obj("loadBalancer");
  if (lb) tp.loadBalancer = loadBalancer(lb);
  const cp = f.obj("connectionPool");
  if (cp) tp.connectionPool = connectionPool(cp);
  const od = f.obj("outlierDetection");
  if (od) tp.outlierDetection = outlier(od);
  tls(f.obj("tls"), warn);
  f.unsupported("tunnel");
  f.unsupported("proxyProtocol");
  f.unsupported("retryBudget");
  f.finish();
  return tp;
}

/** Translates one DestinationRule; null when invalid (reported). */
export function translateDestinationRule(obj: KubeObject, services: ServiceIndex, diags: Diagnostics): DestinationPolicy | null {
  const ref = refOf(obj);
  const warn = (path: string, note: string) => diags.warn(ref, `${path} ${note}`);
  const ns = obj.metadata.namespace ?? "default";
  try {
    const spec = Fields.of(obj.spec ?? {}, "spec", warn);
    const host = spec.reqStr("host");
    const svc = host.startsWith("*") ? undefined : services.resolve(host, ns);
    if (!svc) warn("spec.host", `'${host}' is not a known Service; the policy applies to nothing until it exists`);
    const d: DestinationPolicy = {
      key: `${ns}/${obj.metadata.name}`,
      name: obj.metadata.name,
      namespace: ns,
      host: svc?.hostname ?? host,
      exportTo: exportTo(spec.strList("exportTo"), ns),
      subsets: [],
      createdAt: obj.metadata.creationTimestamp ?? "",
    };
    if (svc) d.service = svc.key;
    const sel = spec.obj("workloadSelector");
    if (sel) {
      const labels = sel.map("matchLabels");
      if (labels && Object.keys(labels).length) d.workloadSelector = labels;
      sel.finish();
    }
    const tp = spec.obj("trafficPolicy");
    if (tp) d.trafficPolicy = trafficPolicy(tp, warn);
    const names = new Set<string>();
    for (const s of spec.list("subsets")) {
      const name = s.reqStr("name");
      if (names.has(name)) throw new InvalidField(s.at("name"), `subset '${name}' is defined twice`);
      names.add(name);
      const subset: DestinationPolicy["subsets"][number] = { name, labels: s.map("labels") ?? {} };
      const stp = s.obj("trafficPolicy");
      if (stp) subset.trafficPolicy = trafficPolicy(stp, warn);
      s.finish();
      d.subsets.push(subset);
    }
    spec.finish();
    return d;
  } catch (e) {
    if (!(e instanceof InvalidField)) throw e;
    diags.error(ref, `invalid: ${e.message}; DestinationRule skipped`);
    return null;
  }
}
