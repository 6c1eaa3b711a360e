/**
 * security.istio.io RequestAuthentication → the model. Strict fields with error paths, as
 * security.ts does. A rule that cannot be understood is dropped: a token its issuer signed then
 * matches no rule and gets 401, and a request without a token stays unauthenticated — nothing an
 * invalid rule says can make a request authenticated. jwksUri must name a service of this
 * cluster (keys are fetched through the mesh, never from outside it).
 */
import type { KubeObject } from "../api/kube-types.js";
import type { JwtHeader, JwtRule, PolicyScope, RequestAuthentication } from "../api/model.js";
import { collectFieldErrors, Fields, InvalidField } from "./fields.js";
import { type Diagnostics, refOf, type TranslateOptions } from "./types.js";

function scopeOf(spec: Fields, namespace: string, opts: TranslateOptions): PolicyScope {
  const sel = spec.obj("selector");
  const labels = sel?.map("matchLabels");
  sel?.finish();
  const has = labels !== undefined && Object.keys(labels).length > 0;
  if (namespace === opts.rootNamespace) return has ? { kind: "workload", selector: labels } : { kind: "mesh" };
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
  if (f.bool("forwardOriginalToken")) r.forwardOriginalToken = true;
  const out = f.str("outputPayloadToHeader");
  if (out !== undefined) r.outputPayloadToHeader = out;
  f.accept("timeout", "outputClaimToHeaders", "fromCookies");
  f.finish();
  return r;
}

/** Translates one RequestAuthentication; problems are reported with their field paths. */
export function translateRequestAuthentication(obj: KubeObject, opts: TranslateOptions, diags: Diagnostics): RequestAuthentication | null {
  const ref = refOf(obj);
  const namespace = obj.metadata.namespace ?? "default";
  const { errors, sink, run } = collectFieldErrors();
  const spec = run(() => Fields.of(obj.spec ?? {}, "spec", sink, true), undefined);
  if (spec?.has("targetRef") || spec?.has("targetRefs")) {
    diags.warn(ref, "spec.targetRef(s) binds the policy to a gateway or waypoint, which weft does not have: the policy is not applied");
    return null;
  }
  const scope = spec
    ? run(() => scopeOf(spec, namespace, opts), { kind: "namespace" } as PolicyScope)
    : ({ kind: "namespace" } as PolicyScope);
  const jwtRules: JwtRule[] = [];
  for (const rf of spec ? run(() => spec.list("jwtRules"), []) : []) {
    const before = errors.length;
    const rule = run(() => jwtRule(rf, opts), null);
    // Any problem, an unknown key included (a misspelt "audiences" would skip the audience check), drops the rule.
    if (rule && errors.length === before) jwtRules.push(rule);
  }
  spec?.finish();
  for (const e of errors) diags.error(ref, `invalid: ${e}; the rule is dropped (a token of its issuer gets 401)`);
  return {
    key: `${namespace}/${obj.metadata.name}`,
    name: obj.metadata.name,
    namespace,
    scope,
    jwtRules,
    ...(errors.length ? { errors } : {}),
  };
}
