/**
 * The local cluster's pods of one node as PodRedirect[] (cgroup path, host veth, IP), from the
 * cluster's recorded state: what the local agent reconciles until the control plane provides the
 * desired set. Enrolment is decided by the caller (labels, or a test's choice).
 */
import { join } from "node:path";
import type { InboundMode, PodRedirect } from "../../agent/redirect/types.js";
import type { ClusterState, PodRecord } from "../../scripts/cluster/state.js";

/** How a pod is redirected; default: captured, guard off. */
export interface PodPolicy {
  capture: boolean;
  inbound: InboundMode;
}

/** Options for clusterPodRedirects. */
export interface ClusterPodOptions {
  /** cgroup v2 mount point (the state records cgroup paths relative to it). */
  cgroupRoot: string;
  /** Decides each pod's redirect; return null to leave the pod out. */
  policy?: (pod: PodRecord) => PodPolicy | null;
}

/** PodRedirect[] for the pods of node `node` in a local cluster. */
export function clusterPodRedirects(state: ClusterState, node: number, opts: ClusterPodOptions): PodRedirect[] {
  const out: PodRedirect[] = [];
  for (const pod of state.pods) {
    if (pod.node !== node) continue;
    const policy = opts.policy ? opts.policy(pod) : { capture: true, inbound: "off" as const };
    if (!policy) continue;
    out.push({
      uid: pod.uid,
      namespace: pod.namespace,
      name: pod.name,
      cgroupPath: join(opts.cgroupRoot, pod.cgroup),
      ip: pod.ip,
      hostInterface: pod.hostVeth,
      capture: policy.capture,
      inbound: policy.inbound,
    });
  }
  return out;
}
