/** Kubernetes objects for control-plane tests, in the shapes the local cluster's store writes. */
import type { KubeObject } from "../../controller/api/kube-types.js";
import type { ClusterObjects, SourceKind } from "../../controller/translate/types.js";
import { SOURCE_KINDS } from "../../controller/translate/types.js";

/** A Namespace. */
export function namespace(name: string, labels: Record<string, string> = {}): KubeObject {
  return { apiVersion: "v1", kind: "Namespace", metadata: { name, uid: `ns-${name}`, labels } };
}

/** A Node with an InternalIP. */
export function node(name: string, ip: string): KubeObject {
  return { apiVersion: "v1", kind: "Node", metadata: { name }, status: { addresses: [{ type: "InternalIP", address: ip }] } };
}

/** A running, ready pod. */
export function pod(p: {
  name: string;
  ns?: string;
  node: string;
  ip: string;
  sa?: string;
  labels?: Record<string, string>;
  hostIP?: string;
  uid?: string;
}): KubeObject {
  const ns = p.ns ?? "default";
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: p.name, namespace: ns, uid: p.uid ?? `uid-${ns}-${p.name}`, labels: p.labels ?? { app: p.name } },
    spec: { nodeName: p.node, serviceAccountName: p.sa ?? p.name },
    status: {
      phase: "Running",
      podIP: p.ip,
      podIPs: [{ ip: p.ip }],
      ...(p.hostIP ? { hostIP: p.hostIP } : {}),
      conditions: [{ type: "Ready", status: "True" }],
    },
  };
}

/** A ClusterIP Service and its EndpointSlice over the given pods. */
export function service(
  name: string,
  ns: string,
  vip: string,
  ports: { name?: string; port: number; targetPort: number; appProtocol?: string }[],
  backends: KubeObject[],
): KubeObject[] {
  return [
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, namespace: ns, uid: `svc-${ns}-${name}` },
      spec: { type: "ClusterIP", clusterIP: vip, clusterIPs: [vip], ports: ports.map((p) => ({ ...p, protocol: "TCP" })) },
    },
    {
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: { name: `${name}-abc`, namespace: ns, labels: { "kubernetes.io/service-name": name } },
      addressType: "IPv4",
      endpoints: backends.map((b) => ({
        addresses: [(b.status as { podIP: string }).podIP],
        conditions: { ready: true },
        nodeName: (b.spec as { nodeName: string }).nodeName,
        targetRef: { kind: "Pod", name: b.metadata.name, namespace: ns, uid: b.metadata.uid },
      })),
      ports: ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.targetPort, protocol: "TCP" })),
    } as KubeObject,
  ];
}

/** A policy or route object (Istio / Gateway API). */
export function custom(
  apiVersion: string,
  kind: string,
  name: string,
  ns: string,
  spec: unknown,
  extra: Partial<KubeObject["metadata"]> = {},
): KubeObject {
  return {
    apiVersion,
    kind,
    metadata: { name, namespace: ns, uid: `${kind}-${ns}-${name}`, creationTimestamp: "2026-01-01T00:00:00Z", ...extra },
    spec,
  };
}

/** Groups objects by kind for translate(). */
export function objects(list: readonly KubeObject[]): ClusterObjects {
  const out = Object.fromEntries(SOURCE_KINDS.map((k) => [k, [] as KubeObject[]])) as Record<SourceKind, KubeObject[]>;
  for (const o of list) out[o.kind as SourceKind]?.push(o);
  return out;
}
