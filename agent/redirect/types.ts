/**
 * The redirect contract: how the agent tells the eBPF side which pods are captured and guarded.
 * agent/redirect is the only writer of the BPF maps; everything else goes through this interface.
 */

/** What the STRICT guard on a pod's host-side veth does with plaintext SYNs toward the pod. */
export type InboundMode = "off" | "permissive" | "strict";

/** One local pod as redirect needs it. */
export interface PodRedirect {
  /** Workload uid (for dumps and logs). */
  uid: string;
  namespace: string;
  name: string;
  /** Absolute path of the pod's cgroup v2 directory (its id keys the capture map). */
  cgroupPath: string;
  /** Pod IPv4. */
  ip: string;
  /** Host-side veth in the node netns (the guard attaches to its egress). */
  hostInterface: string;
  /** Capture the pod's outbound connect()s into the proxy. */
  capture: boolean;
  /** Guard mode for inbound plaintext. */
  inbound: InboundMode;
}

/** Node-wide redirect settings. */
export interface RedirectConfig {
  /** bpffs directory for this agent's pins (default /sys/fs/bpf/weft). */
  pinDir: string;
  /** Directory of prebuilt BPF objects (bpf/build). */
  objectDir: string;
  /** Parent cgroup of the node's pods: connect/sockops hooks attach here. */
  podCgroupParent: string;
  /** The agent's own cgroup: sock_create and getsockname/getpeername hooks attach here. */
  proxyCgroup: string;
  /** Address captured connections are sent to (the pods' gateway, on every host veth). */
  proxyAddress: string;
  outboundPort: number;
  inboundPlaintextPort: number;
  /** Mark the proxy's sockets carry. */
  proxyMark: number;
  /** Destinations never captured ("10.250.0.0/24", "10.96.0.1/32:443"). */
  excluded: string[];
}

/** Result of reconciling the maps with a desired pod set. */
export interface ReconcileResult {
  enrolled: string[];
  updated: string[];
  removed: string[];
  /** Pods that could not be applied, with why (the rest still are). */
  failed: { uid: string; error: string }[];
}

/** Attached program/link/map state, for readiness, `weft status` and `weft bpf`. */
export interface RedirectStatus {
  attached: boolean;
  programs: { name: string; id: number; attachedTo: string }[];
  maps: { name: string; id: number; entries: number }[];
  pods: PodRedirect[];
}

/** The agent's handle on capture. */
export interface Redirector {
  /** Loads (or reuses pinned) programs and maps and attaches them; swaps programs in place on restart. */
  start(): Promise<void>;
  /** Makes the maps match exactly this set of local pods. */
  reconcile(desired: readonly PodRedirect[]): Promise<ReconcileResult>;
  /** Current state. */
  status(): RedirectStatus;
  /** Releases fds; pins stay, so capture continues (fail closed) while the agent is away. */
  close(): void;
  /** Detaches everything and removes all pins. */
  uninstall(): Promise<void>;
}
