/**
 * The L7 router: the facts of one HTTP request and the mesh view → a routing decision, with no
 * I/O (the L7 counterpart of buildRequest). The HTTP data path carries the decision out.
 *
 * - Only the first route table `routesFor` returns for the service applies (client namespace's
 *   first, HTTPRoute over VirtualService, then the oldest); others for the same service are
 *   shadowed, as in Istio.
 * - No table, or one with no HTTP rules: the default route (the connected service port, all its
 *   ready endpoints, the DestinationRule's policy, Istio's default retries, no timeout).
 * - Rules in order, the first matching rule wins (see match.ts). No rule matches: 404 NR.
 *   A destination that cannot be resolved (unknown service, port or subset): 503 NR.
 * - Header edits are listed destination-level first, then rule-level, so the rule's `set` wins
 *   over the destination's for the same header (Envoy's default order, least specific last).
 */
import type {
  FaultInjection,
  HeaderOperations,
  HttpMatch,
  RetryPolicy,
  RouteDestination,
  RouteTable,
  Workload,
} from "../../../controller/api/model.js";
import type { MeshView, ServiceMatch } from "../../state/view.js";
import { type ClusterRequest, type ClusterResult, resolveCluster, type UpstreamCluster } from "./cluster.js";
import { type CompiledRule, compileTable, findRule, RequestFacts, type RouteRef } from "./match.js";
import { applyRewrite, redirectLocation } from "./rewrite.js";

export type { UpstreamCluster } from "./cluster.js";
export type { RouteRef } from "./match.js";

/** The facts of one HTTP request the router decides on. */
export interface RouteInput {
  /** As received. */
  method: string;
  /** Request target: path plus optional "?query". */
  path: string;
  /** Host header (HTTP/1) or :authority (h2). */
  authority: string;
  /** Lower-case names, no pseudo-headers. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The service VIP:port the client connected to. */
  service: ServiceMatch;
  /** The calling workload (for sourceLabels / sourceNamespace). */
  source: Workload;
  /** "http" unless told otherwise (mesh traffic reaches the proxy as plaintext HTTP). */
  scheme?: string;
}

/** A mirror target resolved to a cluster. */
export interface ResolvedMirror {
  cluster: UpstreamCluster;
  /** Share of requests mirrored, 0–100. */
  percentage: number;
}

/** What to do with one request. */
export type RouteDecision =
  | {
      kind: "forward";
      route: RouteRef;
      cluster: UpstreamCluster;
      /** Request target to send upstream (rewritten; query kept). */
      path: string;
      /** Authority to send upstream (rewritten or as received). */
      authority: string;
      /** Applied in order: destination-level, then rule-level. */
      requestHeaders: HeaderOperations[];
      /** Applied in order: destination-level, then rule-level. */
      responseHeaders: HeaderOperations[];
      /** Whole-request timeout; 0 = none. */
      timeoutMs: number;
      /** The rule's, or Istio's defaults; attempts 0 = disabled. */
      retries: RetryPolicy;
      fault?: FaultInjection;
      /** Mirrors that resolved; one that does not is left out (a mirror never fails the request). */
      mirrors: ResolvedMirror[];
    }
  | { kind: "redirect"; route: RouteRef; status: number; location: string }
  | { kind: "direct"; route: RouteRef; status: number; body?: string }
  /** Answered with `status` and response flag NR: 404 when no rule matches, 503 when a destination cannot be resolved. */
  | { kind: "no-route"; route?: RouteRef; status: 404 | 503; reason: string };

/** Istio's retry conditions when a route sets none. */
const DEFAULT_RETRY_ON: readonly string[] = Object.freeze([
  "connect-failure",
  "refused-stream",
  "unavailable",
  "cancelled",
  "retriable-status-codes",
  "503",
]);

const DEFAULT_RETRIES: RetryPolicy = Object.freeze({ attempts: 2, retryOn: DEFAULT_RETRY_ON as string[] });

/** Istio's default retry policy (2 attempts); one shared, frozen object. */
export function defaultRetries(): RetryPolicy {
  return DEFAULT_RETRIES;
}

// A rule's retries are read from an immutable snapshot, so each rule's policy is resolved once
// (retry.ts also keys its parsed conditions by the policy's retryOn array).
const resolved = { VirtualService: new WeakMap<RetryPolicy, RetryPolicy>(), HTTPRoute: new WeakMap<RetryPolicy, RetryPolicy>() };

/**
 * The retry policy of a rule. A VirtualService's empty retryOn means Istio's default conditions;
 * an HTTPRoute's retryOn holds status codes only, which Istio combines with its connection-level
 * conditions (503 when no code is listed). The result is frozen and shared between requests.
 */
export function resolveRetries(kind: RouteTable["kind"], r: RetryPolicy | undefined): RetryPolicy {
  if (!r) return DEFAULT_RETRIES;
  const memo = resolved[kind];
  const hit = memo.get(r);
  if (hit) return hit;
  let retryOn = r.retryOn;
  if (kind === "HTTPRoute") {
    const base = DEFAULT_RETRY_ON.filter((c) => !/^\d+$/.test(c));
    retryOn = [...base, ...(r.retryOn.length > 0 ? r.retryOn : ["503"])];
  } else if (retryOn.length === 0) retryOn = [...DEFAULT_RETRY_ON];
  const out: RetryPolicy = { attempts: r.attempts, retryOn: Object.freeze(retryOn) as string[] };
  if (r.perTryTimeoutMs !== undefined) out.perTryTimeoutMs = r.perTryTimeoutMs;
  Object.freeze(out);
  memo.set(r, out);
  return out;
}

