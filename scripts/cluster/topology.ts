/**
 * The local cluster's naming and address plan, as pure functions of the cluster spec.
 * Everything the harness creates is named from here, so cleanup can find it by prefix.
 */

import { createHash } from "node:crypto";
import { errorMessage } from "../../common/errors.js";
import { type Cidr, formatCidr, intToIp, overlaps, parseCidr } from "./ip.js";

/** What `weft cluster up` was asked for. */
export interface ClusterSpec {
  /** Prefix of every netns, cgroup and pin; starts with "weft". */
  name: string;
  nodes: number;
  podsPerNode: number;
  /** The /24 the nodes (and the fabric bridge) live on. */
  nodeCidr: string;
  /** A /16 split into one /24 per node. */
  podCidr: string;
  /** Where service VIPs are allocated. */
  serviceCidr: string;
  /**
   * How pod cgroups are laid out: weft's own (`…/pods/<ns>.<pod>`, the default) or exactly as the
   * kubelet's systemd driver with containerd does (`…/kubepods.slice/[kubepods-burstable.slice/]
   * kubepods-[burstable-]pod<uid>.slice/cri-containerd-<id>.scope`), the agent then finding pods
   * by uid as on a real node.
   */
  cgroupLayout?: ClusterCgroupLayout;
}

/** The directory removing a pod removes: its slice in the kubelet layout, else its cgroup. */
export function podCgroupTop(cgroup: string): string {
  return cgroup.endsWith(".scope") ? cgroup.slice(0, cgroup.lastIndexOf("/")) : cgroup;
}

/** The test bed's pod cgroup layouts. */
export type ClusterCgroupLayout = "local" | "kubelet-systemd";

/** Defaults from the architecture contract. */
export const DEFAULT_SPEC: ClusterSpec = {
  name: "weft",
  nodes: 2,
  podsPerNode: 3,
  nodeCidr: "10.250.0.0/24",
  podCidr: "10.244.0.0/16",
  serviceCidr: "10.96.0.0/16",
};

/** Largest node count the /24 node network and per-node /24 pod networks allow. */
export const MAX_NODES = 200;
/** Pod slots per node: .2 … .254 of the node's /24. */
export const MAX_PODS_PER_NODE = 250;

/** Checks a spec; returns every problem found, each naming the field. */
export function validateSpec(spec: ClusterSpec): string[] {
  const errors: string[] = [];
  if (!/^weft(-[a-z0-9]{1,12})?$/.test(spec.name) || /^weft-(pod|fabric|node\d*)$/.test(spec.name)) {
    errors.push(
      `name '${spec.name}': must be 'weft' or 'weft-<1-12 lowercase letters/digits>' (not pod, fabric or node<N>, which the default cluster's names use)`,
    );
  }
  if (!Number.isInteger(spec.nodes) || spec.nodes < 1 || spec.nodes > MAX_NODES) {
    errors.push(`nodes ${spec.nodes}: must be a whole number from 1 to ${MAX_NODES}`);
  }
  if (spec.cgroupLayout !== undefined && spec.cgroupLayout !== "local" && spec.cgroupLayout !== "kubelet-systemd") {
    errors.push(`cgroup-layout '${spec.cgroupLayout}': must be local or kubelet-systemd`);
  }
  if (!Number.isInteger(spec.podsPerNode) || spec.podsPerNode < 0 || spec.podsPerNode > MAX_PODS_PER_NODE) {
    errors.push(`pods-per-node ${spec.podsPerNode}: must be a whole number from 0 to ${MAX_PODS_PER_NODE}`);
  }
  const nets: [string, Cidr | null][] = [
    ["node-cidr", parseOr(spec.nodeCidr, 24, errors, "node-cidr")],
    ["pod-cidr", parseOr(spec.podCidr, 16, errors, "pod-cidr")],
    ["service-cidr", parseOr(spec.serviceCidr, null, errors, "service-cidr")],
  ];
  for (let i = 0; i < nets.length; i++) {
    for (let j = i + 1; j < nets.length; j++) {
      const [an, a] = nets[i] as [string, Cidr | null];
      const [bn, b] = nets[j] as [string, Cidr | null];
      if (a && b && overlaps(a, b)) errors.push(`address clash: ${an} ${formatCidr(a)} overlaps ${bn} ${formatCidr(b)}`);
    }
  }
  return errors;
}

function parseOr(text: string, wantPrefix: number | null, errors: string[], field: string): Cidr | null {
  try {
    const c = parseCidr(text);
    if (wantPrefix !== null && c.prefix !== wantPrefix) {
      errors.push(`${field} '${text}': must be a /${wantPrefix}`);
      return null;
    }
    if (wantPrefix === null && (c.prefix < 12 || c.prefix > 24)) {
      errors.push(`${field} '${text}': prefix must be between /12 and /24`);
      return null;
    }
    return c;
  } catch (e) {
    errors.push(`${field}: ${errorMessage(e)}`);
    return null;
  }
}

