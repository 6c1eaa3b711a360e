/**
 * Writes the cluster as Kubernetes-shaped YAML into the file store the controller watches.
 * The harness plays the API server and the EndpointSlice controller: pods, services and
 * namespaces live in its state; the YAML is regenerated from it after every change.
 * One object per file, written atomically, so a watcher never reads half an object.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { isAbsolute, relative, resolve } from "node:path";
import { stringify } from "yaml";
import {
  type EndpointSlice,
  type KubeObject,
  LABELS,
  type NodeSpec,
  type NodeStatus,
  type PodSpec,
  type PodStatus,
  type ServiceSpec,
} from "../../controller/api/kube-types.js";
import { type ClusterState, type PodRecord, type ServiceRecord, writeFileAtomic } from "./state.js";
import { Topology } from "./topology.js";

/** Kinds whose files the harness owns (regenerates and deletes); other kinds are the user's. */
export const HARNESS_KINDS = new Set(["Node", "Namespace", "Pod", "Service", "EndpointSlice"]);

/** File name of an object in the store: kind, namespace and name, so re-applying replaces it. */
export function storeFileName(obj: Pick<KubeObject, "kind" | "metadata">): string {
  const ns = obj.metadata.namespace ? `${obj.metadata.namespace}.` : "";
  return `${obj.kind.toLowerCase()}.${ns}${obj.metadata.name}.yaml`;
}

/**
 * The path of a store file, refusing any name that would land outside the store: the name comes
 * from user YAML (kind, namespace, name), and the harness writes and deletes as root.
 */
export function storePath(storeDir: string, file: string): string {
  const dir = resolve(storeDir);
  const path = resolve(dir, file);
  const rel = relative(dir, path);
  if (file.includes("/") || file.includes("\\") || file.includes("\0") || rel !== file || isAbsolute(rel) || rel.startsWith("..")) {
    throw new Error(`refusing store file name '${file}': it is not a plain file name inside ${dir}`);
  }
  return path;
}

/** True when a pod's labels match a selector (every key equal). An empty selector matches nothing. */
export function selectorMatches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  const keys = Object.keys(selector);
  return keys.length > 0 && keys.every((k) => labels[k] === selector[k]);
}

/** All objects describing the cluster, in a stable order. */
export function renderObjects(state: ClusterState): KubeObject[] {
  const topo = new Topology(state.spec);
  const out: KubeObject[] = [];
  for (const n of state.nodes) out.push(nodeObject(topo, n));
  for (const ns of state.namespaces) {
    out.push({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: {
        name: ns.name,
        uid: ns.uid,
        labels: { "kubernetes.io/metadata.name": ns.name, ...ns.labels },
        creationTimestamp: ns.createdAt,
      },
    });
  }
  for (const pod of state.pods) out.push(podObject(topo, pod));
  for (const svc of state.services) {
    out.push(serviceObject(svc));
    out.push(endpointSliceFor(topo, svc, state.pods));
  }
  return out;
}

function nodeObject(topo: Topology, n: number): KubeObject<NodeSpec, NodeStatus> {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: topo.nodeName(n), labels: { "kubernetes.io/hostname": topo.nodeName(n) } },
    spec: { podCIDR: topo.podCidrOf(n), podCIDRs: [topo.podCidrOf(n)] },
    status: {
      addresses: [
        { type: "InternalIP", address: topo.nodeIp(n) },
        { type: "Hostname", address: topo.nodeName(n) },
      ],
    },
  };
}

function podObject(topo: Topology, pod: PodRecord): KubeObject<PodSpec, PodStatus> {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: pod.name, namespace: pod.namespace, uid: pod.uid, labels: pod.labels, creationTimestamp: pod.createdAt },
    spec: { nodeName: topo.nodeName(pod.node), serviceAccountName: pod.serviceAccount, containers: [{ name: "app" }] },
    status: {
      phase: "Running",
      podIP: pod.ip,
      podIPs: [{ ip: pod.ip }],
      hostIP: topo.nodeIp(pod.node),
      conditions: [{ type: "Ready", status: "True" }],
    },
  };
}

function serviceObject(svc: ServiceRecord): KubeObject<ServiceSpec> {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: svc.name, namespace: svc.namespace, uid: svc.uid, creationTimestamp: svc.createdAt },
    spec: {
      type: "ClusterIP",
      clusterIP: svc.vip,
      clusterIPs: [svc.vip],
      selector: svc.selector,
      ports: svc.ports.map((p) => ({
        ...(p.name ? { name: p.name } : {}),
        port: p.port,
        targetPort: p.targetPort,
        protocol: p.protocol,
        ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}),
      })),
    },
  };
}

/** The EndpointSlice the endpointslice controller would write for a service. */
export function endpointSliceFor(topo: Topology, svc: ServiceRecord, pods: readonly PodRecord[]): EndpointSlice {
  const members = pods.filter((p) => p.namespace === svc.namespace && selectorMatches(svc.selector, p.labels));
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name: `${svc.name}-weft`,
      namespace: svc.namespace,
      labels: { [LABELS.serviceName]: svc.name, "endpointslice.kubernetes.io/managed-by": "weft-cluster" },
    },
    addressType: "IPv4",
    endpoints: members.map((p) => ({
      addresses: [p.ip],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: topo.nodeName(p.node),
      targetRef: { kind: "Pod", name: p.name, namespace: p.namespace, uid: p.uid },
    })),
    ports: svc.ports.map((p) => ({
      ...(p.name ? { name: p.name } : {}),
      port: p.targetPort,
      protocol: p.protocol,
      ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}),
    })),
  };
}

/**
 * Brings the store directory in line with the state: writes changed objects, deletes harness
 * objects that are gone. User files (other kinds) are left alone.
 */
export function syncStore(state: ClusterState): { written: string[]; removed: string[] } {
  const dir = state.storeDir;
  mkdirSync(dir, { recursive: true });
  const desired = new Map<string, string>();
  for (const obj of renderObjects(state)) desired.set(storeFileName(obj), stringify(obj, { lineWidth: 0 }));
  const written: string[] = [];
  const removed: string[] = [];
  for (const [file, text] of desired) {
    const path = storePath(dir, file);
    let current: string | null = null;
    try {
      current = readFileSync(path, "utf8");
    } catch {
      // new object
    }
    if (current !== text) {
      writeFileAtomic(path, text);
      written.push(file);
    }
  }
  const harnessPrefixes = [...HARNESS_KINDS].map((k) => `${k.toLowerCase()}.`);
  for (const file of readdirSync(dir)) {
    if (desired.has(file) || !file.endsWith(".yaml")) continue;
    if (harnessPrefixes.some((p) => file.startsWith(p))) {
      rmSync(storePath(dir, file), { force: true });
      removed.push(file);
    }
  }
  return { written, removed };
}