const EMPTY_REF: RouteRef = Object.freeze({});

/** The route table per (snapshot, service, client namespace): routesFor sorts, so it is asked once. */
const tables = new WeakMap<MeshView, Map<string, RouteTable | null>>();

/** The route table that applies to calls from a namespace to a service (the first routesFor returns). */
export function tableFor(view: MeshView, serviceKey: string, clientNamespace: string): RouteTable | undefined {
  let perView = tables.get(view);
  if (!perView) {
    perView = new Map();
    tables.set(view, perView);
  }
  const key = `${serviceKey}\n${clientNamespace}`;
  let t = perView.get(key);
  if (t === undefined) {
    t = view.routesFor(serviceKey, clientNamespace)[0] ?? null;
    perView.set(key, t);
  }
  return t ?? undefined;
}

/** Picks a destination by relative weight; `random` returns [0, 1). */
export function pickWeighted<T extends { weight: number }>(items: readonly T[], total: number, random: () => number): T | undefined {
  if (total <= 0) return undefined;
  let x = random() * total;
  let last: T | undefined;
  for (const it of items) {
    if (it.weight <= 0) continue;
    last = it;
    x -= it.weight;
    if (x < 0) return it;
  }
  return last; // random() rounding up to 1: the last weighted item.
}

function toCluster(view: MeshView, input: RouteInput, d: RouteDestination): ClusterResult {
  if (!d.service) return { ok: false, reason: `destination host '${d.host}' is not a known Service` };
  const req: ClusterRequest = { serviceKey: d.service, requestPort: input.service.port.port };
  if (d.port !== undefined) req.port = d.port;
  if (d.subset !== undefined) req.subset = d.subset;
  return resolveCluster(view, req, input.source);
}

function defaultRoute(view: MeshView, input: RouteInput): RouteDecision {
  const res = resolveCluster(view, { serviceKey: input.service.service.key, requestPort: input.service.port.port }, input.source);
  if (!res.ok) return { kind: "no-route", route: EMPTY_REF, status: 503, reason: res.reason };
  return {
    kind: "forward",
    route: EMPTY_REF,
    cluster: res.cluster,
    path: input.path,
    authority: input.authority,
    requestHeaders: [],
    responseHeaders: [],
    timeoutMs: 0,
    retries: defaultRetries(),
    mirrors: [],
  };
}

function forward(
  view: MeshView,
  input: RouteInput,
  table: RouteTable,
  c: CompiledRule,
  matched: HttpMatch | undefined,
  random: () => number,
): RouteDecision {
  const { rule, ref } = c;
  const dest = pickWeighted(rule.destinations, c.totalWeight, random);
  if (!dest) return { kind: "no-route", route: ref, status: 503, reason: `rule ${ref.rule} of ${ref.table} has no weighted destination` };
  const res = toCluster(view, input, dest);
  if (!res.ok) return { kind: "no-route", route: ref, status: 503, reason: `${res.reason} (rule ${ref.rule} of ${ref.table})` };
  const rw = applyRewrite(rule.rewrite, input.path, input.authority, matched);
  if (!rw.ok) return { kind: "no-route", route: ref, status: 503, reason: `${rw.reason} (rule ${ref.rule} of ${ref.table})` };
  const requestHeaders: HeaderOperations[] = [];
  const responseHeaders: HeaderOperations[] = [];
  for (const h of [dest.headers, rule.headers]) {
    if (h?.request) requestHeaders.push(h.request);
    if (h?.response) responseHeaders.push(h.response);
  }
  const mirrors: ResolvedMirror[] = [];
  for (const m of rule.mirrors) {
    const mc = toCluster(view, input, m.destination);
    if (mc.ok) mirrors.push({ cluster: mc.cluster, percentage: m.percentage });
  }
  const decision: RouteDecision = {
    kind: "forward",
    route: ref,
    cluster: res.cluster,
    path: rw.path,
    authority: rw.authority,
    requestHeaders,
    responseHeaders,
    timeoutMs: rule.timeoutMs ?? 0,
    retries: resolveRetries(table.kind, rule.retries),
    mirrors,
  };
  if (rule.fault) decision.fault = rule.fault;
  return decision;
}

/** Routes one request. `random` picks among weighted destinations (injectable for tests). */
export function route(view: MeshView, input: RouteInput, random: () => number = Math.random): RouteDecision {
  const table = tableFor(view, input.service.service.key, input.source.namespace);
  if (!table || table.http.length === 0) return defaultRoute(view, input);
  const compiled = compileTable(table);
  const scheme = input.scheme ?? "http";
  const facts = new RequestFacts(input.method, input.path, input.authority, scheme, input.headers, input.service.port.port, input.source);
  const hit = findRule(compiled, facts);
  if (!hit) {
    return {
      kind: "no-route",
      route: { table: table.key },
      status: 404,
      reason: `no rule of ${table.key} matches ${input.method} ${facts.path}`,
    };
  }
  const { rule, ref } = hit.rule;
  if (rule.redirect) {
    const location = redirectLocation(
      rule.redirect,
      { scheme, authority: input.authority, target: input.path },
      hit.match,
      table.kind === "HTTPRoute",
    );
    return { kind: "redirect", route: ref, status: rule.redirect.statusCode, location };
  }
  if (rule.directResponse) {
    const d: RouteDecision = { kind: "direct", route: ref, status: rule.directResponse.status };
    if (rule.directResponse.body !== undefined) d.body = rule.directResponse.body;
    return d;
  }
  return forward(view, input, table, hit.rule, hit.match, random);
}
