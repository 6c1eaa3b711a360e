/**
 * Authorization with Istio's AuthorizationPolicy semantics: a DENY match denies; otherwise, with
 * no ALLOW policy everything is allowed, with some, one must match. At L4 (a connection) the
 * HTTP-only parts of a rule cannot be checked and fail closed; with request facts (the
 * destination's HTTP server) they are checked. Dry-run policies are never enforced: their
 * would-be outcome is reported beside the decision. Pure: the caller gathers the facts.
 */

import { isPathTemplate, pathTemplate } from "../../common/path-template.js";
import type { AuthorizationPolicy, AuthzCondition, AuthzOperation, AuthzRule, AuthzSource } from "../../controller/api/model.js";
import { parseSpiffeId } from "../../controller/api/model.js";
import { ipInCidr } from "./ip-match.js";

/** What is known about a connection when it is authorized at L4. */
export interface ConnectionFacts {
  /** Authenticated peer SPIFFE id (from mTLS), or undefined for plaintext. */
  sourceIdentity?: string;
  sourceIp: string;
  destinationIp: string;
  destinationPort: number;
  /** The HTTP request, when authorizing one (the destination's HTTP server); absent at L4. */
  request?: RequestFacts;
}

/** What is known about one HTTP request. */
export interface RequestFacts {
  method: string;
  /** The request target as sent (a query string is ignored when matching paths); also `:path`. */
  path: string;
  /** :authority / Host. */
  host: string;
  /** Lower-case names, without pseudo-headers (`:method`, `:path`, `:authority` are read from the fields above). */
  headers: Record<string, string | string[]>;
  /** The request's authenticated JWT, when RequestAuthentication accepted one. */
  auth?: RequestAuth;
}

/**
 * A validated JWT's facts, as Istio's request.auth.* attributes name them. The request principal
 * ("<iss>/<sub>") is kept as its two claims: a pattern is split at its last "/" and each part
 * matched apart, since an issuer (a URL) and a subject may both hold "/".
 */
export interface RequestAuth {
  /** The `iss` claim; undefined when absent, empty or not a string. */
  issuer: string | undefined;
  /** The `sub` claim; undefined when absent, empty or not a string (then there is no request principal). */
  subject: string | undefined;
  audiences: string[];
  presenter?: string;
  claims: Record<string, unknown>;
}

/** What a dry-run policy would have done to this connection or request. */
export interface DryRunOutcome {
  policy: string;
  result: "allow" | "deny";
}

/** An authorization outcome, naming the policy that decided it. */
export type AuthzDecision = ({ allowed: true } | { allowed: false }) & {
  policy?: string;
  reason: string;
  /** Would-be outcomes of dry-run policies (present only when some apply). */
  dryRun?: DryRunOutcome[];
  /** AUDIT policies whose rules matched. */
  audit?: string[];
};

/**
 * Whether a rule's HTTP-only parts count as matching when there are no request facts. At L4
 * they cannot be checked: ALLOW rules with them never match (fail closed), DENY rules treat
 * them as matching (fail closed too). "optimistic" is the reverse, used only to learn whether
 * some request could be allowed (then the destination's HTTP server decides per request). With
 * request facts, the mode also settles a path template that only characters outside pchar decide.
 */
type L7Mode = "never" | "always";

/**
 * The facts with what every rule would otherwise recompute (principal, namespace, path without
 * query), worked out once per decision: with 100 policies a request meets ~100 rules.
 */
interface Derived {
  f: ConnectionFacts;
  principal: string | undefined;
  ns: string | undefined;
  path: string | undefined;
}

/** Principal and namespace per identity (a node runs few peers; parsing one is a regex per rule otherwise). */
const IDENTITIES_MAX = 1024;
const identities = new Map<string, { principal: string | undefined; ns: string | undefined }>();

function derive(f: ConnectionFacts): Derived {
  const id = f.sourceIdentity;
  let who = id === undefined ? undefined : identities.get(id);
  if (id !== undefined && !who) {
    who = { principal: principalOf(id), ns: namespaceOf(id) };
    if (identities.size >= IDENTITIES_MAX) identities.clear();
    identities.set(id, who);
  }
  return { f, principal: who?.principal, ns: who?.ns, path: f.request ? pathOnly(f.request.path) : undefined };
}

