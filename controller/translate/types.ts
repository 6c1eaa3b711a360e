/** Inputs and outputs of translation: Kubernetes objects in, the mesh model and diagnostics out. */
import type { KubeObject } from "../api/kube-types.js";
import type {
  AuthorizationPolicy,
  DestinationPolicy,
  PeerAuthentication,
  RateLimitPolicy,
  RequestAuthentication,
  RouteTable,
  Service,
  Workload,
} from "../api/model.js";
import type { MeshConfig, RefusedObject } from "../api/wire-types.js";

export type { RefusedObject };

/** The kinds translation reads. */
export const SOURCE_KINDS = [
  "Namespace",
  "Node",
  "Pod",
  "Service",
  "EndpointSlice",
  "AuthorizationPolicy",
  "PeerAuthentication",
  "RequestAuthentication",
  "RateLimitPolicy",
  "Telemetry",
  "VirtualService",
  "DestinationRule",
  "HTTPRoute",
] as const;

/** A kind translation reads. */
export type SourceKind = (typeof SOURCE_KINDS)[number];

/** Everything the sources hold, by kind. */
export type ClusterObjects = { readonly [K in SourceKind]: readonly KubeObject[] };

/** Settings translation needs. */
export interface TranslateOptions {
  trustDomain: string;
  /** Namespace whose policies apply mesh-wide. */
  rootNamespace: string;
  /** Kubernetes cluster domain (service hostnames end in .svc.<clusterDomain>). */
  clusterDomain: string;
}

/** Which object a diagnostic is about. */
export interface ObjectRef {
  kind: string;
  apiVersion: string;
  namespace?: string;
  name: string;
  uid?: string;
  generation?: number;
}

/**
 * A problem found in an object. "error": the object is invalid (the rest of the mesh still
 * flows): routing and cluster objects are skipped, security policies are enforced in a stricter
 * fail-closed form, as the message says. "warning": part of it is not supported and is ignored
 * (or, for authorization, handled fail-closed, as the message says).
 */
export interface Diagnostic {
  ref: ObjectRef;
  severity: "error" | "warning";
  message: string;
}

/** The result of one translation. */
export interface MeshModel {
  meshConfig: MeshConfig;
  workloads: Workload[];
  services: Service[];
  authorizationPolicies: AuthorizationPolicy[];
  peerAuthentications: PeerAuthentication[];
  /** Optional only so hand-built models (tests, fixtures) written before JWT stay valid. */
  requestAuthentications?: RequestAuthentication[];
  rateLimitPolicies?: RateLimitPolicy[];
  routes: RouteTable[];
  destinationPolicies: DestinationPolicy[];
  /** Names of the cluster's nodes (the controller mints a credential per node). */
  nodes: string[];
  diagnostics: Diagnostic[];
}

/** A reference to an object, for diagnostics. */
export function refOf(o: KubeObject): ObjectRef {
  const ref: ObjectRef = { kind: o.kind, apiVersion: o.apiVersion, name: o.metadata?.name ?? "(unnamed)" };
  if (o.metadata?.namespace) ref.namespace = o.metadata.namespace;
  if (o.metadata?.uid) ref.uid = o.metadata.uid;
  if (typeof o.metadata?.generation === "number") ref.generation = o.metadata.generation;
  return ref;
}

/** "Kind ns/name" for log lines. */
export function describeRef(ref: ObjectRef): string {
  return `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ""}${ref.name}`;
}

/** Collects diagnostics during one translation. */
export class Diagnostics {
  readonly list: Diagnostic[] = [];

  /** The object is invalid (skipped, or for security policy enforced fail-closed). */
  error(ref: ObjectRef, message: string): void {
    this.list.push({ ref, severity: "error", message });
  }

  /** Part of the object is unsupported or suspicious. */
  warn(ref: ObjectRef, message: string): void {
    this.list.push({ ref, severity: "warning", message });
  }
}
