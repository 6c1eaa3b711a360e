/** The Kubernetes kinds weft reads: their API groups, served versions (preferred first) and plurals. */
import type { SourceKind } from "../translate/types.js";

/** Where a kind lives in the Kubernetes API. */
export interface KindInfo {
  /** API group ("" for core). */
  group: string;
  /** Versions weft understands, preferred first. */
  versions: readonly string[];
  plural: string;
  namespaced: boolean;
}

/** Every kind translation reads. */
export const KIND_INFO: Readonly<Record<SourceKind, KindInfo>> = {
  Namespace: { group: "", versions: ["v1"], plural: "namespaces", namespaced: false },
  Node: { group: "", versions: ["v1"], plural: "nodes", namespaced: false },
  Pod: { group: "", versions: ["v1"], plural: "pods", namespaced: true },
  Service: { group: "", versions: ["v1"], plural: "services", namespaced: true },
  EndpointSlice: { group: "discovery.k8s.io", versions: ["v1"], plural: "endpointslices", namespaced: true },
  AuthorizationPolicy: { group: "security.istio.io", versions: ["v1", "v1beta1"], plural: "authorizationpolicies", namespaced: true },
  PeerAuthentication: { group: "security.istio.io", versions: ["v1", "v1beta1"], plural: "peerauthentications", namespaced: true },
  RequestAuthentication: { group: "security.istio.io", versions: ["v1", "v1beta1"], plural: "requestauthentications", namespaced: true },
  RateLimitPolicy: { group: "weft.dev", versions: ["v1alpha1"], plural: "ratelimitpolicies", namespaced: true },
  Telemetry: { group: "telemetry.istio.io", versions: ["v1", "v1alpha1"], plural: "telemetries", namespaced: true },
  VirtualService: { group: "networking.istio.io", versions: ["v1", "v1beta1", "v1alpha3"], plural: "virtualservices", namespaced: true },
  DestinationRule: { group: "networking.istio.io", versions: ["v1", "v1beta1", "v1alpha3"], plural: "destinationrules", namespaced: true },
  HTTPRoute: { group: "gateway.networking.k8s.io", versions: ["v1", "v1beta1"], plural: "httproutes", namespaced: true },
};

/** The kind an apiVersion/kind pair is, or why weft does not read it. */
export function classify(apiVersion: unknown, kind: unknown): { kind: SourceKind } | { error: string } {
  if (typeof apiVersion !== "string" || typeof kind !== "string") return { error: "missing apiVersion or kind" };
  const info = KIND_INFO[kind as SourceKind];
  const slash = apiVersion.lastIndexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  if (!info || info.group !== group) return { error: `kind ${kind} (${apiVersion}) is not one weft reads; ignored` };
  if (!info.versions.includes(version)) {
    return {
      error: `${kind} version ${apiVersion} is not supported (use ${info.versions.map((v) => (group ? `${group}/${v}` : v)).join(" or ")})`,
    };
  }
  return { kind: kind as SourceKind };
}

/** Store key of an object: kind, namespace and name. */
export function objectKey(kind: SourceKind, namespace: string | undefined, name: string): string {
  return `${kind}/${namespace ?? ""}/${name}`;
}