/** A workload's policies split by role, computed once per policy list (the view caches the list). */
interface Partition {
  /** Enforced (not dry-run) policies, in order. */
  enforced: readonly AuthorizationPolicy[];
  deny: readonly AuthorizationPolicy[];
  allow: readonly AuthorizationPolicy[];
  audit: readonly AuthorizationPolicy[];
  dry: readonly AuthorizationPolicy[];
  dryDeny: readonly AuthorizationPolicy[];
  dryAllow: readonly AuthorizationPolicy[];
}

const partitions = new WeakMap<readonly AuthorizationPolicy[], Partition>();

/** What a DENY rule naming a path template that cannot be read becomes (as the translator's unreadable rule). */
const UNREADABLE_DENY: AuthzRule = { from: [], to: [], when: [] };

/** Whether a rule names a `paths`/`notPaths` value with braces that is no valid path template. */
function hasBadTemplate(r: AuthzRule): boolean {
  const bad = (ps: readonly string[] | undefined) => ps?.some((v) => isPathTemplate(v) && pathTemplate(v) === null) ?? false;
  return r.to.some((o) => bad(o.paths) || bad(o.notPaths));
}

/**
 * The policy with rules naming an unreadable path template failing closed, as the translator
 * treats a rule it cannot read: a DENY denies its whole scope, an ALLOW or AUDIT loses the rule
 * (an ALLOW left with none still counts as an ALLOW policy, so it allows nothing).
 */
function withReadableTemplates(p: AuthorizationPolicy): AuthorizationPolicy {
  if (!p.rules.some(hasBadTemplate)) return p;
  return { ...p, rules: p.action === "DENY" ? [UNREADABLE_DENY] : p.rules.filter((r) => !hasBadTemplate(r)) };
}

function partition(policies: readonly AuthorizationPolicy[]): Partition {
  let p = partitions.get(policies);
  if (!p) {
    const readable = policies.map(withReadableTemplates);
    const enforced = readable.filter((x) => !x.dryRun);
    const dry = readable.filter((x) => x.dryRun);
    p = {
      enforced,
      deny: enforced.filter((x) => x.action === "DENY"),
      allow: enforced.filter((x) => x.action === "ALLOW"),
      audit: enforced.filter((x) => x.action === "AUDIT"),
      dry,
      dryDeny: dry.filter((x) => x.action === "DENY"),
      dryAllow: dry.filter((x) => x.action === "ALLOW"),
    };
    partitions.set(policies, p);
  }
  return p;
}

/** A policy as decisions read it: its name and the rules that are still worth checking. */
type RuleSet = Pick<AuthorizationPolicy, "key" | "rules">;

/**
 * A partition narrowed to one connection's fixed facts (source identity and address, destination
 * address and port) and the request's method: rules whose fixed parts can never match are
 * dropped, and policies left with no rule with them. Every request of the connection meets only
 * what remains (with 100 policies for other clients or other methods, a handful). Emptiness of
 * the ALLOW set is taken from the full partition: an ALLOW policy that cannot match this source
 * still denies it.
 */
interface Narrowed {
  deny: readonly RuleSet[];
  allow: readonly RuleSet[];
  audit: readonly RuleSet[];
  dryDeny: readonly RuleSet[];
  dryAllow: readonly RuleSet[];
}

/** Narrowings remembered per policy list (a list lives as long as its snapshot). */
const NARROWED_MAX = 4096;
const narrowings = new WeakMap<Partition, Map<string, Narrowed>>();

/** Methods a narrowing may be keyed by: a client's made-up methods must not fill the cache. */
const KEYED_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"]);

function narrow(p: Partition, x: Derived): Narrowed {
  const f = x.f;
  const requested = f.request?.method;
  const method = requested !== undefined && KEYED_METHODS.has(requested) ? requested : undefined;
  const key = `${f.sourceIdentity ?? ""}|${f.sourceIp}|${f.destinationIp}|${f.destinationPort}|${method ?? ""}`;
  let byConn = narrowings.get(p);
  if (!byConn) {
    byConn = new Map();
    narrowings.set(p, byConn);
  }
  let n = byConn.get(key);
  if (!n) {
    const fixed: Derived = { f: { ...f, request: undefined }, principal: x.principal, ns: x.ns, path: undefined };
    const keep = (ps: readonly AuthorizationPolicy[]): RuleSet[] => {
      const out: RuleSet[] = [];
      for (const pol of ps) {
        const rules = pol.rules.filter((r) => couldMatch(r, fixed, method));
        if (rules.length > 0) out.push(rules.length === pol.rules.length ? pol : { key: pol.key, rules });
      }
      return out;
    };
    n = { deny: keep(p.deny), allow: keep(p.allow), audit: keep(p.audit), dryDeny: keep(p.dryDeny), dryAllow: keep(p.dryAllow) };
    if (byConn.size >= NARROWED_MAX) byConn.clear();
    byConn.set(key, n);
  }
  return n;
}

