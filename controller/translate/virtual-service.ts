/** networking.istio.io VirtualService → RouteTable (mesh routing; gateway-only services are not the mesh's). */

import { errorMessage } from "../../common/errors.js";
import type { KubeObject } from "../api/kube-types.js";
import type {
  FaultInjection,
  HeaderMatch,
  HeaderOperations,
  HeaderRewrite,
  HttpMatch,
  HttpRouteRule,
  MirrorPolicy,
  RouteDestination,
  RouteTable,
  StringMatch,
  TcpRouteRule,
} from "../api/model.js";
import { durationField, Fields, InvalidField } from "./fields.js";
import { exportTo, type ServiceIndex } from "./hosts.js";
import { type Diagnostics, refOf } from "./types.js";

/** Istio StringMatch {exact|prefix|regex} (exactly one). */
export function istioStringMatch(f: Fields): StringMatch {
  const kinds = (["exact", "prefix", "regex"] as const).filter((k) => f.has(k));
  if (kinds.length !== 1) throw new InvalidField(f.path, "needs exactly one of exact, prefix, regex");
  const kind = kinds[0] as StringMatch["kind"];
  const value = f.str(kind) as string;
  if (kind === "regex") checkRegex(value, f.at("regex"));
  f.finish();
  return { kind, value };
}

/**
 * What RE2 (the regex engine of Istio and Envoy) refuses though JavaScript accepts it:
 * lookaround and backreferences. A route that works here must mean the same under Istio.
 */
function re2Refusal(value: string): string | undefined {
  let inClass = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === "\\") {
      const n = value[i + 1] ?? "";
      if (!inClass && /[1-9]/.test(n)) return `backreference \\${n}`;
      if (n === "k" && value[i + 2] === "<") return "named backreference \\k<...>";
      i++;
    } else if (inClass) {
      if (c === "]") inClass = false;
    } else if (c === "[") {
      inClass = true;
      if (value[i + 1] === "]") i++;
    } else if (c === "(" && value[i + 1] === "?") {
      const rest = value.slice(i + 2, i + 4);
      if (rest.startsWith("=") || rest.startsWith("!")) return "lookahead (?= / (?!";
      if (rest === "<=" || rest === "<!") return "lookbehind (?<= / (?<!";
    }
  }
  return undefined;
}

/** Throws an InvalidField when a regex does not compile, or uses what RE2 refuses. */
export function checkRegex(value: string, path: string): void {
  try {
    new RegExp(value);
  } catch (e) {
    throw new InvalidField(path, `regex '${value}' does not compile: ${errorMessage(e)}`);
  }
  const refusal = re2Refusal(value);
  if (refusal) throw new InvalidField(path, `regex '${value}' uses ${refusal}, which RE2 (Istio's regex engine) does not support`);
}

function percentage(f: Fields, key: string): number | undefined {
  const p = f.obj(key);
  if (!p) return undefined;
  const v = p.num("value", 0, 100) ?? 0;
  p.finish();
  return v;
}

function headerOps(f: Fields | undefined): HeaderOperations | undefined {
  if (!f) return undefined;
  const ops: HeaderOperations = { set: f.map("set") ?? {}, add: f.map("add") ?? {}, remove: f.strList("remove") };
  f.finish();
  return ops;
}

function headerRewrite(f: Fields | undefined): HeaderRewrite | undefined {
  if (!f) return undefined;
  const r: HeaderRewrite = {};
  const req = headerOps(f.obj("request"));
  const res = headerOps(f.obj("response"));
  if (req) r.request = req;
  if (res) r.response = res;
  f.finish();
  return r;
}

/** A Destination {host, subset, port{number}} resolved against the services. */
function destination(f: Fields, ns: string, services: ServiceIndex, warn: (p: string, n: string) => void): RouteDestination {
  const host = f.reqStr("host");
  const svc = services.resolve(host, ns);
  const d: RouteDestination = { host: svc?.hostname ?? host, weight: 0 };
  if (svc) d.service = svc.key;
  else warn(f.at("host"), `'${host}' is not a known Service; traffic routed there will fail`);
  const subset = f.str("subset");
  if (subset) d.subset = subset;
  const port = f.obj("port");
  if (port) {
    const n = port.int("number", 1, 65535);
    if (n !== undefined) d.port = n;
    port.finish();
  }
  f.finish();
  return d;
}

