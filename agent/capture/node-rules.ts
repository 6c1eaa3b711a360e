/**
 * The node's nftables table `ip weft` and the policy route that go with the BPF programs:
 * - inbound capture (tproxy): a new TCP connection to an enrolled pod of this node goes to the
 *   proxy's IP_TRANSPARENT listeners instead of the pod: HBONE addressed to <pod IP>:15008 (as
 *   ztunnel and other HBONE clients send it) to the proxy's 15008, anything else to 15006
 *   (plaintext, authorized there). Packets of sockets the proxy made transparently (replies to a
 *   dial from the client's address, the rest of a captured connection) are delivered locally.
 * - kubelet probes (Istio's way): connections the node itself opens toward a guarded pod, not from
 *   the proxy, are SNATed to 169.254.7.127, which the TCX guard lets through under STRICT only
 *   when the packet was made on this node.
 * Rendering is pure; applying is one `nft -f` transaction (delete and recreate the table), so a
 * half-applied rule set is never seen.
 */
import { run } from "../../native/exec.js";
import { nsenterArgv } from "../../native/netns.js";
import type { PodRedirect } from "../redirect/types.js";

/** Source address of the node's own connections to pods (kubelet probes), as in Istio. */
export const PROBE_SOURCE = "169.254.7.127";
/** fwmark that routes a captured packet to the local stack (policy route below). */
export const TPROXY_MARK = 0x7766;
/** ct mark of node-originated connections to pods, SNATed to PROBE_SOURCE. */
const PROBE_CT_MARK = 0x7767;
/** The policy routing table (and rule priority) holding `local 0.0.0.0/0 dev lo`. */
export const TPROXY_TABLE = 30_566;

/** What the rules are built from. */
export interface NodeRulesInput {
  pods: readonly Pick<PodRedirect, "ip" | "inbound">[];
  /** The proxy's listeners' address (the pods' gateway). */
  proxyAddress: string;
  plaintextPort: number;
  /** Port of the proxy's transparent HBONE listener on proxyAddress; null: HBONE to pod IPs is not captured. */
  hbonePort: number | null;
  proxyMark: number;
  passthroughMark: number;
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** The nft script for this node (idempotent: it replaces the whole table). */
export function renderNodeRules(i: NodeRulesInput): string {
  const guarded = [...new Set(i.pods.filter((p) => p.inbound !== "off").map((p) => p.ip))].sort();
  const elements = guarded.length ? `\n    elements = { ${guarded.join(", ")} }` : "";
  const syn = "tcp flags & (syn | ack) == syn";
  const mark = `meta mark set ${hex(TPROXY_MARK)}`;
  return `table ip weft
delete table ip weft
table ip weft {
  set inbound {
    type ipv4_addr${elements}
  }
  chain prerouting {
    type filter hook prerouting priority mangle; policy accept;
    meta l4proto tcp socket transparent 1 ${mark} accept
${i.hbonePort !== null ? `    ip daddr @inbound tcp dport 15008 ${syn} ${mark} tproxy to ${i.proxyAddress}:${i.hbonePort} accept\n` : ""}    ip daddr @inbound ${syn} ${mark} tproxy to ${i.proxyAddress}:${i.plaintextPort} accept
  }
  chain output {
    type filter hook output priority mangle; policy accept;
    ip daddr @inbound meta mark != { ${hex(i.proxyMark)}, ${hex(i.passthroughMark)} } ${syn} ct mark set ${hex(PROBE_CT_MARK)}
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ct mark ${hex(PROBE_CT_MARK)} snat to ${PROBE_SOURCE}
  }
}
`;
}

async function inNetns(netns: string | null, argv: string[], input?: string) {
  const [tool, ...args] = netns ? nsenterArgv(netns, argv) : argv;
  return run(tool as string, args, input !== undefined ? { input } : {});
}

/** Applies the table and makes sure the policy route exists (netns: a named netns, null = here). */
export async function applyNodeRules(script: string, netns: string | null): Promise<void> {
  await inNetns(netns, ["nft", "-f", "-"], script);
  const rules = (await inNetns(netns, ["ip", "-4", "rule", "show", "table", String(TPROXY_TABLE)])).stdout;
  if (!rules.includes(hex(TPROXY_MARK))) {
    await inNetns(netns, [
      "ip",
      "-4",
      "rule",
      "add",
      "fwmark",
      hex(TPROXY_MARK),
      "lookup",
      String(TPROXY_TABLE),
      "priority",
      String(TPROXY_TABLE),
    ]);
  }
  await inNetns(netns, ["ip", "-4", "route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", String(TPROXY_TABLE)]);
}

/** Removes the table and the policy route (uninstall); touches nothing when weft never installed them. */
export async function removeNodeRules(netns: string | null): Promise<boolean> {
  const tables = (await inNetns(netns, ["nft", "list", "tables", "ip"])).stdout;
  if (!/^table ip weft$/m.test(tables)) return false;
  await inNetns(netns, ["nft", "delete", "table", "ip", "weft"]);
  await inNetns(netns, ["ip", "-4", "rule", "del", "fwmark", hex(TPROXY_MARK), "lookup", String(TPROXY_TABLE)]).catch(() => undefined);
  await inNetns(netns, ["ip", "-4", "route", "flush", "table", String(TPROXY_TABLE)]).catch(() => undefined);
  return true;
}