/**
 * Whether some request with these fixed facts (and this method, when given) could match a rule:
 * the request's other attributes count as matching. A rule that fails here fails every full check,
 * so dropping it never changes a decision.
 */
function couldMatch(rule: AuthzRule, fixed: Derived, method: string | undefined): boolean {
  if (rule.from.length > 0 && !rule.from.some((s) => sourceMatches(s, fixed, "always"))) return false;
  const methodOk = (o: AuthzOperation) =>
    method === undefined || ((!o.methods || anyMatch(o.methods, method)) && !(o.notMethods && anyMatch(o.notMethods, method)));
  if (rule.to.length > 0 && !rule.to.some((o) => operationMatches(o, fixed, "always") && methodOk(o))) return false;
  return rule.when.every((c) => conditionMatches(c, fixed, "always"));
}

function anyRule(p: RuleSet, x: Derived, l7: L7Mode): boolean {
  for (const r of p.rules) if (matchRule(r, x, l7)) return true;
  return false;
}

/** Istio's precedence over `deny` then `allow` (candidates); `allowAll` is the full ALLOW set, for its emptiness and the reason. */
function decide(
  deny: readonly RuleSet[],
  allow: readonly RuleSet[],
  allowAll: readonly AuthorizationPolicy[],
  x: Derived,
  optimistic: boolean,
): AuthzDecision {
  for (const p of deny) {
    if (anyRule(p, x, optimistic ? "never" : "always")) {
      const why =
        p.rules[0] === UNREADABLE_DENY ? " (it names a path template that cannot be read, so it denies everything: fail closed)" : "";
      return { allowed: false, policy: p.key, reason: `denied by DENY policy ${p.key}${why}` };
    }
  }
  if (allowAll.length === 0) return { allowed: true, reason: "no ALLOW policy applies" };
  for (const p of allow) {
    if (anyRule(p, x, optimistic ? "always" : "never")) return { allowed: true, policy: p.key, reason: `allowed by ${p.key}` };
  }
  return {
    allowed: false,
    policy: allowAll.map((p) => p.key).join(","),
    reason: `no rule of ALLOW policies ${allowAll.map((p) => p.key).join(", ")} matches`,
  };
}

/** The enforced (not dry-run) policies' decision. */
function enforce(policies: readonly AuthorizationPolicy[], facts: ConnectionFacts, optimistic: boolean): AuthzDecision {
  const p = partition(policies);
  return decide(p.deny, p.allow, p.allow, derive(facts), optimistic);
}

/** Would-be outcomes of the dry-run policies: each matching DENY denies; ALLOWs, as a set, allow or deny. */
function shadow(p: Partition, c: Narrowed | Partition, x: Derived): DryRunOutcome[] {
  const out: DryRunOutcome[] = [];
  for (const d of c.dryDeny) if (anyRule(d, x, "always")) out.push({ policy: d.key, result: "deny" });
  if (p.dryAllow.length > 0) {
    const hit = c.dryAllow.find((a) => anyRule(a, x, "never"));
    out.push(hit ? { policy: hit.key, result: "allow" } : { policy: p.dryAllow.map((a) => a.key).join(","), result: "deny" });
  }
  return out;
}

/** Evaluates the policies that apply to the destination workload (with facts.request: one HTTP request). */
export function authorize(policies: readonly AuthorizationPolicy[], facts: ConnectionFacts): AuthzDecision {
  // Per request, only the rules this connection and method could ever meet are checked.
  return evaluate(policies, facts, facts.request !== undefined);
}

