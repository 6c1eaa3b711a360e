/** Address matching for policy (ipBlocks, conditions): IPv4 and IPv6, CIDR or bare address. */
import { BlockList, isIPv4, isIPv6 } from "node:net";

const cache = new Map<string, BlockList | null>();

/** True when ip is inside cidr ("10.0.0.0/8", "fd00::/8", or a bare address). Bad input never matches. */
export function ipInCidr(ip: string, cidr: string): boolean {
  let list = cache.get(cidr);
  if (list === undefined) {
    list = buildList(cidr);
    if (cache.size > 10_000) cache.clear();
    cache.set(cidr, list);
  }
  if (!list) return false;
  const type = isIPv4(ip) ? "ipv4" : isIPv6(ip) ? "ipv6" : null;
  return type !== null && list.check(ip, type);
}

function buildList(cidr: string): BlockList | null {
  const [addr, len] = cidr.split("/");
  const type = isIPv4(addr ?? "") ? "ipv4" : isIPv6(addr ?? "") ? "ipv6" : null;
  if (!type || !addr) return null;
  const max = type === "ipv4" ? 32 : 128;
  const prefix = len === undefined ? max : Number(len);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return null;
  const list = new BlockList();
  list.addSubnet(addr, prefix, type);
  return list;
}
