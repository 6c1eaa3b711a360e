/** Decoded RouteTable and DestinationPolicy messages → validated model values. */
import type {
  ConnectionPoolSettings,
  DestinationPolicy,
  FaultInjection,
  HeaderMatch,
  HeaderOperations,
  HeaderRewrite,
  HttpMatch,
  HttpRedirect,
  HttpRewrite,
  HttpRouteRule,
  LoadBalancerSettings,
  MirrorPolicy,
  OutlierDetection,
  PortTrafficPolicy,
  RetryPolicy,
  RouteDestination,
  RouteTable,
  StringMatch,
  Subset,
  TcpRouteRule,
  TrafficPolicy,
} from "./model.js";
import {
  bool,
  checkCidr,
  checkRegex,
  compact,
  fail,
  list,
  num,
  oneOf,
  optBool,
  optLabels,
  optMsg,
  optNum,
  optOneOf,
  optStr,
  type Rec,
  rec,
  str,
  strList,
  strMap,
} from "./wire-check.js";

const U32 = 0xffffffff;

function stringMatch(o: Rec, path: string): StringMatch {
  const kind = oneOf(o, "kind", path, ["exact", "prefix", "regex", "pathPrefix"] as const);
  const value = str(o, "value", path);
  if (kind === "regex") checkRegex(value, `${path}.value`);
  return { kind, value };
}

function headerMatch(o: Rec, path: string): HeaderMatch {
  return compact({ name: str(o, "name", path, true), match: optMsg(o, "match", path, stringMatch), invert: bool(o, "invert", path) });
}

function httpMatch(o: Rec, path: string): HttpMatch {
  return compact({
    name: optStr(o, "name", path),
    path: optMsg(o, "path", path, stringMatch),
    ignorePathCase: bool(o, "ignorePathCase", path),
    method: optMsg(o, "method", path, stringMatch),
    authority: optMsg(o, "authority", path, stringMatch),
    scheme: optMsg(o, "scheme", path, stringMatch),
    headers: list(o, "headers", path, headerMatch),
    queryParams: list(o, "queryParams", path, (q, p) => ({
      name: str(q, "name", p, true),
      match: stringMatch(rec(q.match, `${p}.match`), `${p}.match`),
    })),
    port: optNum(o, "port", path, 1, 65535),
    sourceLabels: optLabels(o, "sourceLabels", path),
    sourceNamespace: optStr(o, "sourceNamespace", path),
  });
}

function headerOps(o: Rec, path: string): HeaderOperations {
  return { set: strMap(o, "set", path), add: strMap(o, "add", path), remove: strList(o, "remove", path) };
}

function headerRewrite(o: Rec, path: string): HeaderRewrite {
  return compact({ request: optMsg(o, "request", path, headerOps), response: optMsg(o, "response", path, headerOps) });
}

function destination(o: Rec, path: string): RouteDestination {
  return compact({
    host: str(o, "host", path, true),
    service: optStr(o, "service", path),
    port: optNum(o, "port", path, 1, 65535),
    subset: optStr(o, "subset", path),
    weight: num(o, "weight", path, 0, 2 ** 31),
    headers: optMsg(o, "headers", path, headerRewrite),
  });
}

function retries(o: Rec, path: string): RetryPolicy {
  return compact({
    attempts: num(o, "attempts", path, 0, 1000),
    perTryTimeoutMs: optNum(o, "perTryTimeoutMs", path, 0, U32),
    retryOn: strList(o, "retryOn", path),
  });
}

function fault(o: Rec, path: string): FaultInjection {
  return compact({
    delay: optMsg(o, "delay", path, (d, p) => ({
      fixedDelayMs: num(d, "fixedDelayMs", p, 0, U32),
      percentage: num(d, "percentage", p, 0, 100),
    })),
    abort: optMsg(o, "abort", path, (a, p) => {
      const r = compact({
        httpStatus: optNum(a, "httpStatus", p, 200, 599),
        grpcStatus: optStr(a, "grpcStatus", p),
        percentage: num(a, "percentage", p, 0, 100),
      });
      if (r.httpStatus === undefined && r.grpcStatus === undefined) fail(p, "an abort needs httpStatus or grpcStatus");
      return r;
    }),
  });
}

