/**
 * Checks of security policy against the workloads it meets: selectors that match nothing or only
 * pods outside the mesh, STRICT mTLS with non-mesh pods around, requestPrincipals with no
 * RequestAuthentication, and sources naming namespaces or trust domains that cannot match.
 */
import type { KubeObject } from "../api/kube-types.js";
import type { Workload } from "../api/model.js";
import { refOf } from "../translate/types.js";
import { arr, type CheckContext, matches, nsOf, rec, str } from "./context.js";
import { message, objectName } from "./message.js";

/** Pods a policy applies to (root namespace: every namespace). */
function selected(ctx: CheckContext, o: KubeObject): { workloads: Workload[]; selector?: Record<string, string> } {
  const ns = nsOf(o);
  const selector = rec(rec(rec(o.spec)?.selector)?.matchLabels) as Record<string, string> | undefined;
  const inScope = ctx.model.workloads.filter((w) => ns === ctx.opts.rootNamespace || w.namespace === ns);
  return selector ? { workloads: inScope.filter((w) => matches(selector, w.labels)), selector } : { workloads: inScope };
}

function scopeChecks(ctx: CheckContext, o: KubeObject): void {
  if (ctx.model.workloads.length === 0) return; // no pods in the input: nothing to judge against
  const who = objectName(refOf(o));
  const { workloads, selector } = selected(ctx, o);
  if (selector && workloads.length === 0) {
    ctx.out.push(message("PolicySelectsNoWorkload", who, `spec.selector ${JSON.stringify(selector)} matches no pod in ${nsOf(o)}`));
    return;
  }
  if (workloads.length > 0 && workloads.every((w) => !w.enrolled))
    ctx.out.push(
      message(
        "PolicyOutsideMesh",
        who,
        `applies only to pods outside the mesh (${workloads
          .slice(0, 3)
          .map((w) => `${w.namespace}/${w.name}`)
          .join(", ")}): it is not enforced until their namespace is enrolled`,
      ),
    );
}

function strictChecks(ctx: CheckContext, pa: KubeObject): void {
  const spec = rec(pa.spec);
  const strict =
    str(rec(spec?.mtls)?.mode) === "STRICT" || Object.values(rec(spec?.portLevelMtls) ?? {}).some((m) => str(rec(m)?.mode) === "STRICT");
  if (!strict) return;
  const targets = selected(ctx, pa).workloads.filter((w) => w.enrolled);
  const outside = ctx.model.workloads.filter((w) => !w.enrolled);
  if (targets.length === 0 || outside.length === 0) return;
  ctx.out.push(
    message(
      "StrictWithPlaintextClients",
      objectName(refOf(pa)),
      `STRICT mTLS on ${targets.length} pod(s) while ${outside.length} pod(s) outside the mesh (${outside
        .slice(0, 3)
        .map((w) => `${w.namespace}/${w.name}`)
        .join(", ")}) would be refused if they call them; enrol them or use PERMISSIVE`,
    ),
  );
}

/** Does an AuthorizationPolicy read request principals (JWT)? */
function usesRequestPrincipals(spec: Record<string, unknown> | undefined): boolean {
  for (const r of arr(spec?.rules)) {
    for (const f of arr(rec(r)?.from)) {
      const s = rec(rec(f)?.source);
      if (arr(s?.requestPrincipals).length || arr(s?.notRequestPrincipals).length) return true;
    }
    if (arr(rec(r)?.when).some((c) => (str(rec(c)?.key) ?? "").startsWith("request.auth."))) return true;
  }
  return false;
}

function sourceChecks(ctx: CheckContext, ap: KubeObject): void {
  const who = objectName(refOf(ap));
  const spec = rec(ap.spec);
  if (ctx.readsRequestAuthentications && usesRequestPrincipals(spec)) {
    const ns = nsOf(ap);
    const has = ctx.requestAuthentications.some((ra) => nsOf(ra) === ns || nsOf(ra) === ctx.opts.rootNamespace);
    if (!has)
      ctx.out.push(
        message(
          "RequestPrincipalsWithoutAuthentication",
          who,
          `uses requestPrincipals/request.auth.* but no RequestAuthentication exists in ${ns} or ${ctx.opts.rootNamespace}: those rules never match`,
        ),
      );
  }
  for (const [i, r] of arr(spec?.rules).entries()) {
    for (const [j, f] of arr(rec(r)?.from).entries()) {
      const s = rec(rec(f)?.source);
      const path = `spec.rules[${i}].from[${j}].source`;
      if (ctx.namespaces)
        for (const n of [...arr(s?.namespaces), ...arr(s?.notNamespaces)].map(str)) {
          if (n && !n.includes("*") && !ctx.namespaces.has(n))
            ctx.out.push(message("UnknownSourceNamespace", who, `${path}: namespace '${n}' does not exist`));
        }
      for (const p of [...arr(s?.principals), ...arr(s?.notPrincipals)].map(str)) {
        if (!p || p.startsWith("*")) continue;
        const td = p.replace(/^spiffe:\/\//, "").split("/")[0];
        if (td && td !== ctx.opts.trustDomain && p.includes("/ns/"))
          ctx.out.push(
            message(
              "ForeignTrustDomain",
              who,
              `${path}: principal '${p}' is in trust domain '${td}', not '${ctx.opts.trustDomain}': it never matches`,
            ),
          );
      }
    }
  }
}

/** Runs the security checks. */
export function checkSecurity(ctx: CheckContext): void {
  for (const ap of ctx.objects.AuthorizationPolicy) {
    scopeChecks(ctx, ap);
    sourceChecks(ctx, ap);
  }
  for (const pa of ctx.objects.PeerAuthentication) {
    scopeChecks(ctx, pa);
    strictChecks(ctx, pa);
  }
}

/** Enrolled pods on nodes without an agent, and objects in namespaces that do not exist. */
export function checkMesh(ctx: CheckContext): void {
  if (ctx.agentNodes) {
    const missing = new Map<string, Workload[]>();
    for (const w of ctx.model.workloads)
      if (w.enrolled && w.node && !ctx.agentNodes.has(w.node)) missing.set(w.node, [...(missing.get(w.node) ?? []), w]);
    for (const [node, ws] of missing) {
      const nss = [...new Set(ws.map((w) => w.namespace))].sort();
      for (const ns of nss)
        ctx.out.push(
          message(
            "NodeWithoutAgent",
            `Namespace ${ns}`,
            `is enrolled but node ${node} runs its pods (${ws
              .filter((w) => w.namespace === ns)
              .map((w) => w.name)
              .join(", ")}) and no agent is connected from it: their traffic is not meshed`,
          ),
        );
    }
  }
  if (!ctx.namespaces) return;
  const kinds = ["Pod", "Service", "AuthorizationPolicy", "PeerAuthentication", "VirtualService", "DestinationRule", "HTTPRoute"] as const;
  for (const k of kinds)
    for (const o of ctx.objects[k])
      if (!ctx.namespaces.has(nsOf(o)))
        ctx.out.push(message("NamespaceNotFound", objectName(refOf(o)), `namespace '${nsOf(o)}' does not exist`));
}
