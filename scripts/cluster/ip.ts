/** IPv4 address arithmetic for the cluster's address plan. */

/** An IPv4 network: base address as a 32-bit number and prefix length. */
export interface Cidr {
  base: number;
  prefix: number;
}

/** Dotted quad → 32-bit unsigned number; throws naming the bad text. */
export function ipToInt(ip: string): number {
  const parts = ip.split(".");
  if (parts.length !== 4) throw new Error(`'${ip}' is not an IPv4 address`);
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw new Error(`'${ip}' is not an IPv4 address`);
    n = n * 256 + Number(p);
  }
  return n >>> 0;
}

/** 32-bit number → dotted quad. */
export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** Parses "a.b.c.d/len" and requires the base to be the network address. */
export function parseCidr(text: string): Cidr {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text);
  if (!m) throw new Error(`'${text}' is not a CIDR (expected a.b.c.d/len)`);
  const prefix = Number(m[2]);
  if (prefix > 32) throw new Error(`'${text}': prefix length ${prefix} is over 32`);
  const base = ipToInt(m[1] as string);
  if ((base & maskOf(prefix)) >>> 0 !== base) {
    throw new Error(`'${text}' has host bits set; did you mean ${intToIp((base & maskOf(prefix)) >>> 0)}/${prefix}?`);
  }
  return { base, prefix };
}

/** Netmask of a prefix length as a number. */
export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** True when the two networks share any address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base ^ b.base) & maskOf(p)) >>> 0 === 0;
}

/** True when the address lies inside the network. */
export function contains(net: Cidr, ip: string): boolean {
  return ((ipToInt(ip) ^ net.base) & maskOf(net.prefix)) >>> 0 === 0;
}

/** "a.b.c.d/len" text of a network. */
export function formatCidr(c: Cidr): string {
  return `${intToIp(c.base)}/${c.prefix}`;
}
