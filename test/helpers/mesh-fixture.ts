/** Building MeshSnapshotData for tests without a controller. */
import type { AuthorizationPolicy, MeshSnapshotData, Service, Workload } from "../../controller/api/model.js";
import { spiffeId } from "../../controller/api/model.js";

/** A workload with sensible defaults. */
export function workload(p: {
  name: string;
  ns?: string;
  sa?: string;
  ip: string;
  node: string;
  nodeAddress: string;
  enrolled?: boolean;
  labels?: Record<string, string>;
}): Workload {
  const ns = p.ns ?? "default";
  const sa = p.sa ?? p.name;
  return {
    uid: `uid-${ns}-${p.name}`,
    name: p.name,
    namespace: ns,
    serviceAccount: sa,
    identity: spiffeId("cluster.local", ns, sa),
    addresses: [p.ip],
    node: p.node,
    nodeAddress: p.nodeAddress,
    labels: p.labels ?? { app: p.name },
    workloadName: p.name,
    canonicalName: p.name,
    canonicalRevision: "v1",
    enrolled: p.enrolled ?? true,
    enrolmentReason: "test fixture",
    ready: true,
  };
}

/** A service over workloads. */
export function service(name: string, ns: string, vip: string, port: number, targetPort: number, backends: Workload[]): Service {
  return {
    key: `${ns}/${name}`,
    name,
    namespace: ns,
    hostname: `${name}.${ns}.svc.cluster.local`,
    vips: [vip],
    ports: [{ port, targetPort, appProtocol: "tcp" }],
    endpoints: backends.map((w) => ({ workloadUid: w.uid, address: w.addresses[0] as string, ready: true })),
  };
}

/** A snapshot for one node. */
export function snapshot(
  nodeName: string,
  workloads: Workload[],
  services: Service[] = [],
  authorizationPolicies: AuthorizationPolicy[] = [],
  version = "1",
): MeshSnapshotData {
  return {
    version,
    nodeName,
    trustDomain: "cluster.local",
    rootNamespace: "weft-system",
    workloads,
    services,
    authorizationPolicies,
    peerAuthentications: [],
  };
}