function match(f: Fields, warn: (p: string, n: string) => void): HttpMatch {
  const m: HttpMatch = { ignorePathCase: f.bool("ignoreUriCase") ?? false, headers: [], queryParams: [] };
  const name = f.str("name");
  if (name) m.name = name;
  for (const [key, field] of [
    ["uri", "path"],
    ["method", "method"],
    ["authority", "authority"],
    ["scheme", "scheme"],
  ] as const) {
    const sm = f.obj(key);
    if (sm) m[field] = istioStringMatch(sm);
  }
  const headers = f.obj("headers");
  for (const h of Object.keys(headers?.value ?? {})) {
    const hm = (headers as Fields).obj(h) as Fields;
    const empty = Object.keys(hm.value).length === 0;
    m.headers.push(
      empty ? { name: h.toLowerCase(), invert: false } : { name: h.toLowerCase(), match: istioStringMatch(hm), invert: false },
    );
  }
  const without = f.obj("withoutHeaders");
  for (const h of Object.keys(without?.value ?? {})) {
    const hm = (without as Fields).obj(h) as Fields;
    const hdr: HeaderMatch = { name: h.toLowerCase(), invert: true };
    if (Object.keys(hm.value).length > 0) hdr.match = istioStringMatch(hm);
    m.headers.push(hdr);
  }
  const qp = f.obj("queryParams");
  for (const q of Object.keys(qp?.value ?? {})) m.queryParams.push({ name: q, match: istioStringMatch((qp as Fields).obj(q) as Fields) });
  const port = f.int("port", 1, 65535);
  if (port !== undefined) m.port = port;
  const sl = f.map("sourceLabels");
  if (sl) m.sourceLabels = sl;
  const sn = f.str("sourceNamespace");
  if (sn) m.sourceNamespace = sn;
  const gw = f.strList("gateways");
  if (gw.length && !gw.includes("mesh")) warn(f.at("gateways"), "names gateways only: this match never applies to mesh traffic");
  f.accept("statPrefix");
  f.finish();
  return m;
}

function weighted(dests: RouteDestination[], path: string): RouteDestination[] {
  if (dests.length === 1 && dests[0]?.weight === 0) (dests[0] as RouteDestination).weight = 100;
  else if (dests.length > 1) {
    // Istio's rule: with several destinations, the weights must add up to 100.
    const total = dests.reduce((sum, d) => sum + d.weight, 0);
    if (total !== 100) throw new InvalidField(path, `weights of the ${dests.length} destinations add up to ${total}, not 100`);
  }
  return dests;
}

function routeDestinations(rule: Fields, ns: string, services: ServiceIndex, warn: (p: string, n: string) => void): RouteDestination[] {
  const dests = rule.list("route").map((r) => {
    const dest = r.obj("destination");
    if (!dest) throw new InvalidField(r.path, "needs a destination");
    const d = destination(dest, ns, services, warn);
    d.weight = r.int("weight", 0, 2 ** 31) ?? 0;
    const h = headerRewrite(r.obj("headers"));
    if (h) d.headers = h;
    r.finish();
    return d;
  });
  return weighted(dests, rule.at("route"));
}

