/**
 * The Kubernetes object shapes weft reads, whether from the API server or the local file store.
 * Only the fields weft uses are typed; everything else passes through untouched.
 */

/** metadata common to every object. */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Set while the object is being deleted (a terminating pod). */
  deletionTimestamp?: string;
  /** Controllers owning the object (a pod's ReplicaSet, StatefulSet, Job…). */
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid?: string; controller?: boolean }[];
}

/** Any Kubernetes object. */
export interface KubeObject<Spec = unknown, Status = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: Spec;
  status?: Status;
}

/** Pod fields weft uses. */
export interface PodSpec {
  nodeName?: string;
  serviceAccountName?: string;
  hostNetwork?: boolean;
  containers?: { name: string; ports?: { name?: string; containerPort: number; protocol?: string }[] }[];
}

/** Pod status fields weft uses. */
export interface PodStatus {
  phase?: string;
  podIP?: string;
  podIPs?: { ip: string }[];
  hostIP?: string;
  conditions?: { type: string; status: string }[];
}

/** Service spec fields weft uses. */
export interface ServiceSpec {
  type?: string;
  clusterIP?: string;
  clusterIPs?: string[];
  selector?: Record<string, string>;
  ports?: { name?: string; port: number; targetPort?: number | string; protocol?: string; appProtocol?: string }[];
}

/** discovery.k8s.io/v1 EndpointSlice (fields are top level, not under spec). */
export interface EndpointSlice extends KubeObject<never, never> {
  addressType: "IPv4" | "IPv6" | "FQDN";
  endpoints: {
    addresses: string[];
    conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
    nodeName?: string;
    targetRef?: { kind: string; name: string; namespace?: string; uid?: string };
  }[];
  ports?: { name?: string; port: number; protocol?: string; appProtocol?: string }[];
}

/** Node fields weft uses. */
export interface NodeStatus {
  addresses?: { type: string; address: string }[];
}

/** Node spec fields weft uses. */
export interface NodeSpec {
  podCIDR?: string;
  podCIDRs?: string[];
}

/** Label keys with meaning to weft. */
export const LABELS = {
  /** Namespace label `weft.dev/mesh=enabled` enrols; pod label `weft.dev/mesh=disabled` opts out. */
  mesh: "weft.dev/mesh",
  /** Istio ambient's namespace label, honoured the same way. */
  istioDataplaneMode: "istio.io/dataplane-mode",
  /** Label EndpointSlices carry to name their Service. */
  serviceName: "kubernetes.io/service-name",
} as const;
