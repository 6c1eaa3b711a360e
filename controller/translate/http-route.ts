/**
 * gateway.networking.k8s.io HTTPRoute with Service parentRefs (GAMMA mesh routing) → RouteTable.
 * A route in its Service's namespace is a producer route (every client), elsewhere a consumer
 * route (clients in the route's namespace only). Routes attached to Gateways are not the mesh's.
 */
import type { KubeObject } from "../api/kube-types.js";
import type { HeaderOperations, HttpMatch, HttpRouteRule, RouteDestination, RouteTable, StringMatch } from "../api/model.js";
import { durationField, Fields, InvalidField } from "./fields.js";
import type { ServiceIndex } from "./hosts.js";
import { type Diagnostics, refOf } from "./types.js";
import { checkRegex } from "./virtual-service.js";

type Warn = (path: string, note: string) => void;

function gwStringMatch(f: Fields, defaultType: string, pathMatch: boolean): StringMatch {
  const type = f.str("type") ?? defaultType;
  const value = f.str("value") ?? (pathMatch ? "/" : "");
  switch (type) {
    case "Exact":
      return { kind: "exact", value };
    case "PathPrefix":
      return { kind: "pathPrefix", value };
    case "RegularExpression":
      checkRegex(value, f.at("value"));
      return { kind: "regex", value };
    default:
      throw new InvalidField(f.at("type"), `'${type}' is not one of Exact, ${pathMatch ? "PathPrefix, " : ""}RegularExpression`);
  }
}

function match(f: Fields): HttpMatch {
  const m: HttpMatch = { ignorePathCase: false, headers: [], queryParams: [] };
  const path = f.obj("path");
  if (path) {
    m.path = gwStringMatch(path, "PathPrefix", true);
    path.finish();
  } else {
    m.path = { kind: "pathPrefix", value: "/" };
  }
  for (const h of f.list("headers")) {
    m.headers.push({ name: h.reqStr("name").toLowerCase(), match: gwStringMatch(h, "Exact", false), invert: false });
    h.finish();
  }
  for (const q of f.list("queryParams")) {
    m.queryParams.push({ name: q.reqStr("name"), match: gwStringMatch(q, "Exact", false) });
    q.finish();
  }
  const method = f.str("method");
  if (method) m.method = { kind: "exact", value: method.toUpperCase() };
  f.finish();
  return m;
}

function headerModifier(f: Fields): HeaderOperations {
  const pairs = (key: string) => {
    const out: Record<string, string> = {};
    for (const p of f.list(key)) {
      out[p.reqStr("name").toLowerCase()] = p.str("value") ?? "";
      p.finish();
    }
    return out;
  };
  const ops = { set: pairs("set"), add: pairs("add"), remove: f.strList("remove").map((h) => h.toLowerCase()) };
  f.finish();
  return ops;
}

function backend(f: Fields, ns: string, services: ServiceIndex, warn: Warn): RouteDestination {
  const group = f.str("group") ?? "";
  const kind = f.str("kind") ?? "Service";
  const name = f.reqStr("name");
  const backendNs = f.str("namespace") ?? ns;
  if ((group !== "" && group !== "core") || kind !== "Service") {
    throw new InvalidField(f.path, `backend ${group || "core"}/${kind} is not supported (only Services)`);
  }
  const svc = services.resolve(`${name}.${backendNs}`, ns);
  const port = f.int("port", 1, 65535);
  if (port === undefined) throw new InvalidField(f.at("port"), "is required for a Service backend");
  const d: RouteDestination = { host: svc?.hostname ?? `${name}.${backendNs}`, port, weight: f.int("weight", 0, 1_000_000) ?? 1 };
  if (svc) d.service = svc.key;
  else warn(f.path, `Service ${backendNs}/${name} does not exist; requests routed to it fail`);
  if (backendNs !== ns) warn(f.at("namespace"), "crosses namespaces; weft does not check ReferenceGrants");
  return d;
}

