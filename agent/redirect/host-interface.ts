/**
 * Which host-side interface leads to a pod: the device of the node's route to the pod IP, as
 * `ip -j route get` reports it (the kernel's own answer, so it works for any CNI that routes pods
 * through per-pod veths: Calico, Cilium in veth mode, the local cluster). Run in the node netns.
 */
import { run } from "../../native/exec.js";
import { nsenterArgv } from "../../native/netns.js";
import { ipv4ToInt } from "./codec.js";

interface RouteGet {
  dst?: string;
  dev?: string;
  gateway?: string;
  prefsrc?: string;
  type?: string;
}

/** Parses `ip -j route get` output into the pod's interface; throws naming why it is not a local pod. */
export function hostInterfaceFromRoute(podIp: string, json: string): string {
  let routes: RouteGet[];
  try {
    routes = JSON.parse(json) as RouteGet[];
  } catch {
    throw new Error(`route to pod ${podIp}: could not parse 'ip -j route get' output`);
  }
  const r = routes[0];
  if (!r?.dev) throw new Error(`route to pod ${podIp}: no route found`);
  if (r.type === "local" || r.dev === "lo") throw new Error(`route to pod ${podIp}: the address is local to the node, not a pod's`);
  if (r.gateway) throw new Error(`route to pod ${podIp}: goes via gateway ${r.gateway} on ${r.dev}, so the pod is not on this node`);
  return r.dev;
}

/** The host-side interface of a local pod's IP; netns = a named netns to ask in (null = here). */
export async function resolveHostInterface(podIp: string, netns: string | null = null): Promise<string> {
  ipv4ToInt(podIp); // throws naming the text
  const argv = ["ip", "-j", "-4", "route", "get", podIp];
  const [tool, ...args] = netns ? nsenterArgv(netns, argv) : argv;
  const { stdout } = await run(tool as string, args);
  return hostInterfaceFromRoute(podIp, stdout);
}
