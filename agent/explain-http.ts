/**
 * The HTTP half of `weft explain`: for a captured connection to an HTTP service port, what the
 * source proxy's router decides for one sample request (route, subset, timeout, retries, fault,
 * mirrors) — worked out with the proxy's own pure router, so the answer is the data path's.
 */
import type { Workload } from "../controller/api/model.js";
import { portHandling, wantsL7 } from "./proxy/l7/protocol.js";
import { canonicalAuthority, canonicalTarget, isTargetError } from "./proxy/l7/request-target.js";
import { route } from "./proxy/l7/router.js";
import type { MeshView, ServiceMatch } from "./state/view.js";

/** The sample request explained. */
export interface HttpSample {
  method: string;
  path: string;
  headers: Record<string, string>;
}

/** What the router does with the sample request. */
export interface HttpExplanation {
  /** How the port's protocol is chosen. */
  protocol: string;
  request: HttpSample;
  /** Route tables for the service, the one applied first; the rest are shadowed. */
  tables: string[];
  route: string;
  decision: "forward" | "redirect" | "direct" | "no-route";
  cluster?: string;
  subset?: string;
  endpoints?: number;
  destinationRule?: string;
  loadBalancer?: string;
  timeout: string;
  retries?: string;
  fault?: string;
  mirrors: string[];
  status?: number;
  detail?: string;
}

function protocolText(match: ServiceMatch): string {
  const p = match.port.appProtocol;
  switch (portHandling(p)) {
    case "l4":
      return "tcp (declared): stays on the L4 path, no per-request routing";
    case "sniff":
      return "not declared: the proxy sniffs the first bytes; HTTP/1.1 and h2c get per-request routing, anything else stays L4";
    default:
      return `${p} (declared): parsed and routed per request`;
  }
}

/** Explains the HTTP routing of a sample request from source to a service port. */
export function explainHttp(view: MeshView, source: Workload, match: ServiceMatch, sample: HttpSample): HttpExplanation {
  const tables = view.routesFor(match.service.key, source.namespace).map((t) => t.key);
  const base = { protocol: protocolText(match), request: sample, tables, mirrors: [] as string[] };
  if (portHandling(match.port.appProtocol) === "l4") {
    return { ...base, route: "-", decision: "forward", timeout: "none (L4)", detail: "TCP port: no HTTP routing applies" };
  }
  if (!wantsL7(view, match, source)) {
    return {
      ...base,
      route: "-",
      decision: "forward",
      timeout: "none (L4)",
      detail:
        "no VirtualService, HTTPRoute or DestinationRule applies to this client: the connection is spliced at L4, one endpoint per connection",
    };
  }
  // The proxy routes the canonical path; one it cannot make is answered 400 before any routing.
  const target = canonicalTarget(sample.method, sample.path, true);
  if (isTargetError(target)) {
    return { ...base, route: "-", decision: "direct", status: 400, timeout: "-", detail: `the proxy answers 400: ${target.error}` };
  }
  const headers = Object.fromEntries(Object.entries(sample.headers).map(([k, v]) => [k.toLowerCase(), v]));
  // The authority as the proxy makes it: an absolute-form target's host, else the Host, canonical.
  const authority = target.authority ?? canonicalAuthority(headers.host ?? `${match.service.hostname}:${match.port.port}`);
  if (typeof authority !== "string") {
    return { ...base, route: "-", decision: "direct", status: 400, timeout: "-", detail: `the proxy answers 400: ${authority.error}` };
  }
  const d = route(view, {
    method: sample.method,
    path: target.path,
    authority,
    headers,
    service: match,
    source,
  });
  const r = d.route;
  const routeText = r?.table ? `${r.table}${r.rule ? ` rule ${r.rule}` : ""}` : "default (no VirtualService or HTTPRoute for this client)";
  if (d.kind === "redirect")
    return { ...base, route: routeText, decision: "redirect", timeout: "-", status: d.status, detail: `Location: ${d.location}` };
  if (d.kind === "direct")
    return { ...base, route: routeText, decision: "direct", timeout: "-", status: d.status, detail: "answered by the proxy" };
  if (d.kind === "no-route")
    return { ...base, route: routeText, decision: "no-route", timeout: "-", status: d.status, detail: `${d.reason} (flag NR)` };
  const c = d.cluster;
  const lb = c.policy.loadBalancer;
  const retries =
    d.retries.attempts > 0
      ? `${d.retries.attempts} retr${d.retries.attempts === 1 ? "y" : "ies"} on ${d.retries.retryOn.join(",")}${d.retries.perTryTimeoutMs ? `, ${d.retries.perTryTimeoutMs} ms per try` : ""}`
      : "none";
  const fault = d.fault
    ? [
        d.fault.delay ? `delay ${d.fault.delay.fixedDelayMs} ms for ${d.fault.delay.percentage}%` : "",
        d.fault.abort ? `abort ${d.fault.abort.httpStatus ?? `grpc ${d.fault.abort.grpcStatus}`} for ${d.fault.abort.percentage}%` : "",
      ]
        .filter(Boolean)
        .join("; ")
    : undefined;
  return {
    ...base,
    route: routeText,
    decision: "forward",
    cluster: c.key,
    ...(c.subset ? { subset: c.subset } : {}),
    endpoints: c.endpoints.length,
    ...(c.policy.destinationRule ? { destinationRule: c.policy.destinationRule } : {}),
    loadBalancer: lb?.consistentHash
      ? `consistent hash on ${Object.keys(lb.consistentHash).join(",")}`
      : (lb?.simple ?? "LEAST_REQUEST (default)"),
    timeout: d.timeoutMs > 0 ? `${d.timeoutMs} ms` : "none",
    retries,
    ...(fault ? { fault } : {}),
    mirrors: d.mirrors.map((m) => `${m.cluster.key} (${m.percentage}%)`),
    detail: `path sent upstream: ${d.path}, authority ${d.authority}`,
  };
}
