/**
 * Translation: the cluster's Kubernetes objects → the mesh model. Pure (no I/O, no clock), so
 * it is table-tested and the agent's local-file mode runs exactly the controller's code.
 * Invalid objects are reported and skipped (security policy: kept, fail-closed); the rest flows.
 */

import { errorMessage } from "../../common/errors.js";
import type { KubeObject } from "../api/kube-types.js";
import { parseSpiffeId } from "../api/model.js";
import { translateDestinationRule } from "./destination-rule.js";
import { ServiceIndex } from "./hosts.js";
import { translateHttpRoute } from "./http-route.js";
import { translateRateLimitPolicy } from "./rate-limit.js";
import { translateRequestAuthentication } from "./request-auth.js";
import { unknownSubsets } from "./route-checks.js";
import { translateAuthorizationPolicy, translatePeerAuthentication } from "./security.js";
import { type ServiceMemo, slicesByService, translateServices } from "./services.js";
import { translateTelemetry } from "./telemetry.js";
import { type ClusterObjects, Diagnostics, type MeshModel, type RefusedObject, refOf, type TranslateOptions } from "./types.js";
import { translateVirtualService } from "./virtual-service.js";
import { translateWorkloads, type WorkloadMemo } from "./workloads.js";

/** A DNS-1123 subdomain, as Kubernetes requires of Node names. */
const NODE_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Defaults for translation options. */
export const DEFAULT_TRANSLATE_OPTIONS: TranslateOptions = {
  trustDomain: "cluster.local",
  rootNamespace: "weft-system",
  clusterDomain: "cluster.local",
};

function byName(objs: readonly KubeObject[]): Map<string, KubeObject> {
  return new Map(objs.map((o) => [o.metadata.name, o]));
}

/** Node names become token file names and credentials: one Kubernetes would refuse is skipped. */
function validNode(n: KubeObject, diags: Diagnostics): boolean {
  const name = n.metadata?.name;
  if (typeof name === "string" && NODE_NAME.test(name)) return true;
  diags.error(refOf(n), `invalid: metadata.name: '${String(name)}' is not a valid node name (lower-case DNS subdomain); node skipped`);
  return false;
}

function byKey<T extends { key: string }>(items: readonly (T | null)[]): T[] {
  return items.filter((x): x is T => x !== null).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Checks translation options; returns problems naming the option. */
export function validateTranslateOptions(opts: TranslateOptions): string[] {
  const errors: string[] = [];
  if (!parseSpiffeId(`spiffe://${opts.trustDomain}/ns/x/sa/y`) || !/^[a-z0-9.-]+$/.test(opts.trustDomain)) {
    errors.push(`trust-domain '${opts.trustDomain}': expected lower-case letters, digits, '.' and '-'`);
  }
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(opts.rootNamespace))
    errors.push(`root-namespace '${opts.rootNamespace}': not a valid namespace name`);
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(opts.clusterDomain))
    errors.push(`cluster-domain '${opts.clusterDomain}': not a valid domain`);
  return errors;
}

/**
 * Memo of per-object translations across runs (pods and services: the bulk of a cluster). Purely
 * an optimisation: translate() gives the same model with or without it.
 */
export class TranslationMemo {
  readonly workloads: WorkloadMemo = new WeakMap();
  readonly services: ServiceMemo = new WeakMap();
}

/** Translates the cluster's objects into the mesh model (sorted, deterministic). */
export function translate(objects: ClusterObjects, opts: TranslateOptions = DEFAULT_TRANSLATE_OPTIONS, memo?: TranslationMemo): MeshModel {
  const diags = new Diagnostics();
  const namespaces = byName(objects.Namespace);
  const nodes = byName(objects.Node.filter((n) => validNode(n, diags)));
  const workloads = translateWorkloads(objects.Pod, namespaces, nodes, opts, diags, memo?.workloads).sort((a, b) =>
    a.uid < b.uid ? -1 : 1,
  );
  const podsByUid = new Map(objects.Pod.filter((p) => p.metadata.uid).map((p) => [p.metadata.uid as string, p]));
  const services = byKey(
    translateServices(objects.Service, slicesByService(objects.EndpointSlice), podsByUid, opts, diags, memo?.services),
  );
  const index = new ServiceIndex(services, opts.clusterDomain);
  const guard = <T>(o: KubeObject, fn: () => T | null): T | null => {
    try {
      return fn();
    } catch (e) {
      // A bug in one object's translation must not stop the mesh: report it like an invalid object.
      diags.error(refOf(o), `could not be translated: ${errorMessage(e)}`);
      return null;
    }
  };
  const refused: RefusedObject[] = [];
  /** Routing objects are refused whole when invalid; agents list them (weft policies). */
  const routing = <T>(o: KubeObject, fn: () => T | null): T | null => {
    const before = diags.list.length;
    const out = guard(o, fn);
    const errors = diags.list.slice(before).filter((d) => d.severity === "error");
    if (out === null && errors.length)
      refused.push(
        refusedOf(
          o,
          errors.map((d) => d.message),
        ),
      );
    return out;
  };
  const destinationPolicies = byKey(objects.DestinationRule.map((o) => routing(o, () => translateDestinationRule(o, index, diags))));
  const routeObjects = new Map<string, KubeObject>();
  const routes = byKey([
    ...objects.VirtualService.map((o) =>
      routing(o, () => {
        const table = translateVirtualService(o, index, diags);
        if (table) routeObjects.set(table.key, o);
        return table;
      }),
    ),
    ...objects.HTTPRoute.map((o) => routing(o, () => translateHttpRoute(o, index, diags))),
  ]).filter((table) => {
    const o = routeObjects.get(table.key);
    const problems = o ? unknownSubsets(table, destinationPolicies) : [];
    if (!o || problems.length === 0) return true;
    const messages = problems.map((p) => `invalid: ${p.path}: ${p.message}; VirtualService refused`);
    for (const m of messages) diags.error(refOf(o), m);
    refused.push(refusedOf(o, messages));
    return false;
  });
  const tracing = byKey(objects.Telemetry.map((o) => routing(o, () => translateTelemetry(o, opts, diags))));
  return {
    meshConfig: {
      trustDomain: opts.trustDomain,
      rootNamespace: opts.rootNamespace,
      clusterDomain: opts.clusterDomain,
      ...(refused.length
        ? { refused: refused.sort((a, b) => `${a.kind}/${a.namespace}/${a.name}`.localeCompare(`${b.kind}/${b.namespace}/${b.name}`)) }
        : {}),
      ...(tracing.length ? { tracing } : {}),
    },
    workloads,
    services,
    authorizationPolicies: byKey(objects.AuthorizationPolicy.map((o) => guard(o, () => translateAuthorizationPolicy(o, opts, diags)))),
    peerAuthentications: byKey(objects.PeerAuthentication.map((o) => guard(o, () => translatePeerAuthentication(o, opts, diags)))),
    rateLimitPolicies: byKey(objects.RateLimitPolicy.map((o) => guard(o, () => translateRateLimitPolicy(o, opts, diags)))),
    requestAuthentications: byKey(objects.RequestAuthentication.map((o) => guard(o, () => translateRequestAuthentication(o, opts, diags)))),
    routes,
    destinationPolicies,
    nodes: [...nodes.keys()].sort(),
    diagnostics: diags.list,
  };
}

function refusedOf(o: KubeObject, errors: string[]): RefusedObject {
  return { kind: o.kind, namespace: o.metadata.namespace ?? "default", name: o.metadata.name, errors };
}