function fault(f: Fields | undefined): FaultInjection | undefined {
  if (!f) return undefined;
  const out: FaultInjection = {};
  const delay = f.obj("delay");
  if (delay) {
    const fixed = durationField(delay, "fixedDelay");
    if (fixed === undefined) throw new InvalidField(delay.path, "needs fixedDelay");
    out.delay = { fixedDelayMs: fixed, percentage: percentage(delay, "percentage") ?? delay.int("percent", 0, 100) ?? 100 };
    delay.unsupported("exponentialDelay");
    delay.finish();
  }
  const abort = f.obj("abort");
  if (abort) {
    const http = abort.int("httpStatus", 200, 599);
    const grpc = abort.str("grpcStatus");
    if (http === undefined && grpc === undefined) throw new InvalidField(abort.path, "needs httpStatus or grpcStatus");
    out.abort = { percentage: percentage(abort, "percentage") ?? 100 };
    if (http !== undefined) out.abort.httpStatus = http;
    if (grpc !== undefined) out.abort.grpcStatus = grpc;
    abort.unsupported("http2Error");
    abort.finish();
  }
  f.finish();
  return out;
}

function httpRule(f: Fields, ns: string, services: ServiceIndex, warn: (p: string, n: string) => void): HttpRouteRule {
  const rule: HttpRouteRule = {
    matches: f.list("match").map((m) => match(m, warn)),
    destinations: routeDestinations(f, ns, services, warn),
    mirrors: [],
  };
  const name = f.str("name");
  if (name) rule.name = name;
  const redirect = f.obj("redirect");
  if (redirect) {
    rule.redirect = { statusCode: redirect.int("redirectCode", 300, 399) ?? 301 };
    const uri = redirect.str("uri");
    if (uri) rule.redirect.path = uri;
    const authority = redirect.str("authority");
    if (authority) rule.redirect.authority = authority;
    const scheme = redirect.str("scheme");
    if (scheme) rule.redirect.scheme = scheme;
    const port = redirect.int("port", 1, 65535);
    if (port !== undefined) rule.redirect.port = port;
    redirect.unsupported("derivePort");
    redirect.finish();
  }
  const direct = f.obj("directResponse");
  if (direct) {
    rule.directResponse = { status: direct.int("status", 200, 599) ?? 200 };
    const body = direct.obj("body");
    const text = body?.str("string");
    if (text !== undefined) rule.directResponse.body = text;
    body?.unsupported("bytes");
    body?.finish();
    direct.finish();
  }
  const rw = f.obj("rewrite");
  if (rw) {
    rule.rewrite = {};
    const uri = rw.str("uri");
    // Istio: when the rule matched on a URI prefix, the value replaces that prefix.
    if (uri !== undefined) {
      const prefixOnly = rule.matches.length > 0 && rule.matches.every((m) => m.path?.kind === "prefix");
      if (prefixOnly) rule.rewrite.pathPrefix = uri;
      else rule.rewrite.path = uri;
    }
    const authority = rw.str("authority");
    if (authority) rule.rewrite.authority = authority;
    const re = rw.obj("uriRegexRewrite");
    if (re) {
      const pattern = re.reqStr("match");
      checkRegex(pattern, re.at("match"));
      rule.rewrite.pathRegex = { pattern, substitution: re.str("rewrite") ?? "" };
      re.finish();
    }
    rw.finish();
  }
  const timeout = durationField(f, "timeout");
  if (timeout !== undefined) rule.timeoutMs = timeout;
  const retries = f.obj("retries");
  if (retries) {
    rule.retries = {
      attempts: retries.int("attempts", 0, 1000) ?? 0,
      retryOn: (retries.str("retryOn") ?? "")
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
    };
    const per = durationField(retries, "perTryTimeout");
    if (per !== undefined) rule.retries.perTryTimeoutMs = per;
    retries.unsupported("retryRemoteLocalities");
    retries.finish();
  }
  const fi = fault(f.obj("fault"));
  if (fi) rule.fault = fi;
  const mirror = f.obj("mirror");
  if (mirror) {
    const pct = percentage(f, "mirrorPercentage") ?? f.int("mirrorPercent", 0, 100) ?? 100;
    rule.mirrors.push({ destination: { ...destination(mirror, ns, services, warn), weight: 100 }, percentage: pct });
  }
  for (const m of f.list("mirrors")) {
    const dest = m.obj("destination");
    if (!dest) throw new InvalidField(m.path, "needs a destination");
    const mp: MirrorPolicy = {
      destination: { ...destination(dest, ns, services, warn), weight: 100 },
      percentage: percentage(m, "percentage") ?? 100,
    };
    m.finish();
    rule.mirrors.push(mp);
  }
  f.accept("mirrorPercentage", "mirrorPercent");
  const headers = headerRewrite(f.obj("headers"));
  if (headers) rule.headers = headers;
  f.unsupported("corsPolicy");
  f.unsupported("delegate", "(VirtualService delegation) is not supported: this rule has no effect");
  const actions = [rule.destinations.length > 0, rule.redirect !== undefined, rule.directResponse !== undefined].filter(Boolean).length;
  if (actions !== 1) throw new InvalidField(f.path, "needs exactly one of route, redirect, directResponse");
  f.finish();
  return rule;
}