function rule(f: Fields, ns: string, services: ServiceIndex, warn: Warn, port: number | undefined): HttpRouteRule {
  const matches = f.list("matches").map(match);
  if (matches.length === 0) matches.push({ path: { kind: "pathPrefix", value: "/" }, ignorePathCase: false, headers: [], queryParams: [] });
  if (port !== undefined) for (const m of matches) m.port = port;
  const r: HttpRouteRule = { matches, destinations: [], mirrors: [] };
  const name = f.str("name");
  if (name) r.name = name;
  for (const b of f.list("backendRefs")) {
    const d = backend(b, ns, services, warn);
    for (const bf of b.list("filters")) {
      const type = bf.reqStr("type");
      d.headers ??= {};
      const headers = d.headers;
      if (type === "RequestHeaderModifier")
        headers.request = headerModifier(bf.obj("requestHeaderModifier") ?? Fields.of({}, bf.path, warn));
      else if (type === "ResponseHeaderModifier")
        headers.response = headerModifier(bf.obj("responseHeaderModifier") ?? Fields.of({}, bf.path, warn));
      else warn(bf.path, `backend filter ${type} is not supported and is ignored`);
      bf.accept("extensionRef", "requestMirror", "requestRedirect", "urlRewrite", "cors");
      bf.finish();
    }
    b.finish();
    r.destinations.push(d);
  }
  for (const flt of f.list("filters")) {
    const type = flt.reqStr("type");
    switch (type) {
      case "RequestHeaderModifier":
      case "ResponseHeaderModifier": {
        const key = type === "RequestHeaderModifier" ? "requestHeaderModifier" : "responseHeaderModifier";
        const ops = headerModifier(flt.obj(key) ?? Fields.of({}, flt.at(key), warn));
        r.headers ??= {};
        if (type === "RequestHeaderModifier") r.headers.request = ops;
        else r.headers.response = ops;
        break;
      }
      case "RequestRedirect": {
        const rr = flt.obj("requestRedirect") ?? Fields.of({}, flt.at("requestRedirect"), warn);
        r.redirect = { statusCode: rr.int("statusCode", 300, 399) ?? 302 };
        const scheme = rr.str("scheme");
        if (scheme) r.redirect.scheme = scheme;
        const host = rr.str("hostname");
        if (host) r.redirect.authority = host;
        const port = rr.int("port", 1, 65535);
        if (port !== undefined) r.redirect.port = port;
        const p = rr.obj("path");
        if (p) {
          const t = p.reqStr("type");
          if (t === "ReplaceFullPath") r.redirect.path = p.str("replaceFullPath") ?? "/";
          else if (t === "ReplacePrefixMatch") r.redirect.pathPrefix = p.str("replacePrefixMatch") ?? "/";
          else throw new InvalidField(p.at("type"), `'${t}' is not ReplaceFullPath or ReplacePrefixMatch`);
          p.finish();
        }
        rr.finish();
        break;
      }
      case "URLRewrite": {
        const u = flt.obj("urlRewrite") ?? Fields.of({}, flt.at("urlRewrite"), warn);
        r.rewrite = {};
        const host = u.str("hostname");
        if (host) r.rewrite.authority = host;
        const p = u.obj("path");
        if (p) {
          const t = p.reqStr("type");
          if (t === "ReplaceFullPath") r.rewrite.path = p.str("replaceFullPath") ?? "/";
          else if (t === "ReplacePrefixMatch") r.rewrite.pathPrefix = p.str("replacePrefixMatch") ?? "/";
          else throw new InvalidField(p.at("type"), `'${t}' is not ReplaceFullPath or ReplacePrefixMatch`);
          p.finish();
        }
        u.finish();
        break;
      }
      case "RequestMirror": {
        const m = flt.obj("requestMirror") ?? Fields.of({}, flt.at("requestMirror"), warn);
        const br = m.obj("backendRef");
        if (!br) throw new InvalidField(m.path, "needs backendRef");
        const dest = backend(br, ns, services, warn);
        br.finish();
        let pct = m.int("percent", 0, 100) ?? 100;
        const frac = m.obj("fraction");
        if (frac) {
          pct = (100 * (frac.int("numerator", 0) ?? 0)) / (frac.int("denominator", 1) ?? 100);
          frac.finish();
        }
        m.finish();
        r.mirrors.push({ destination: { ...dest, weight: 100 }, percentage: Math.min(100, pct) });
        break;
      }
      default:
        warn(flt.path, `filter ${type} is not supported and is ignored`);
    }
    flt.accept("requestHeaderModifier", "responseHeaderModifier", "requestRedirect", "urlRewrite", "requestMirror", "extensionRef", "cors");
    flt.finish();
  }
  const timeouts = f.obj("timeouts");
  if (timeouts) {
    const req = durationField(timeouts, "request");
    if (req !== undefined) r.timeoutMs = req;
    const backendReq = durationField(timeouts, "backendRequest");
    if (backendReq !== undefined) r.retries = { attempts: 0, retryOn: [], perTryTimeoutMs: backendReq };
    timeouts.finish();
  }
  const retry = f.obj("retry");
  if (retry) {
    const codes = (retry.value.codes as unknown[] | undefined) ?? [];
    retry.accept("codes");
    r.retries = { ...(r.retries ?? {}), attempts: retry.int("attempts", 0, 1000) ?? 1, retryOn: codes.map(String) };
    retry.unsupported("backoff");
    retry.finish();
  }
  f.unsupported("sessionPersistence");
  f.finish();
  if (r.redirect) r.destinations = [];
  else if (r.destinations.length === 0 || r.destinations.every((d) => d.weight === 0)) {
    // Gateway API: a rule with no (weighted) backend answers 500.
    r.destinations = [];
    r.directResponse = { status: 500 };
  }
  return r;
}

