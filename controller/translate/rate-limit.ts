/**
 * weft.dev/v1alpha1 RateLimitPolicy → the model (schema: daemonset/crds/ratelimitpolicy.yaml).
 * Local rate limiting at the destination's proxy, after Linkerd's HTTPLocalRateLimitPolicy: a
 * total bucket shared by all clients of each selected workload, a bucket per client identity,
 * and per-identity overrides that replace the per-client bucket for the clients they name. A
 * limit that cannot be read is reported with its field path and left out; the policy's other
 * limits stay in force.
 */
import type { KubeObject } from "../api/kube-types.js";
import type { PolicyScope, RateLimit, RateLimitOverride, RateLimitPolicy } from "../api/model.js";
import { collectFieldErrors, Fields, InvalidField } from "./fields.js";
import { type Diagnostics, refOf, type TranslateOptions } from "./types.js";

/** Bound on any one bucket, so a typo cannot ask for an absurd allocation or rate. */
const MAX_RPS = 1_000_000;

function limit(f: Fields): RateLimit {
  const rps = f.num("requestsPerSecond", 0, MAX_RPS);
  if (rps === undefined || rps <= 0) throw new InvalidField(f.at("requestsPerSecond"), "a positive number is required");
  const burst = f.int("burst", 1, MAX_RPS) ?? Math.max(1, Math.ceil(rps));
  f.finish();
  return { requestsPerSecond: rps, burst };
}

/** Translates one RateLimitPolicy; null when it binds to something weft does not have. */
export function translateRateLimitPolicy(obj: KubeObject, opts: TranslateOptions, diags: Diagnostics): RateLimitPolicy | null {
  const ref = refOf(obj);
  const namespace = obj.metadata.namespace ?? "default";
  const { errors, sink, run } = collectFieldErrors();
  const spec = run(() => Fields.of(obj.spec ?? {}, "spec", sink, true), undefined);
  let scope: PolicyScope = namespace === opts.rootNamespace ? { kind: "mesh" } : { kind: "namespace" };
  const out: RateLimitPolicy = { key: `${namespace}/${obj.metadata.name}`, name: obj.metadata.name, namespace, scope, overrides: [] };
  if (spec) {
    const sel = run(() => spec.obj("selector"), undefined);
    const labels = sel ? run(() => sel.map("matchLabels"), undefined) : undefined;
    sel?.finish();
    if (labels && Object.keys(labels).length > 0) scope = { kind: "workload", selector: labels };
    out.scope = scope;
    const total = run(() => spec.obj("total"), undefined);
    if (total) {
      const l = run(() => limit(total), undefined);
      if (l) out.total = l;
    }
    const per = run(() => spec.obj("perClient"), undefined);
    if (per) {
      const l = run(() => limit(per), undefined);
      if (l) out.perClient = l;
    }
    for (const o of run(() => spec.list("overrides"), [])) {
      const clients = run(() => o.strList("clients"), []).map((c) => c.replace(/^spiffe:\/\//, ""));
      const lf = run(() => o.obj("limit"), undefined);
      const l = lf ? run(() => limit(lf), undefined) : undefined;
      o.finish();
      if (clients.length === 0) errors.push(`${o.at("clients")}: at least one client identity is required`);
      else if (!l) errors.push(`${o.at("limit")}: a limit is required`);
      else out.overrides.push({ clients, limit: l } satisfies RateLimitOverride);
    }
    spec.finish();
  }
  if (!out.total && !out.perClient && out.overrides.length === 0 && errors.length === 0)
    diags.warn(ref, "sets no limit (total, perClient or overrides): it has no effect");
  for (const e of errors) diags.error(ref, `invalid: ${e}; that limit is left out`);
  return errors.length ? { ...out, errors } : out;
}