/** `authorize` checking every rule, with no narrowing: the reference the narrowed path must agree with. */
export function authorizeEveryRule(policies: readonly AuthorizationPolicy[], facts: ConnectionFacts): AuthzDecision {
  return evaluate(policies, facts, false);
}

function evaluate(policies: readonly AuthorizationPolicy[], facts: ConnectionFacts, narrowed: boolean): AuthzDecision {
  const p = partition(policies);
  const x = derive(facts);
  const c = narrowed ? narrow(p, x) : p;
  const decision = decide(c.deny, c.allow, p.allow, x, false);
  if (p.dry.length > 0) decision.dryRun = shadow(p, c, x);
  if (c.audit.length > 0) {
    const audit = c.audit.filter((a) => anyRule(a, x, "always"));
    if (audit.length > 0) decision.audit = audit.map((a) => a.key);
  }
  return decision;
}

/** A connection-level outcome where the HTTP server can decide per request. */
export type StagedDecision = AuthzDecision & { perRequest?: boolean };

/**
 * Authorizes a connection that an HTTP server could check request by request. Allowed outright
 * when no HTTP attribute can change the outcome; denied outright when no request could be
 * allowed; otherwise allowed with perRequest (the HTTP server checks each request). Dry-run and
 * AUDIT policies with HTTP parts also need per-request evaluation to be counted.
 */
export function authorizeStaged(policies: readonly AuthorizationPolicy[], facts: ConnectionFacts): StagedDecision {
  const strict = authorize(policies, facts);
  const needsRequest = (p: AuthorizationPolicy) => (p.dryRun || p.action === "AUDIT") && p.rules.some(hasL7);
  if (strict.allowed && !policies.some(needsRequest)) return strict;
  const optimistic = enforce(policies, facts, true);
  if (!optimistic.allowed) return strict.allowed ? { ...strict, perRequest: true } : strict;
  return { allowed: true, reason: "decided per HTTP request (policies with HTTP attributes apply)", perRequest: true };
}

/**
 * Why a connection that L4 denies could have been allowed by an HTTP-aware check (undefined
 * when HTTP attributes play no part): for `weft explain` on ports that are not HTTP.
 */
export function l7Note(policies: readonly AuthorizationPolicy[], facts: ConnectionFacts): string | undefined {
  if (enforce(policies, facts, false).allowed || !enforce(policies, facts, true).allowed) return undefined;
  return "a rule uses HTTP attributes (methods, paths, hosts, request.*), which cannot be checked on a port that is not HTTP, so it fails closed";
}

function hasL7(r: AuthzRule): boolean {
  return (
    r.from.some((s) => s.requestPrincipals !== undefined || s.notRequestPrincipals !== undefined) ||
    r.to.some((o) => [o.hosts, o.notHosts, o.methods, o.notMethods, o.paths, o.notPaths].some((x) => x !== undefined)) ||
    r.when.some((c) => !L4_KEYS.has(c.key))
  );
}

const L4_KEYS = new Set(["source.ip", "remote.ip", "source.namespace", "source.principal", "destination.ip", "destination.port"]);

/** True when every part of a rule matches (absent parts match anything). */
function matchRule(rule: AuthzRule, x: Derived, l7: L7Mode): boolean {
  if (rule.from.length > 0 && !rule.from.some((s) => sourceMatches(s, x, l7))) return false;
  if (rule.to.length > 0 && !rule.to.some((o) => operationMatches(o, x, l7))) return false;
  return rule.when.every((c) => conditionMatches(c, x, l7));
}

/** Istio principals drop the "spiffe://" scheme: "cluster.local/ns/a/sa/b". */
function principalOf(identity: string | undefined): string | undefined {
  return identity?.startsWith("spiffe://") ? identity.slice("spiffe://".length) : identity;
}

function namespaceOf(identity: string | undefined): string | undefined {
  return identity ? parseSpiffeId(identity)?.namespace : undefined;
}

/** Istio string match: exact, "*", "prefix*" or "*suffix". */
export function stringMatch(pattern: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (pattern === "*") return true;
  if (pattern.endsWith("*")) return value.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith("*")) return value.endsWith(pattern.slice(1));
  return pattern === value;
}

function anyMatch(patterns: readonly string[] | undefined, value: string | undefined): boolean {
  return patterns?.some((p) => stringMatch(p, value)) ?? false;
}

