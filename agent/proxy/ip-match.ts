/** Address matching for policy (ipBlocks, conditions): IPv4 and IPv6, CIDR or bare address. */
import { BlockList, isIPv4, isIPv6 } from "node:net";

type Family = "ipv4" | "ipv6";

/** One block, with its family: Envoy's CidrRange never matches an address of the other family. */
interface Block {
  list: BlockList;
  family: Family;
}

const cache = new Map<string, Block | null>();

/** ::ffff:0:0/96, the IPv4-mapped IPv6 addresses. */
const MAPPED = new BlockList();
MAPPED.addSubnet("::ffff:0:0", 96, "ipv6");

/**
 * True when ip is inside cidr ("10.0.0.0/8", "fd00::/8", or a bare address) and both are of one
 * family; an IPv4-mapped IPv6 address counts as the IPv4 address it carries. Bad input never matches.
 */
export function ipInCidr(ip: string, cidr: string): boolean {
  let block = cache.get(cidr);
  if (block === undefined) {
    block = buildBlock(cidr);
    if (cache.size > 10_000) cache.clear();
    cache.set(cidr, block);
  }
  if (!block) return false;
  let addr = ip;
  let family: Family;
  if (isIPv4(ip)) family = "ipv4";
  else if (isIPv6(ip)) {
    const v4 = mappedV4(ip);
    family = v4 === undefined ? "ipv6" : "ipv4";
    if (v4 !== undefined) addr = v4;
  } else return false;
  // Node's BlockList matches IPv4 blocks against mapped addresses and IPv6 blocks that hold
  // ::ffff:0:0/96 against IPv4 addresses (::/0 would take every IPv4 source): never across families.
  return family === block.family && block.list.check(addr, family);
}

/** The IPv4 address an IPv4-mapped IPv6 address carries (::ffff:a.b.c.d, ::ffff:a00:1, …), else undefined. */
function mappedV4(ip: string): string | undefined {
  if (!/ffff/i.test(ip) || !MAPPED.check(ip, "ipv6")) return undefined;
  const last = ip.lastIndexOf(":");
  if (ip.includes(".", last)) return ip.slice(last + 1);
  const groups = expand(ip);
  const hi = groups[6] ?? 0;
  const lo = groups[7] ?? 0;
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** The eight 16-bit groups of a valid IPv6 address written without a dotted tail. */
function expand(ip: string): number[] {
  const [head = "", tail] = ip.split("::");
  const parse = (s: string) => (s === "" ? [] : s.split(":").map((g) => Number.parseInt(g, 16)));
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  return [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
}

function buildBlock(cidr: string): Block | null {
  const [addr, len, extra] = cidr.split("/");
  if (extra !== undefined || (len !== undefined && !/^\d{1,3}$/.test(len))) return null;
  const family = isIPv4(addr ?? "") ? "ipv4" : isIPv6(addr ?? "") ? "ipv6" : null;
  if (!family || !addr) return null;
  const max = family === "ipv4" ? 32 : 128;
  const prefix = len === undefined ? max : Number(len);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return null;
  const list = new BlockList();
  list.addSubnet(addr, prefix, family);
  return { list, family };
}
