/**
 * The facts `weft explain` starts from: which pod is the source, what the destination text names
 * (an address, a service or a pod), and whether the connect hook captures the connect — the last
 * mirrored check by check from bpf/connect.c.
 */

import { WeftError } from "../common/errors.js";
import type { Workload } from "../controller/api/model.js";
import { ipInCidr } from "./proxy/ip-match.js";
import type { SocketAddr } from "./proxy/request.js";
import { parseExclude } from "./redirect/exclude.js";
import type { MeshView } from "./state/view.js";

/** Bad input (400), an unknown pod (404) or a pod of another node (409), said plainly. */
export class ExplainError extends WeftError {
  override readonly name = "ExplainError";
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(
      status === 404 ? "WEFT_NOT_FOUND" : status === 409 ? "WEFT_WRONG_NODE" : status === 503 ? "WEFT_UNAVAILABLE" : "WEFT_INVALID_INPUT",
      message,
    );
  }
}

/** What capture looks like on this node right now. */
export interface CaptureFacts {
  /** False when the agent runs without capture (no --pod-cgroup). */
  enabled: boolean;
  /** uids of local pods whose entry is in the BPF capture map. */
  captured: ReadonlySet<string>;
  /** Enrolled pods whose capture could not be applied, with why. */
  unresolved: readonly { pod: string; error: string }[];
  /** Where captured connects are sent (the pods' gateway), null without a data plane. */
  proxyAddress: string | null;
  outboundPort: number;
  /** Destinations never captured (--exclude). */
  excluded: readonly string[];
}

/** Whether the connect hook redirects the connection, and why. */
export interface CaptureVerdict {
  captured: boolean;
  reason: string;
}

/** "ns/name" of a workload. */
export const podName = (w: Workload) => `${w.namespace}/${w.name}`;
/** "ip:port". */
export const addr = (a: SocketAddr) => `${a.ip}:${a.port}`;
/** A workload's IPv4 address (the one capture keys on). */
export const ipv4Of = (w: Workload) => w.addresses.find((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a)) ?? w.addresses[0] ?? "";
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function isIpv4(text: string): boolean {
  const m = IPV4.exec(text);
  return m?.slice(1).every((o) => Number(o) <= 255) ?? false;
}

/** Finds a pod by "ns/name", bare name (when unique) or IP. */
export function findPod(view: MeshView, ref: string): Workload {
  if (isIpv4(ref)) {
    const w = view.workloadByAddress(ref);
    if (!w) throw new ExplainError(`no pod with address ${ref} in this agent's state`, 404);
    return w;
  }
  const slash = ref.indexOf("/");
  const hits =
    slash > 0
      ? view.data.workloads.filter((w) => w.namespace === ref.slice(0, slash) && w.name === ref.slice(slash + 1))
      : view.data.workloads.filter((w) => w.name === ref);
  if (hits.length === 1) return hits[0] as Workload;
  if (hits.length > 1)
    throw new ExplainError(`pod name '${ref}' is ambiguous: ${hits.map(podName).join(", ")}; write it as <namespace>/<name>`, 400);
  throw new ExplainError(
    `no pod '${ref}' in this agent's state (it holds every pod of node ${view.nodeName} and remote pods that are in the mesh or back a service)`,
    404,
  );
}

/** Parses "<host>:<port>" where host is an IPv4 address, a pod "ns/name" or a service name. */
export function resolveDestination(
  view: MeshView,
  text: string,
  clientNamespace: string,
): { ip: string; port: number; serviceKey?: string; pod?: string } {
  const m = /^(.+):(\d{1,5})$/.exec(text.trim());
  if (!m) throw new ExplainError(`destination '${text}': expected <host>:<port> (an IPv4 address, a service name or a pod ns/name)`, 400);
  const host = m[1] as string;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new ExplainError(`destination '${text}': port ${m[2]} is not 1-65535`, 400);
  if (host.startsWith("[") || host.includes(":"))
    throw new ExplainError(`destination '${text}': IPv6 destinations are never captured (weft's pod network is IPv4)`, 400);
  if (isIpv4(host)) return { ip: host, port };
  if (host.includes("/")) {
    const w = findPod(view, host);
    return { ip: ipv4Of(w), port, pod: podName(w) };
  }
  const name = host.toLowerCase().replace(/\.$/, "");
  const svc = view.data.services.find(
    (s) =>
      s.hostname === name ||
      `${s.name}.${s.namespace}` === name ||
      `${s.name}.${s.namespace}.svc` === name ||
      (s.name === name && s.namespace === clientNamespace),
  );
  if (!svc)
    throw new ExplainError(
      `destination '${text}': '${host}' is not an IPv4 address, a pod (ns/name) or a service this agent knows (<name>[.<namespace>[.svc.<domain>]])`,
      400,
    );
  const vip = svc.vips.find(isIpv4);
  if (!vip) throw new ExplainError(`service ${svc.key} has no IPv4 VIP (headless?): name a pod address instead`, 400);
  return { ip: vip, port, serviceKey: svc.key };
}

/** Does the connect hook capture this connect? The order of checks is connect.c's. */
export function captureVerdict(source: Workload, srcIp: string, dst: SocketAddr, facts: CaptureFacts): CaptureVerdict {
  if (!facts.enabled) return { captured: false, reason: "this agent runs without capture (no --pod-cgroup): nothing is redirected" };
  if (!source.enrolled) return { captured: false, reason: `the pod is not in the mesh (${source.enrolmentReason})` };
  if (!facts.captured.has(source.uid)) {
    const problem = facts.unresolved.find((u) => u.pod === podName(source));
    return {
      captured: false,
      reason: problem
        ? `the pod is in the mesh but not in the BPF capture map: ${problem.error}`
        : "the pod is in the mesh but not yet in the BPF capture map (the agent is reconciling it)",
    };
  }
  const first = Number(dst.ip.split(".")[0]);
  if (dst.ip === "0.0.0.0" || first === 127) return { captured: false, reason: "loopback destinations are never captured" };
  if (dst.ip === facts.proxyAddress) return { captured: false, reason: "connections to the proxy's own address are not captured" };
  if (dst.ip === srcIp) return { captured: false, reason: "connections to the pod's own address are not captured" };
  for (const rule of facts.excluded) {
    let k: ReturnType<typeof parseExclude>;
    try {
      k = parseExclude(rule);
    } catch {
      continue;
    }
    const prefix = k.prefixlen - 32;
    if ((k.port === 0 || k.port === dst.port) && (prefix === 0 || ipInCidr(dst.ip, `${k.addr}/${prefix}`)))
      return { captured: false, reason: `the destination is excluded from capture (--exclude ${rule})` };
  }
  return { captured: true, reason: `weft_connect4 redirects it to the node proxy at ${facts.proxyAddress}:${facts.outboundPort}` };
}
