/**
 * telemetry.istio.io Telemetry → tracing settings. weft reads the tracing sampling percentage
 * (spec.tracing[0].randomSamplingPercentage) with Istio's scoping: the root namespace sets the
 * mesh default, a Telemetry without selector its namespace's, one with a selector its workloads'.
 * An object that cannot be read is refused whole, with each problem's field path: it then
 * changes nothing, and the broader scope (or the agent's --tracing-sampling) stays in force.
 */
import type { KubeObject } from "../api/kube-types.js";
import type { TracingPolicy } from "../api/model.js";
import { Fields, InvalidField } from "./fields.js";
import { type Diagnostics, refOf, type TranslateOptions } from "./types.js";

/** Translates one Telemetry; null when it is invalid (reported) and so has no effect. */
export function translateTelemetry(obj: KubeObject, opts: TranslateOptions, diags: Diagnostics): TracingPolicy | null {
  const ref = refOf(obj);
  const namespace = obj.metadata.namespace ?? "default";
  const errors: string[] = [];
  const warn = (path: string, note: string) => diags.warn(ref, `${path} ${note}`);
  const out: TracingPolicy = {
    key: `${namespace}/${obj.metadata.name}`,
    name: obj.metadata.name,
    namespace,
    scope: namespace === opts.rootNamespace ? { kind: "mesh" } : { kind: "namespace" },
    createdAt: obj.metadata.creationTimestamp ?? "",
  };
  try {
    const spec = Fields.of(obj.spec ?? {}, "spec", warn);
    const sel = spec.obj("selector");
    const labels = sel?.map("matchLabels");
    sel?.finish();
    if (labels && Object.keys(labels).length > 0) {
      // Istio rejects it too: the root namespace holds only the mesh-wide default.
      if (out.scope.kind === "mesh")
        errors.push(`${spec.at("selector")}: not valid in the root namespace (${namespace}); put it in the workload's namespace`);
      out.scope = { kind: "workload", selector: labels };
    }
    for (const k of ["targetRef", "targetRefs"]) {
      // Ignoring a target would widen the object to its whole namespace.
      if (spec.has(k)) errors.push(`${spec.at(k)}: not supported by weft (use selector)`);
      spec.accept(k);
    }
    spec.unsupported("metrics", "is not supported (weft's metrics are fixed, Istio's standard set); ignored");
    spec.unsupported("accessLogging", "is not supported (weft's proxies always write access logs); ignored");
    const tracing = spec.list("tracing");
    if (tracing.length > 1) errors.push(`${spec.at("tracing")}: only one tracing entry is supported (as in Istio), got ${tracing.length}`);
    const t = tracing[0];
    if (t) {
      const pct = t.num("randomSamplingPercentage", 0, 100);
      if (pct !== undefined) out.samplingPercentage = pct;
      t.unsupported("providers", "is not supported: spans go to the collector given by the agents' --tracing-endpoint; ignored");
      for (const k of ["match", "customTags", "disableSpanReporting", "useRequestIdForTraceSampling", "enableIstioTags"]) t.unsupported(k);
      t.finish();
    }
    spec.finish();
  } catch (e) {
    if (!(e instanceof InvalidField)) throw e;
    errors.push(e.message);
  }
  if (errors.length) {
    for (const e of errors) diags.error(ref, `invalid: ${e}; Telemetry refused`);
    return null;
  }
  if (out.samplingPercentage === undefined) diags.warn(ref, "sets no tracing.randomSamplingPercentage: it changes nothing weft reads");
  return out;
}
