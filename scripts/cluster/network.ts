/**
 * Builds the cluster's network: a bridge in its own netns (never the root one), a netns per
 * node linked to it, a netns per pod linked to its node. No netns gets a default route, so a
 * packet for any address outside the cluster fails with ENETUNREACH before it is sent.
 */
import { addNetns, deleteNetns, ipBatch, sysctlInNetns } from "../../native/netns.js";
import type { Topology } from "./topology.js";

/** Creates the fabric netns with the cluster bridge. */
export async function createFabric(topo: Topology): Promise<void> {
  const ns = topo.fabricNetns;
  await addNetns(ns);
  await ipBatch(ns, [
    "link set lo up",
    `link add ${topo.bridge} type bridge`,
    `addr add ${topo.fabricIp}/24 dev ${topo.bridge}`,
    `link set ${topo.bridge} up`,
  ]);
}

/** Creates node n: its netns, uplink to the bridge, and forwarding for its pods. */
export async function createNode(topo: Topology, n: number): Promise<void> {
  const ns = topo.nodeName(n);
  await addNetns(ns);
  const port = topo.fabricPort(n);
  await ipBatch(topo.fabricNetns, [
    `link add ${port} type veth peer name eth0 netns ${ns}`,
    `link set ${port} master ${topo.bridge}`,
    `link set ${port} up`,
  ]);
  // The pods' gateway also sits on lo, so it is a local address (the proxy can bind it) even
  // before the node has a pod; the host veths answer ARP for it either way.
  await ipBatch(ns, [
    "link set lo up",
    `addr add ${topo.podGateway(n)}/32 dev lo`,
    `addr add ${topo.nodeIp(n)}/24 dev eth0`,
    "link set eth0 up",
  ]);
  // rp_filter off: replies from the proxy may leave by a different interface than requests came in.
  await sysctlInNetns(ns, {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
  });
}

/** Routes on node n to every other node's pod /24, via that node's bridge address. */
export async function routeNode(topo: Topology, n: number, allNodes: readonly number[]): Promise<void> {
  const cmds = allNodes.filter((m) => m !== n).map((m) => `route replace ${topo.podCidrOf(m)} via ${topo.nodeIp(m)} dev eth0`);
  await ipBatch(topo.nodeName(n), cmds);
}

/** What a pod's network needs. */
export interface PodNet {
  netns: string;
  node: number;
  ip: string;
  hostVeth: string;
}

/**
 * Creates a pod's netns and veth. The pod has a /32 and reaches everything through the node's
 * gateway address, which sits on every host-side veth (as Calico does): that address is where the
 * connect hook points captured connections.
 */
export async function createPodNetwork(topo: Topology, pod: PodNet): Promise<void> {
  const node = topo.nodeName(pod.node);
  const gw = topo.podGateway(pod.node);
  await addNetns(pod.netns);
  await ipBatch(node, [
    `link add ${pod.hostVeth} type veth peer name eth0 netns ${pod.netns}`,
    `addr add ${gw}/32 dev ${pod.hostVeth}`,
    `link set ${pod.hostVeth} up`,
    `route replace ${pod.ip}/32 dev ${pod.hostVeth} scope link`,
  ]);
  await ipBatch(pod.netns, [
    "link set lo up",
    `addr add ${pod.ip}/32 dev eth0`,
    "link set eth0 up",
    `route add ${gw} dev eth0 scope link`,
    ...topo.clusterRanges.map((r) => `route add ${r} via ${gw} dev eth0`),
  ]);
}

/** Deletes a pod's netns; its veth pair goes with it. */
export async function deletePodNetwork(netns: string): Promise<void> {
  await deleteNetns(netns);
}
