/** Checks made before the harness touches the machine, each failing with what to do about it. */

import { cgroup2Root } from "../../native/cgroup.js";
import { requireTool, run } from "../../native/exec.js";
import { overlaps, parseCidr } from "./ip.js";
import type { Topology } from "./topology.js";

/** The harness needs root (netns, veth, cgroups); says so plainly. */
export function requireRoot(what: string): void {
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    throw new Error(
      `${what} must run as root (it creates network namespaces, veths and cgroups); try: sudo weft ${what.replace(/^weft /, "")}`,
    );
  }
}

/** Fails with the apt package to install when a tool is missing. */
export function requireTools(): void {
  for (const tool of ["ip", "nsenter"]) requireTool(tool);
  cgroup2Root();
}

/**
 * Refuses to build a cluster whose ranges the root netns already routes: an address meant for
 * the isolated cluster must never also be a real network this machine can reach.
 */
export async function checkAddressClash(topo: Topology): Promise<void> {
  const { stdout } = await run("ip", ["-j", "-4", "route", "show", "table", "all"]);
  const routes = JSON.parse(stdout || "[]") as { dst: string; dev?: string; type?: string }[];
  const ranges = topo.clusterRanges.map((r) => [r, parseCidr(r)] as const);
  for (const route of routes) {
    if (!route.dst || route.dst === "default" || route.type === "broadcast") continue;
    const dst = route.dst.includes("/") ? route.dst : `${route.dst}/32`;
    let net: ReturnType<typeof parseCidr>;
    try {
      net = parseCidr(dst);
    } catch {
      continue;
    }
    if (net.base >>> 24 === 127) continue;
    for (const [text, range] of ranges) {
      if (overlaps(net, range)) {
        throw new Error(
          `address clash: the host already routes ${route.dst}${route.dev ? ` via ${route.dev}` : ""}, which overlaps the cluster's ${text}; choose other ranges with --node-cidr/--pod-cidr/--service-cidr`,
        );
      }
    }
  }
}