function redirect(o: Rec, path: string): HttpRedirect {
  return compact({
    scheme: optStr(o, "scheme", path),
    authority: optStr(o, "authority", path),
    port: optNum(o, "port", path, 1, 65535),
    path: optStr(o, "path", path),
    pathPrefix: optStr(o, "pathPrefix", path),
    statusCode: num(o, "statusCode", path, 300, 399),
  });
}

function rewrite(o: Rec, path: string): HttpRewrite {
  const r = compact({
    authority: optStr(o, "authority", path),
    path: optStr(o, "path", path),
    pathPrefix: optStr(o, "pathPrefix", path),
    pathRegex: optMsg(o, "pathRegex", path, (x, p) => {
      const pattern = str(x, "pattern", p, true);
      checkRegex(pattern, `${p}.pattern`);
      return { pattern, substitution: str(x, "substitution", p) };
    }),
  });
  if ([r.path, r.pathPrefix, r.pathRegex].filter((v) => v !== undefined).length > 1)
    fail(path, "at most one of path, pathPrefix, pathRegex");
  return r;
}

function httpRule(o: Rec, path: string): HttpRouteRule {
  const rule: HttpRouteRule = compact({
    name: optStr(o, "name", path),
    matches: list(o, "matches", path, httpMatch),
    destinations: list(o, "destinations", path, destination),
    redirect: optMsg(o, "redirect", path, redirect),
    directResponse: optMsg(o, "directResponse", path, (d, p) =>
      compact({ status: num(d, "status", p, 200, 599), body: optStr(d, "body", p) }),
    ),
    rewrite: optMsg(o, "rewrite", path, rewrite),
    headers: optMsg(o, "headers", path, headerRewrite),
    timeoutMs: optNum(o, "timeoutMs", path, 0, U32),
    retries: optMsg(o, "retries", path, retries),
    fault: optMsg(o, "fault", path, fault),
    mirrors: list(
      o,
      "mirrors",
      path,
      (m, p): MirrorPolicy => ({
        destination: destination(rec(m.destination, `${p}.destination`), `${p}.destination`),
        percentage: num(m, "percentage", p, 0, 100),
      }),
    ),
  });
  const actions = [rule.destinations.length > 0, rule.redirect !== undefined, rule.directResponse !== undefined].filter(Boolean).length;
  if (actions !== 1) fail(path, "a rule needs exactly one of destinations, redirect, directResponse");
  return rule;
}

function tcpRule(o: Rec, path: string): TcpRouteRule {
  const rule: TcpRouteRule = {
    matches: list(o, "matches", path, (m, p) =>
      compact({
        port: optNum(m, "port", p, 1, 65535),
        sourceLabels: optLabels(m, "sourceLabels", p),
        sourceNamespace: optStr(m, "sourceNamespace", p),
        destinationSubnets: ((s) => (s.length ? s : undefined))(strList(m, "destinationSubnets", p, checkCidr)),
      }),
    ),
    destinations: list(o, "destinations", path, destination),
  };
  if (rule.destinations.length === 0) fail(path, "a TCP rule needs at least one destination");
  return rule;
}

/** A RouteTable message as a validated model value. */
export function routeTableFromWire(o: Rec): RouteTable {
  const r: RouteTable = {
    key: str(o, "key", "", true),
    kind: oneOf(o, "kind", "", ["VirtualService", "HTTPRoute"] as const),
    name: str(o, "name", "", true),
    namespace: str(o, "namespace", "", true),
    services: strList(o, "services", ""),
    unresolvedHosts: strList(o, "unresolvedHosts", ""),
    exportTo: strList(o, "exportTo", ""),
    http: list(o, "http", "", httpRule),
    tcp: list(o, "tcp", "", tcpRule),
    createdAt: str(o, "createdAt", ""),
  };
  if (r.key !== `${r.kind}/${r.namespace}/${r.name}`) fail("key", `'${r.key}' is not '${r.kind}/${r.namespace}/${r.name}'`);
  return r;
}