/** Names and addresses derived from a (valid) spec. */
export class Topology {
  private readonly node: Cidr;
  private readonly pod: Cidr;
  private readonly svc: Cidr;

  constructor(readonly spec: ClusterSpec) {
    this.node = parseCidr(spec.nodeCidr);
    this.pod = parseCidr(spec.podCidr);
    this.svc = parseCidr(spec.serviceCidr);
  }

  /** netns holding the cluster bridge and the controller. */
  get fabricNetns(): string {
    return `${this.spec.name}-fabric`;
  }

  /** The bridge inside the fabric netns. */
  readonly bridge = "weft-br0";

  /** Address of the bridge: where the local controller listens. */
  get fabricIp(): string {
    return intToIp(this.node.base + 1);
  }

  /** Kubernetes node name (also its netns name). */
  nodeName(n: number): string {
    return `${this.spec.name}-node${n}`;
  }

  /** A node's address on the cluster bridge. */
  nodeIp(n: number): string {
    return intToIp(this.node.base + 10 + n);
  }

  /** Uplink veth end inside the fabric netns (peer is eth0 in the node). */
  fabricPort(n: number): string {
    return `weft-n${n}`;
  }

  /** A node's pod network (/24). */
  podCidrOf(n: number): string {
    return `${intToIp(this.pod.base + n * 256)}/24`;
  }

  /** Gateway address every pod of node n routes through (on each host-side veth). */
  podGateway(n: number): string {
    return intToIp(this.pod.base + n * 256 + 1);
  }

  /** Address of the pod in slot s (2…251) of node n. */
  podIp(n: number, slot: number): string {
    return intToIp(this.pod.base + n * 256 + slot);
  }

  /** netns of a pod. Namespaces cannot contain dots, so "." keeps the pair unambiguous. */
  podNetns(namespace: string, pod: string): string {
    return `${this.spec.name}-pod-${namespace}.${pod}`;
  }

  /** cgroup (relative to the v2 root) of all weft cluster objects. */
  get cgroupRoot(): string {
    return this.spec.name;
  }

  /** Parent cgroup of node n's pods: the connect hooks attach here. */
  podParentCgroup(n: number): string {
    return this.kubelet ? `${this.spec.name}/node${n}/kubepods.slice` : `${this.spec.name}/node${n}/pods`;
  }

  /** True when pods are laid out as the kubelet's systemd driver does. */
  get kubelet(): boolean {
    return this.spec.cgroupLayout === "kubelet-systemd";
  }

  /** cgroup for node-level processes (the agent), outside the pods' parent so it is never captured. */
  systemCgroup(n: number): string {
    return `${this.spec.name}/node${n}/system`;
  }

  /**
   * cgroup the pod's processes run in. Kubelet layout: a container scope inside the pod's slice,
   * the slice named from the uid with '-' as '_' (systemd reserves '-' for nesting); the QoS class
   * alternates with the uid so both depths (Guaranteed directly under kubepods, Burstable one
   * level lower) are exercised.
   */
  podCgroup(n: number, namespace: string, pod: string, uid: string): string {
    if (!this.kubelet) return `${this.podParentCgroup(n)}/${namespace}.${pod}`;
    const u = uid.replace(/-/g, "_");
    const guaranteed = Number.parseInt(uid.slice(-1), 16) % 2 === 0;
    const slice = guaranteed ? `kubepods-pod${u}.slice` : `kubepods-burstable.slice/kubepods-burstable-pod${u}.slice`;
    const container = createHash("sha256").update(`${namespace}/${pod}/${uid}`).digest("hex");
    return `${this.podParentCgroup(n)}/${slice}/cri-containerd-${container}.scope`;
  }

  /** Host-side veth name of the pod with this sequence number (IFNAMSIZ is 16). */
  hostVeth(seq: number): string {
    return `weft${seq}`;
  }

  /** Service VIP number i (0-based; .0 is skipped as the network address). */
  serviceVip(i: number): string {
    return intToIp(this.svc.base + 10 + i);
  }

  /** How many VIPs the service network holds. */
  get vipCapacity(): number {
    return 2 ** (32 - this.svc.prefix) - 12;
  }

  /** The whole cluster's ranges, used for routes inside pods and for clash checks. */
  get clusterRanges(): string[] {
    return [formatCidr(this.node), formatCidr(this.pod), formatCidr(this.svc)];
  }

  /** Matches netns names this cluster creates (and only those, not other clusters' names). */
  ownsNetns(netns: string): boolean {
    const p = this.spec.name;
    return netns === `${p}-fabric` || new RegExp(`^${p}-node\\d+$`).test(netns) || netns.startsWith(`${p}-pod-`);
  }
}