/**
 * Istio's request principal match (its JWT-claims form): the pattern splits at its last "/" into
 * issuer and subject, matched apart, "*" on the issuer's left or the subject's right; "*" needs
 * both. No subject (or issuer) means no request principal: nothing matches.
 */
export function requestPrincipalMatch(pattern: string, auth: RequestAuth | undefined): boolean {
  const iss = auth?.issuer;
  const sub = auth?.subject;
  if (!iss || !sub) return false;
  if (pattern === "*") return true;
  const cut = pattern.lastIndexOf("/");
  if (cut < 0) {
    // No "/": a "*"-ended pattern names the issuer, a "*"-started one the subject; exact never matches.
    if (pattern.startsWith("*")) return sub.endsWith(pattern.slice(1));
    if (pattern.endsWith("*")) return iss.startsWith(pattern.slice(0, -1));
    return false;
  }
  const pIss = pattern.slice(0, cut);
  const pSub = pattern.slice(cut + 1);
  if (pattern.startsWith("*")) return (pIss === "*" || iss.endsWith(pIss.slice(1))) && sub === pSub;
  if (pattern.endsWith("*")) return iss === pIss && (pSub === "*" || sub.startsWith(pSub.slice(0, -1)));
  return iss === pIss && sub === pSub;
}

function anyRequestPrincipal(patterns: readonly string[], auth: RequestAuth | undefined): boolean {
  return patterns.some((p) => requestPrincipalMatch(p, auth));
}

/**
 * Whether a `paths`/`notPaths` list names the request's path (without query). A template match
 * that only characters outside pchar decide (undefined) counts as `unknownMatches`: the caller
 * picks the side that fails closed.
 */
function pathIn(patterns: readonly string[], path: string | undefined, unknownMatches: boolean): boolean {
  for (const p of patterns) {
    if (!isPathTemplate(p)) {
      if (stringMatch(p, path)) return true;
      continue;
    }
    // An unreadable template's rule is already replaced (see withReadableTemplates); undefined is the fail-closed side.
    const m = path === undefined ? false : pathTemplate(p)?.match(path);
    if (m === true || (m === undefined && unknownMatches)) return true;
  }
  return false;
}

function sourceMatches(s: AuthzSource, x: Derived, l7: L7Mode): boolean {
  const { f, principal, ns } = x;
  if (s.principals && !anyMatch(s.principals, principal)) return false;
  if (s.notPrincipals && anyMatch(s.notPrincipals, principal)) return false;
  if (s.namespaces && !anyMatch(s.namespaces, ns)) return false;
  if (s.notNamespaces && anyMatch(s.notNamespaces, ns)) return false;
  if (s.ipBlocks && !s.ipBlocks.some((c) => ipInCidr(f.sourceIp, c))) return false;
  if (s.notIpBlocks?.some((c) => ipInCidr(f.sourceIp, c))) return false;
  if (s.requestPrincipals || s.notRequestPrincipals) {
    if (!f.request) return l7 === "always";
    const auth = f.request.auth;
    if (s.requestPrincipals && !anyRequestPrincipal(s.requestPrincipals, auth)) return false;
    if (s.notRequestPrincipals && anyRequestPrincipal(s.notRequestPrincipals, auth)) return false;
  }
  return true;
}

function operationMatches(o: AuthzOperation, x: Derived, l7: L7Mode): boolean {
  const f = x.f;
  if (o.ports && !o.ports.includes(f.destinationPort)) return false;
  if (o.notPorts?.includes(f.destinationPort)) return false;
  const r = f.request;
  if (!r) {
    const hasL7 = [o.hosts, o.notHosts, o.methods, o.notMethods, o.paths, o.notPaths].some((x) => x !== undefined);
    return hasL7 ? l7 === "always" : true;
  }
  if (o.methods && !anyMatch(o.methods, r.method)) return false;
  if (o.notMethods && anyMatch(o.notMethods, r.method)) return false;
  const path = x.path;
  // l7 "always" is the DENY side: there an undecidable template counts as naming the path.
  if (o.paths && !pathIn(o.paths, path, l7 === "always")) return false;
  if (o.notPaths && pathIn(o.notPaths, path, l7 === "never")) return false;
  if (o.hosts && !o.hosts.some((h) => hostMatch(h, r.host))) return false;
  if (o.notHosts?.some((h) => hostMatch(h, r.host))) return false;
  return true;
}

