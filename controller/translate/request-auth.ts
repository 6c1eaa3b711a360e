/**
 * security.istio.io RequestAuthentication → the model. Strict fields with error paths, as
 * security.ts does. A rule that cannot be understood is kept as an unusable marker rather than
 * dropped: dropping it could leave the workload with no rule at all, and then no token would be
 * checked (the connection stays spliced) and a forged one would reach the app. The marker still
 * turns verification on and fails every token of its issuer (every token at its locations when
 * the issuer cannot be read) with 401, as Istio's fake JWKS does; a request without a token stays
 * unauthenticated. jwksUri must name a service of this cluster (keys are fetched through the mesh,
 * never from outside it).
 */
import type { KubeObject } from "../api/kube-types.js";
import {
  claimHeaderProblem,
  cookieNameProblem,
  type JwtClaimHeader,
  type JwtHeader,
  type JwtRule,
  type PolicyScope,
  type RequestAuthentication,
} from "../api/model.js";
import { collectFieldErrors, Fields, InvalidField } from "./fields.js";
import { type Diagnostics, refOf, type TranslateOptions } from "./types.js";

function scopeOf(spec: Fields, namespace: string, opts: TranslateOptions): PolicyScope {
  const sel = spec.obj("selector");
  const labels = sel?.map("matchLabels");
  sel?.finish();
  const has = labels !== undefined && Object.keys(labels).length > 0;
  // Istio attaches a root-namespace policy with a selector to matching workloads of every namespace.
  if (namespace === opts.rootNamespace) return has ? { kind: "mesh", selector: labels } : { kind: "mesh" };
  return has ? { kind: "workload", selector: labels } : { kind: "namespace" };
}

/** A jwksUri must be http(s) to a host of this cluster ("<svc>.<ns>.svc[.<domain>]"). */
function checkJwksUri(uri: string, path: string, opts: TranslateOptions): void {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    throw new InvalidField(path, `'${uri}' is not a URL`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new InvalidField(path, `'${uri}' is not an http(s) URL`);
  const host = u.hostname;
  const domain = opts.clusterDomain;
  if (!/^[a-z0-9-]+\.[a-z0-9-]+\.svc(\.[a-z0-9.-]+)?$/.test(host) || (host.split(".").length > 3 && !host.endsWith(`.svc.${domain}`)))
    throw new InvalidField(
      path,
      `'${host}' is not a service of this cluster (<name>.<namespace>.svc[.${domain}]): keys are fetched through the mesh only`,
    );
}

function jwtRule(f: Fields, opts: TranslateOptions): JwtRule {
  const issuer = f.reqStr("issuer");
  const r: JwtRule = { issuer };
  const audiences = f.strList("audiences");
  if (audiences.length) r.audiences = audiences;
  const jwks = f.str("jwks");
  const jwksUri = f.str("jwksUri");
  if (jwks !== undefined) {
    try {
      const doc = JSON.parse(jwks) as { keys?: unknown };
      if (!Array.isArray(doc.keys)) throw new Error("no keys array");
    } catch (e) {
      throw new InvalidField(f.at("jwks"), `not a JWKS document: ${(e as Error).message}`);
    }
    r.jwks = jwks;
  } else if (jwksUri !== undefined) {
    checkJwksUri(jwksUri, f.at("jwksUri"), opts);
    r.jwksUri = jwksUri;
  } else throw new InvalidField(f.path, "needs jwks or jwksUri (weft does not discover keys from the issuer)");
  const headers: JwtHeader[] = f.list("fromHeaders").map((h) => {
    const name = h.reqStr("name");
    const prefix = h.str("prefix");
    h.finish();
    return prefix === undefined ? { name } : { name, prefix };
  });
  if (headers.length) r.fromHeaders = headers;
  const params = f.strList("fromParams");
  if (params.length) r.fromParams = params;
  const cookies = f.strList("fromCookies");
  for (const [i, c] of cookies.entries()) {
    const problem = cookieNameProblem(c);
    if (problem) throw new InvalidField(`${f.at("fromCookies")}[${i}]`, problem);
  }
  if (cookies.length) r.fromCookies = cookies;
  if (f.bool("forwardOriginalToken")) r.forwardOriginalToken = true;
  const out = f.str("outputPayloadToHeader");
  if (out !== undefined) r.outputPayloadToHeader = out;
  const claims = claimHeaders(f);
  if (claims.length) r.outputClaimToHeaders = claims;
  f.accept("timeout");
  f.finish();
  return r;
}

/** outputClaimToHeaders, header names lower-cased; a bad or repeated header name makes the rule unusable. */
function claimHeaders(f: Fields): JwtClaimHeader[] {
  const seen = new Set<string>();
  return f.list("outputClaimToHeaders").map((c) => {
    const header = c.reqStr("header");
    const claim = c.reqStr("claim");
    c.finish();
    const problem = claimHeaderProblem(header);
    if (problem) throw new InvalidField(c.at("header"), problem);
    const lower = header.toLowerCase();
    // Istio requires unique headers; two claims for one header would leave which one the app sees to order.
    if (seen.has(lower)) throw new InvalidField(c.at("header"), `'${header}' is named by more than one entry`);
    seen.add(lower);
    return { header: lower, claim };
  });
}

type Plain = Record<string, unknown>;

function mapping(v: unknown): Plain | undefined {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Plain) : undefined;
}

/**
 * The marker kept for a rule that cannot be used: no keys, and what of its issuer, token
 * locations and payload and claim headers can still be read. A location that cannot be read adds
 * the default ones (more tokens refused, never fewer), and a prefix that cannot be read becomes ""
 * (the whole header value is the token).
 */