/** Translates one HTTPRoute; null when invalid or with no Service parent (reported). */
export function translateHttpRoute(obj: KubeObject, services: ServiceIndex, diags: Diagnostics): RouteTable | null {
  const ref = refOf(obj);
  const warn: Warn = (path, note) => diags.warn(ref, `${path} ${note}`);
  const ns = obj.metadata.namespace ?? "default";
  try {
    const spec = Fields.of(obj.spec ?? {}, "spec", warn);
    const parents = spec.list("parentRefs").map((p) => {
      const r = {
        group: p.str("group") ?? "gateway.networking.k8s.io",
        kind: p.str("kind") ?? "Gateway",
        name: p.reqStr("name"),
        namespace: p.str("namespace") ?? ns,
        port: p.int("port", 1, 65535),
      };
      p.accept("sectionName");
      p.finish();
      return r;
    });
    const svcParents = parents.filter((p) => (p.group === "" || p.group === "core") && p.kind === "Service");
    if (svcParents.length === 0) {
      diags.warn(ref, "has no Service parentRef (it is for a Gateway): not mesh routing, not applied");
      return null;
    }
    if (svcParents.length < parents.length)
      warn("spec.parentRefs", "Gateway parents are ignored; weft applies the route to mesh traffic only");
    spec.accept("hostnames"); // GAMMA: hostnames do not apply to Service parents.
    const table: RouteTable = {
      key: `HTTPRoute/${ns}/${obj.metadata.name}`,
      kind: "HTTPRoute",
      name: obj.metadata.name,
      namespace: ns,
      services: [],
      unresolvedHosts: [],
      exportTo: svcParents.every((p) => p.namespace === ns) ? ["*"] : [ns],
      http: [],
      tcp: [],
      createdAt: obj.metadata.creationTimestamp ?? "",
    };
    for (const p of svcParents) {
      const svc = services.resolve(`${p.name}.${p.namespace}`, ns);
      if (svc) table.services.push(svc.key);
      else table.unresolvedHosts.push(`${p.name}.${p.namespace}`);
    }
    if (table.unresolvedHosts.length) warn("spec.parentRefs", `Service ${table.unresolvedHosts.join(", ")} does not exist; not routed`);
    table.services = [...new Set(table.services)].sort();
    const ports = [...new Set(svcParents.map((p) => p.port))];
    const port = ports.length === 1 ? ports[0] : undefined;
    if (ports.length > 1) warn("spec.parentRefs", "Service parents with different ports: the route applies to every port");
    table.http = spec.list("rules").map((r) => rule(r, ns, services, warn, port));
    spec.finish();
    return table;
  } catch (e) {
    if (!(e instanceof InvalidField)) throw e;
    diags.error(ref, `invalid: ${e.message}; HTTPRoute skipped`);
    return null;
  }
}