function tcpRule(f: Fields, ns: string, services: ServiceIndex, warn: (p: string, n: string) => void): TcpRouteRule {
  const matches = f.list("match").map((m) => {
    const out: TcpRouteRule["matches"][number] = {};
    const port = m.int("port", 1, 65535);
    if (port !== undefined) out.port = port;
    const sl = m.map("sourceLabels");
    if (sl) out.sourceLabels = sl;
    const sn = m.str("sourceNamespace");
    if (sn) out.sourceNamespace = sn;
    const subnets = m.strList("destinationSubnets");
    if (subnets.length) out.destinationSubnets = subnets;
    m.accept("gateways");
    m.finish();
    return out;
  });
  const destinations = routeDestinations(f, ns, services, warn);
  if (destinations.length === 0) throw new InvalidField(f.at("route"), "a TCP rule needs at least one destination");
  f.finish();
  return { matches, destinations };
}

/** Translates one VirtualService; null when invalid or not for the mesh (reported). */
export function translateVirtualService(obj: KubeObject, services: ServiceIndex, diags: Diagnostics): RouteTable | null {
  const ref = refOf(obj);
  const warn = (path: string, note: string) => diags.warn(ref, `${path} ${note}`);
  const ns = obj.metadata.namespace ?? "default";
  try {
    const spec = Fields.of(obj.spec ?? {}, "spec", warn);
    const gateways = spec.strList("gateways");
    if (gateways.length > 0 && !gateways.includes("mesh")) {
      diags.warn(ref, `spec.gateways names only gateways (${gateways.join(", ")}): not mesh routing, not applied`);
      return null;
    }
    if (gateways.length > 1) warn("spec.gateways", "lists gateways besides 'mesh'; weft applies the routes to mesh traffic only");
    const hosts = spec.strList("hosts");
    if (hosts.length === 0) throw new InvalidField("spec.hosts", "needs at least one host");
    const table: RouteTable = {
      key: `VirtualService/${ns}/${obj.metadata.name}`,
      kind: "VirtualService",
      name: obj.metadata.name,
      namespace: ns,
      services: [],
      unresolvedHosts: [],
      exportTo: exportTo(spec.strList("exportTo"), ns),
      http: [],
      tcp: [],
      createdAt: obj.metadata.creationTimestamp ?? "",
    };
    const svcKeys = new Set<string>();
    for (const host of hosts) {
      const matched = host.startsWith("*") ? services.wildcard(host) : [services.resolve(host, ns)].filter((s) => s !== undefined);
      if (matched.length === 0) table.unresolvedHosts.push(host);
      for (const s of matched) svcKeys.add(s.key);
    }
    if (table.unresolvedHosts.length) {
      warn("spec.hosts", `${table.unresolvedHosts.join(", ")} match no Service (ServiceEntry is not supported); not routed`);
    }
    table.services = [...svcKeys].sort();
    table.http = spec.list("http").map((r) => httpRule(r, ns, services, warn));
    table.tcp = spec.list("tcp").map((r) => tcpRule(r, ns, services, warn));
    spec.unsupported("tls", "(TLS routing by SNI) is not supported and is ignored");
    spec.finish();
    return table;
  } catch (e) {
    if (!(e instanceof InvalidField)) throw e;
    diags.error(ref, `invalid: ${e.message}; VirtualService skipped`);
    return null;
  }
}
