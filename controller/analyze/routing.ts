/**
 * Checks across routing objects that translating each object alone cannot make: two route
 * objects for one host, destinations on ports the Service lacks, HTTP routes on ports that
 * declare no protocol, two DestinationRules for one host, and subsets that select no pod.
 */
import type { KubeObject } from "../api/kube-types.js";
import type { Service } from "../api/model.js";
import { refOf } from "../translate/types.js";
import { arr, backends, type CheckContext, matches, nsOf, rec, str } from "./context.js";
import { message, objectName } from "./message.js";

function meshBound(vs: KubeObject): boolean {
  const gateways = arr(rec(vs.spec)?.gateways);
  return gateways.length === 0 || gateways.includes("mesh");
}

/** Services a VirtualService's or HTTPRoute's spec names as the hosts it routes. */
function routedServices(ctx: CheckContext, o: KubeObject): Service[] {
  const spec = rec(o.spec);
  const out: Service[] = [];
  if (o.kind === "VirtualService") {
    if (!meshBound(o)) return out;
    for (const h of arr(spec?.hosts)) {
      const host = str(h);
      if (!host) continue;
      if (host.startsWith("*")) out.push(...ctx.index.wildcard(host));
      else {
        const s = ctx.index.resolve(host, nsOf(o));
        if (s) out.push(s);
      }
    }
  } else {
    for (const p of arr(spec?.parentRefs)) {
      const ref = rec(p);
      const name = str(ref?.name);
      if (str(ref?.kind) !== "Service" || !name) continue;
      const s = ctx.index.resolve(`${name}.${str(ref?.namespace) ?? nsOf(o)}`, nsOf(o));
      if (s) out.push(s);
    }
  }
  return out;
}

/** Two route objects for one host: which one applies depends on ordering, so say so. */
function conflictingRoutes(ctx: CheckContext): void {
  const owners = new Map<string, KubeObject[]>();
  for (const o of [...ctx.objects.VirtualService, ...ctx.objects.HTTPRoute]) {
    for (const s of new Set(routedServices(ctx, o))) owners.set(s.hostname, [...(owners.get(s.hostname) ?? []), o]);
  }
  for (const [host, objs] of owners) {
    if (objs.length < 2) continue;
    const names = objs.map((o) => objectName(refOf(o)));
    for (const o of objs)
      ctx.out.push(
        message(
          "ConflictingRoutes",
          objectName(refOf(o)),
          `host ${host} is routed by ${names.join(" and ")}: only one applies; merge them`,
        ),
      );
  }
}

interface DestinationUse {
  path: string;
  host: string;
  port?: number;
  http: boolean;
}

/** Every destination a VirtualService names, with whether it is an HTTP route. */
function vsDestinations(vs: KubeObject): DestinationUse[] {
  const spec = rec(vs.spec);
  const out: DestinationUse[] = [];
  for (const section of ["http", "tcp", "tls"] as const) {
    for (const [i, r] of arr(spec?.[section]).entries()) {
      for (const [j, d] of arr(rec(r)?.route).entries()) {
        const dest = rec(rec(d)?.destination);
        const host = str(dest?.host);
        if (!host) continue;
        const port = rec(dest?.port)?.number;
        out.push({
          path: `spec.${section}[${i}].route[${j}].destination`,
          host,
          ...(typeof port === "number" ? { port } : {}),
          http: section === "http",
        });
      }
    }
  }
  return out;
}

function portChecks(ctx: CheckContext): void {
  for (const vs of ctx.objects.VirtualService) {
    if (!meshBound(vs)) continue;
    const who = objectName(refOf(vs));
    for (const d of vsDestinations(vs)) {
      const svc = ctx.index.resolve(d.host, nsOf(vs));
      if (!svc) continue; // translation reports the unknown host
      if (d.port !== undefined && !svc.ports.some((p) => p.port === d.port)) {
        const have = svc.ports.map((p) => p.port).join(", ") || "none";
        ctx.out.push(message("DestinationPortNotFound", who, `${d.path}.port: Service ${svc.key} has no port ${d.port} (it has ${have})`));
        continue;
      }
      if (!d.http) continue;
      const used = d.port === undefined ? svc.ports : svc.ports.filter((p) => p.port === d.port);
      for (const p of used.filter((x) => x.appProtocol === "auto"))
        ctx.out.push(
          message(
            "PortWithoutProtocol",
            who,
            `${d.path}: HTTP route to Service ${svc.key} port ${p.port}${p.name ? ` ('${p.name}')` : ""}, which declares no protocol: name it http-… or set appProtocol: http`,
          ),
        );
    }
  }
  for (const hr of ctx.objects.HTTPRoute) {
    for (const [i, rule] of arr(rec(hr.spec)?.rules).entries()) {
      for (const [j, b] of arr(rec(rule)?.backendRefs).entries()) {
        const ref = rec(b);
        const name = str(ref?.name);
        const port = ref?.port;
        if (!name || (str(ref?.kind) ?? "Service") !== "Service") continue;
        const svc = ctx.index.resolve(`${name}.${str(ref?.namespace) ?? nsOf(hr)}`, nsOf(hr));
        if (svc && typeof port === "number" && !svc.ports.some((p) => p.port === port))
          ctx.out.push(
            message(
              "DestinationPortNotFound",
              objectName(refOf(hr)),
              `spec.rules[${i}].backendRefs[${j}].port: Service ${svc.key} has no port ${port}`,
            ),
          );
      }
    }
  }
}

function destinationRuleChecks(ctx: CheckContext): void {
  const byHost = new Map<string, KubeObject[]>();
  for (const dr of ctx.objects.DestinationRule) {
    const spec = rec(dr.spec);
    const host = str(spec?.host);
    if (!host || host.startsWith("*")) continue;
    const svc = ctx.index.resolve(host, nsOf(dr));
    if (!svc) continue; // translation reports the unknown host
    byHost.set(svc.hostname, [...(byHost.get(svc.hostname) ?? []), dr]);
    const pods = backends(ctx, svc);
    if (pods.length === 0) continue; // nothing to judge subsets against
    for (const [i, s] of arr(spec?.subsets).entries()) {
      const labels = rec(rec(s)?.labels) as Record<string, string> | undefined;
      if (!labels || pods.some((w) => matches(labels, w.labels))) continue;
      ctx.out.push(
        message(
          "SubsetSelectsNoPod",
          objectName(refOf(dr)),
          `spec.subsets[${i}] '${str(rec(s)?.name) ?? ""}': labels ${JSON.stringify(labels)} match none of Service ${svc.key}'s ${pods.length} pod(s)`,
        ),
      );
    }
  }
  for (const [host, drs] of byHost) {
    if (drs.length < 2) continue;
    const names = drs.map((o) => objectName(refOf(o)));
    for (const o of drs)
      ctx.out.push(
        message(
          "ConflictingDestinationRules",
          objectName(refOf(o)),
          `host ${host} has ${names.join(" and ")}: only one applies; merge them`,
        ),
      );
  }
}

/** Runs the routing checks. */
export function checkRouting(ctx: CheckContext): void {
  conflictingRoutes(ctx);
  portChecks(ctx);
  destinationRuleChecks(ctx);
}