/** The path without its query string or fragment (Istio matches the path alone). */
function pathOnly(target: string): string {
  const q = target.search(/[?#]/);
  return q >= 0 ? target.slice(0, q) : target;
}

/** Istio host match: case-insensitive; a pattern without a port also matches the host with any port. */
function hostMatch(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase();
  const h = host.toLowerCase();
  if (stringMatch(p, h)) return true;
  const bare = h.replace(/:\d+$/, "");
  return !/:\d+$/.test(p) && bare !== h && stringMatch(p, bare);
}

function headerValue(headers: Record<string, string | string[]>, name: string): string | undefined {
  // Own fields only: a rule on `constructor` or `__proto__` must not read Object.prototype.
  const n = name.toLowerCase();
  if (!Object.hasOwn(headers, n)) return undefined;
  const v = headers[n];
  return Array.isArray(v) ? v.join(",") : v;
}

/** request.auth.claims[a][b] → the claim's values as strings (a string claim, or a list of strings). */
function claimValues(auth: RequestAuth | undefined, key: string): string[] | undefined {
  if (!auth) return undefined;
  const names = [...key.slice("request.auth.claims".length).matchAll(/\[([^\]]+)\]/g)].map((m) => m[1] as string);
  let v: unknown = auth.claims;
  for (const n of names) {
    if (v === null || typeof v !== "object" || Array.isArray(v) || !Object.hasOwn(v, n)) return undefined;
    v = (v as Record<string, unknown>)[n];
  }
  if (typeof v === "string") return [v];
  if (typeof v === "number" || typeof v === "boolean") return [String(v)];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === "string");
  return undefined;
}

/**
 * A header as Envoy's RBAC header matchers see it: pseudo-headers included (the header view has
 * none: it is what is sent on), taken from the request's own facts.
 */
function requestHeader(r: RequestFacts, name: string): string | undefined {
  const n = name.toLowerCase();
  if (n.charCodeAt(0) !== 58) return headerValue(r.headers, n);
  if (n === ":authority") return r.host;
  if (n === ":path") return r.path;
  if (n === ":method") return r.method;
  return undefined;
}

/** The values a request-level condition key has (undefined: the attribute is absent). */
function requestValues(key: string, r: RequestFacts): string[] | undefined {
  const h = /^request\.headers\[(.+)\]$/.exec(key);
  if (h) {
    const v = requestHeader(r, h[1] as string);
    return v === undefined ? undefined : [v];
  }
  if (key === "request.auth.audiences") return r.auth?.audiences;
  if (key === "request.auth.presenter") return r.auth?.presenter ? [r.auth.presenter] : undefined;
  if (key.startsWith("request.auth.claims[")) return claimValues(r.auth, key);
  return undefined;
}

function conditionMatches(c: AuthzCondition, x: Derived, l7: L7Mode): boolean {
  const f = x.f;
  let actual: string | undefined;
  let isIp = false;
  switch (c.key) {
    case "source.ip":
    case "remote.ip":
      actual = f.sourceIp;
      isIp = true;
      break;
    case "source.namespace":
      actual = x.ns;
      break;
    case "source.principal":
      actual = x.principal;
      break;
    case "destination.ip":
      actual = f.destinationIp;
      isIp = true;
      break;
    case "destination.port":
      actual = String(f.destinationPort);
      break;
    default: {
      // request.*, connection.sni, experimental.*: not knowable at L4.
      if (!f.request || !c.key.startsWith("request.")) return l7 === "always";
      if (c.key === "request.auth.principal") {
        const auth = f.request.auth;
        if (c.values && !anyRequestPrincipal(c.values, auth)) return false;
        return !c.notValues || !anyRequestPrincipal(c.notValues, auth);
      }
      const vs = requestValues(c.key, f.request) ?? [];
      if (c.values && !c.values.some((p) => vs.some((v) => stringMatch(p, v)))) return false;
      if (c.notValues?.some((p) => vs.some((v) => stringMatch(p, v)))) return false;
      return true;
    }
  }
  const match = (v: string) => (isIp ? ipInCidr(actual as string, v) : stringMatch(v, actual));
  if (c.values && !c.values.some(match)) return false;
  if (c.notValues?.some(match)) return false;
  return true;
}
