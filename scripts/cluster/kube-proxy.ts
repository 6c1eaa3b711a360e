/**
 * What kube-proxy does on a real node: DNAT from a service VIP to a ready endpoint, so pods outside
 * the mesh reach services too. One nftables table per node netns, replaced atomically on every
 * change. Captured (enrolled) connections never reach it: the connect hook has already pointed
 * them at the proxy, which resolves VIPs itself.
 */
import { run, which } from "../../native/exec.js";
import type { ClusterState } from "./state.js";
import { selectorMatches } from "./store.js";
import { Topology } from "./topology.js";

/** nftables table the harness owns in every node netns. */
export const SERVICE_TABLE = "weft-svc";

/** The nft script that (re)defines the service table from the cluster state. */
export function serviceRules(state: ClusterState): string {
  const rules: string[] = [];
  for (const svc of state.services) {
    const eps = state.pods.filter((p) => p.namespace === svc.namespace && selectorMatches(svc.selector, p.labels));
    for (const port of svc.ports) {
      if (eps.length === 0) continue;
      const match = `ip daddr ${svc.vip} tcp dport ${port.port}`;
      if (eps.length === 1) {
        rules.push(`${match} dnat ip to ${eps[0]?.ip}:${port.targetPort}`);
      } else {
        const map = eps.map((p, i) => `${i} : ${p.ip} . ${port.targetPort}`).join(", ");
        rules.push(`${match} dnat ip addr . port to numgen random mod ${eps.length} map { ${map} }`);
      }
    }
  }
  const chain = (name: string, hook: string) => [
    `  chain ${name} {`,
    `    type nat hook ${hook} priority -100;`,
    ...rules.map((r) => `    ${r}`),
    "  }",
  ];
  // Declaring then deleting makes the replace work whether or not the table exists, in one transaction.
  return [
    `table ip ${SERVICE_TABLE}`,
    `delete table ip ${SERVICE_TABLE}`,
    `table ip ${SERVICE_TABLE} {`,
    ...chain("prerouting", "prerouting"),
    ...chain("output", "output"),
    "}",
    "",
  ].join("\n");
}

/** Installs the service rules on every node; a no-op (with a note) where nft is missing. */
export async function syncServiceRules(state: ClusterState): Promise<string | null> {
  if (!which("nft")) return "nft is not installed (apt-get install -y nftables): non-mesh pods cannot reach service VIPs";
  const topo = new Topology(state.spec);
  const script = serviceRules(state);
  for (const n of state.nodes) {
    await run("nsenter", [`--net=/run/netns/${topo.nodeName(n)}`, "--", "nft", "-f", "-"], { input: script });
  }
  return null;
}
