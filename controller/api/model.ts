/**
 * The mesh model: what the controller computes from its sources and pushes to agents, and what
 * the agent's proxy reads. Plain data only (no classes, no Maps), so a snapshot can be cloned to
 * proxy worker threads and dumped by the admin API as it is.
 */

/** Default SPIFFE trust domain. */
export const DEFAULT_TRUST_DOMAIN = "cluster.local";

/** A pod, as the mesh sees it. */
export interface Workload {
  /** Kubernetes pod uid. */
  uid: string;
  name: string;
  namespace: string;
  serviceAccount: string;
  /** spiffe://<trust-domain>/ns/<namespace>/sa/<serviceAccount> */
  identity: string;
  /** Pod IPs (IPv4 first). */
  addresses: string[];
  /** Node name (spec.nodeName). */
  node: string;
  /** Where the node's HBONE listener (15008) is reached: the node's InternalIP (status.hostIP). */
  nodeAddress: string;
  labels: Record<string, string>;
  /** Workload name for telemetry (owning Deployment etc., else the pod name). */
  workloadName: string;
  /** Istio's canonical service name (service.istio.io/canonical-name, app.kubernetes.io/name, app, else workloadName). */
  canonicalName: string;
  /** Istio's canonical revision (service.istio.io/canonical-revision, app.kubernetes.io/version, version, else "latest"). */
  canonicalRevision: string;
  /** In the mesh: its connections are captured and it is reached over HBONE. */
  enrolled: boolean;
  /** Why enrolled or not, for operators ("namespace shop has weft.dev/mesh=enabled"). */
  enrolmentReason: string;
  /** Ready to receive traffic. */
  ready: boolean;
}

/** Application protocol of a service port (from appProtocol or the port name). */
export type AppProtocol = "tcp" | "http" | "http2" | "grpc";

/** A port of a service. */
export interface ServicePort {
  name?: string;
  port: number;
  /** Endpoint port (EndpointSlice port matched by name, else the Service's numeric targetPort). */
  targetPort: number;
  appProtocol: AppProtocol;
}

/** One backend of a service. */
export interface Endpoint {
  workloadUid: string;
  address: string;
  ready: boolean;
}

/** A Kubernetes Service. */
export interface Service {
  /** "<namespace>/<name>" */
  key: string;
  name: string;
  namespace: string;
  /** <name>.<namespace>.svc.<cluster domain> */
  hostname: string;
  vips: string[];
  ports: ServicePort[];
  endpoints: Endpoint[];
}

/** Which workloads a policy applies to. */
export interface PolicyScope {
  /** "mesh" for the root namespace, "namespace" without selector, "workload" with one. */
  kind: "mesh" | "namespace" | "workload";
  /** matchLabels of spec.selector (workload scope). */
  selector?: Record<string, string>;
}

/** security.istio.io AuthorizationPolicy source (all present fields must match). */
export interface AuthzSource {
  principals?: string[];
  notPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
}

/** AuthorizationPolicy operation; methods/paths/hosts are L7 and need an HTTP-aware path. */
export interface AuthzOperation {
  ports?: number[];
  notPorts?: number[];
  hosts?: string[];
  notHosts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}

/** AuthorizationPolicy condition (`when`). */
export interface AuthzCondition {
  key: string;
  values?: string[];
  notValues?: string[];
}

/** One rule: any `from` matches AND any `to` matches AND every `when` matches (missing = any). */
export interface AuthzRule {
  from: AuthzSource[];
  to: AuthzOperation[];
  when: AuthzCondition[];
}

/** A validated AuthorizationPolicy. */
export interface AuthorizationPolicy {
  /** "<namespace>/<name>" */
  key: string;
  name: string;
  namespace: string;
  scope: PolicyScope;
  action: "ALLOW" | "DENY" | "AUDIT";
  /** ALLOW with no rules allows nothing; a rule {} matches everything (Istio semantics). */
  rules: AuthzRule[];
}

/** mTLS mode of PeerAuthentication. */
export type MtlsMode = "STRICT" | "PERMISSIVE" | "DISABLE" | "UNSET";

/** A validated PeerAuthentication. */
export interface PeerAuthentication {
  key: string;
  name: string;
  namespace: string;
  scope: PolicyScope;
  mode: MtlsMode;
  /** Per-port overrides (workload scope only, as in Istio). */
  portLevelMtls: Record<string, MtlsMode>;
}

/** Everything an agent holds: the unit the state updater publishes. */
export interface MeshSnapshotData {
  /** Changes whenever any resource changes (the last ACKed version per type, joined). */
  version: string;
  /** This agent's node. */
  nodeName: string;
  trustDomain: string;
  /** Namespace whose policies apply mesh-wide (Istio's istio-system; weft's weft-system). */
  rootNamespace: string;
  workloads: Workload[];
  services: Service[];
  authorizationPolicies: AuthorizationPolicy[];
  peerAuthentications: PeerAuthentication[];
}

/** SPIFFE id of a service account. */
export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** Parses a SPIFFE id of the ns/sa form; null when it is not one. */
export function parseSpiffeId(id: string): { trustDomain: string; namespace: string; serviceAccount: string } | null {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id);
  if (!m) return null;
  return { trustDomain: m[1] as string, namespace: m[2] as string, serviceAccount: m[3] as string };
}