function unusableRule(raw: unknown, reason: string): JwtRule {
  const o = mapping(raw) ?? {};
  const r: JwtRule = { issuer: typeof o.issuer === "string" ? o.issuer : "", unusable: reason };
  let unreadable = mapping(raw) === undefined;
  const headers: JwtHeader[] = [];
  if (o.fromHeaders !== undefined && o.fromHeaders !== null) {
    if (!Array.isArray(o.fromHeaders)) unreadable = true;
    else
      for (const item of o.fromHeaders) {
        const h = mapping(item);
        if (!h || typeof h.name !== "string" || h.name === "") unreadable = true;
        else headers.push({ name: h.name, prefix: typeof h.prefix === "string" ? h.prefix : "" });
      }
  }
  const params: string[] = [];
  if (o.fromParams !== undefined && o.fromParams !== null) {
    if (!Array.isArray(o.fromParams)) unreadable = true;
    else
      for (const p of o.fromParams) {
        if (typeof p === "string" && p !== "") params.push(p);
        else unreadable = true;
      }
  }
  const cookies: string[] = [];
  if (o.fromCookies !== undefined && o.fromCookies !== null) {
    if (!Array.isArray(o.fromCookies)) unreadable = true;
    else
      for (const c of o.fromCookies) {
        if (typeof c === "string" && cookieNameProblem(c) === undefined) cookies.push(c);
        else unreadable = true;
      }
  }
  // Defaults are only implied when no location is given; added here explicitly so they stay read.
  if (unreadable && (headers.length > 0 || params.length > 0 || cookies.length > 0)) {
    headers.push({ name: "Authorization", prefix: "Bearer " });
    params.push("access_token");
  }
  if (headers.length) r.fromHeaders = headers;
  if (params.length) r.fromParams = params;
  if (cookies.length) r.fromCookies = cookies;
  // A client's own copy of the payload header is still dropped: the app trusts it as the mesh's word.
  if (typeof o.outputPayloadToHeader === "string" && o.outputPayloadToHeader !== "") r.outputPayloadToHeader = o.outputPayloadToHeader;
  // So are the claim headers that can be read; a name that is no header name cannot arrive, and a
  // header the proxy owns (content-length...) is the client's own and must stay.
  const claims: JwtClaimHeader[] = [];
  for (const item of Array.isArray(o.outputClaimToHeaders) ? o.outputClaimToHeaders : []) {
    const c = mapping(item);
    if (typeof c?.header !== "string" || claimHeaderProblem(c.header) !== undefined) continue;
    const header = c.header.toLowerCase();
    if (!claims.some((x) => x.header === header)) claims.push({ header, claim: typeof c.claim === "string" ? c.claim : "" });
  }
  if (claims.length) r.outputClaimToHeaders = claims;
  return r;
}

/** True when targetRef or targetRefs is given; an empty targetRefs counts as absent, as in Istio. */
function hasTargetRef(spec: Fields): boolean {
  const refs = spec.value.targetRefs;
  if (Array.isArray(refs) && refs.length === 0) {
    spec.accept("targetRefs");
    return spec.has("targetRef");
  }
  return spec.has("targetRef") || spec.has("targetRefs");
}

/** Translates one RequestAuthentication; problems are reported with their field paths. */
export function translateRequestAuthentication(obj: KubeObject, opts: TranslateOptions, diags: Diagnostics): RequestAuthentication | null {
  const ref = refOf(obj);
  const namespace = obj.metadata.namespace ?? "default";
  const { errors, sink, run } = collectFieldErrors();
  const spec = run(() => Fields.of(obj.spec ?? {}, "spec", sink, true), undefined);
  if (spec && hasTargetRef(spec)) {
    diags.warn(ref, "spec.targetRef(s) binds the policy to a gateway or waypoint, which weft does not have: the policy is not applied");
    return null;
  }
  const fallbackScope: PolicyScope = namespace === opts.rootNamespace ? { kind: "mesh" } : { kind: "namespace" };
  const scope = spec ? run(() => scopeOf(spec, namespace, opts), fallbackScope) : fallbackScope;
  const jwtRules: JwtRule[] = [];
  const unusable = (raw: unknown, from: number) =>
    unusableRule(raw, `RequestAuthentication ${namespace}/${obj.metadata.name}: ${errors.slice(from).join("; ")}`);
  if (!spec) jwtRules.push(unusable(undefined, 0));
  const raw = spec?.value.jwtRules;
  spec?.accept("jwtRules");
  if (raw !== undefined && raw !== null && !Array.isArray(raw)) {
    const before = errors.length;
    sink(spec?.at("jwtRules") ?? "spec.jwtRules", "expected a list");
    jwtRules.push(unusable(undefined, before));
  }
  for (const [i, item] of (Array.isArray(raw) ? raw : []).entries()) {
    const before = errors.length;
    const rf = run(() => Fields.of(item, `spec.jwtRules[${i}]`, sink, true), null);
    const rule = rf ? run(() => jwtRule(rf, opts), null) : null;
    // Any problem, an unknown key included (a misspelt "audiences" would skip the audience check), makes the rule unusable.
    jwtRules.push(rule && errors.length === before ? rule : unusable(item, before));
  }
  spec?.finish();
  for (const e of errors) {
    const effect =
      !spec || e.startsWith("spec.jwtRules")
        ? "; the jwtRule is kept unusable: every token of its issuer (any token it reads, when the issuer is unknown) gets 401"
        : e.startsWith("spec.selector")
          ? `; the policy applies to the whole ${fallbackScope.kind}`
          : "";
    diags.error(ref, `invalid: ${e}${effect}`);
  }
  return {
    key: `${namespace}/${obj.metadata.name}`,
    name: obj.metadata.name,
    namespace,
    scope,
    jwtRules,
    ...(errors.length ? { errors } : {}),
  };
}