function loadBalancer(o: Rec, path: string): LoadBalancerSettings {
  const lb = compact({
    simple: optOneOf(o, "simple", path, ["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "PASSTHROUGH", "UNSPECIFIED"] as const),
    consistentHash: optMsg(o, "consistentHash", path, (c, p) => {
      const h = compact({
        header: optStr(c, "header", p),
        cookie: optMsg(c, "cookie", p, (k, kp) =>
          compact({ name: str(k, "name", kp, true), path: optStr(k, "path", kp), ttlMs: optNum(k, "ttlMs", kp, 0, U32) }),
        ),
        sourceIp: optBool(c, "sourceIp", p),
        queryParameter: optStr(c, "queryParameter", p),
      });
      if (Object.keys(h).length !== 1) fail(p, "exactly one of header, cookie, sourceIp, queryParameter");
      return h;
    }),
    warmupDurationMs: optNum(o, "warmupDurationMs", path, 0, U32),
  });
  if (lb.simple !== undefined && lb.consistentHash !== undefined) fail(path, "simple and consistentHash are exclusive");
  return lb;
}

function connectionPool(o: Rec, path: string): ConnectionPoolSettings {
  return compact({
    tcp: optMsg(o, "tcp", path, (t, p) =>
      compact({
        maxConnections: optNum(t, "maxConnections", p, 0, U32),
        connectTimeoutMs: optNum(t, "connectTimeoutMs", p, 0, U32),
        idleTimeoutMs: optNum(t, "idleTimeoutMs", p, 0, U32),
      }),
    ),
    http: optMsg(o, "http", path, (h, p) =>
      compact({
        http1MaxPendingRequests: optNum(h, "http1MaxPendingRequests", p, 0, U32),
        http2MaxRequests: optNum(h, "http2MaxRequests", p, 0, U32),
        maxRequestsPerConnection: optNum(h, "maxRequestsPerConnection", p, 0, U32),
        maxRetries: optNum(h, "maxRetries", p, 0, U32),
        idleTimeoutMs: optNum(h, "idleTimeoutMs", p, 0, U32),
        maxConcurrentStreams: optNum(h, "maxConcurrentStreams", p, 0, U32),
      }),
    ),
  });
}

function outlier(o: Rec, path: string): OutlierDetection {
  return compact({
    consecutive5xxErrors: optNum(o, "consecutive5xxErrors", path, 0, U32),
    consecutiveGatewayErrors: optNum(o, "consecutiveGatewayErrors", path, 0, U32),
    consecutiveLocalOriginFailures: optNum(o, "consecutiveLocalOriginFailures", path, 0, U32),
    intervalMs: optNum(o, "intervalMs", path, 1, U32),
    baseEjectionTimeMs: optNum(o, "baseEjectionTimeMs", path, 1, U32),
    maxEjectionPercent: optNum(o, "maxEjectionPercent", path, 0, 100),
    minHealthPercent: optNum(o, "minHealthPercent", path, 0, 100),
  });
}

function portPolicy(o: Rec, path: string): PortTrafficPolicy {
  return compact({
    port: num(o, "port", path, 1, 65535),
    loadBalancer: optMsg(o, "loadBalancer", path, loadBalancer),
    connectionPool: optMsg(o, "connectionPool", path, connectionPool),
    outlierDetection: optMsg(o, "outlierDetection", path, outlier),
  });
}

function trafficPolicy(o: Rec, path: string): TrafficPolicy {
  return compact({
    loadBalancer: optMsg(o, "loadBalancer", path, loadBalancer),
    connectionPool: optMsg(o, "connectionPool", path, connectionPool),
    outlierDetection: optMsg(o, "outlierDetection", path, outlier),
    portLevel: list(o, "portLevel", path, portPolicy),
  });
}

/** A DestinationPolicy message as a validated model value. */
export function destinationPolicyFromWire(o: Rec): DestinationPolicy {
  const d: DestinationPolicy = compact({
    key: str(o, "key", "", true),
    name: str(o, "name", "", true),
    namespace: str(o, "namespace", "", true),
    host: str(o, "host", "", true),
    service: optStr(o, "service", ""),
    exportTo: strList(o, "exportTo", ""),
    workloadSelector: optLabels(o, "workloadSelector", ""),
    trafficPolicy: optMsg(o, "trafficPolicy", "", trafficPolicy),
    subsets: list(
      o,
      "subsets",
      "",
      (s, p): Subset =>
        compact({
          name: str(s, "name", p, true),
          labels: strMap(s, "labels", p),
          trafficPolicy: optMsg(s, "trafficPolicy", p, trafficPolicy),
        }),
    ),
    createdAt: str(o, "createdAt", ""),
  });
  if (d.key !== `${d.namespace}/${d.name}`) fail("key", `'${d.key}' is not '${d.namespace}/${d.name}'`);
  const names = new Set<string>();
  for (const s of d.subsets) {
    if (names.has(s.name)) fail("subsets", `subset '${s.name}' is defined twice`);
    names.add(s.name);
  }
  return d;
}
