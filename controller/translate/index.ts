/**
 * Translation: the cluster's Kubernetes objects → the mesh model. Pure (no I/O, no clock), so
 * it is table-tested and the agent's local-file mode runs exactly the controller's code.
 * Invalid objects are reported and skipped; everything else still flows.
 */

import { errorMessage } from "../../common/errors.js";
import type { KubeObject } from "../api/kube-types.js";
import { parseSpiffeId } from "../api/model.js";
import { translateDestinationRule } from "./destination-rule.js";
import { ServiceIndex } from "./hosts.js";
import { translateHttpRoute } from "./http-route.js";
import { translateAuthorizationPolicy, translatePeerAuthentication } from "./security.js";
import { type ServiceMemo, slicesByService, translateServices } from "./services.js";
import { type ClusterObjects, Diagnostics, type MeshModel, refOf, type TranslateOptions } from "./types.js";
import { translateVirtualService } from "./virtual-service.js";
import { translateWorkloads, type WorkloadMemo } from "./workloads.js";

/** Defaults for translation options. */
export const DEFAULT_TRANSLATE_OPTIONS: TranslateOptions = {
  trustDomain: "cluster.local",
  rootNamespace: "weft-system",
  clusterDomain: "cluster.local",
};

function byName(objs: readonly KubeObject[]): Map<string, KubeObject> {
  return new Map(objs.map((o) => [o.metadata.name, o]));
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
  const nodes = byName(objects.Node);
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
  return {
    meshConfig: { trustDomain: opts.trustDomain, rootNamespace: opts.rootNamespace, clusterDomain: opts.clusterDomain },
    workloads,
    services,
    authorizationPolicies: byKey(objects.AuthorizationPolicy.map((o) => guard(o, () => translateAuthorizationPolicy(o, opts, diags)))),
    peerAuthentications: byKey(objects.PeerAuthentication.map((o) => guard(o, () => translatePeerAuthentication(o, opts, diags)))),
    routes: byKey([
      ...objects.VirtualService.map((o) => guard(o, () => translateVirtualService(o, index, diags))),
      ...objects.HTTPRoute.map((o) => guard(o, () => translateHttpRoute(o, index, diags))),
    ]),
    destinationPolicies: byKey(objects.DestinationRule.map((o) => guard(o, () => translateDestinationRule(o, index, diags)))),
    nodes: [...nodes.keys()].sort(),
    diagnostics: diags.list,
  };
}
