/**
 * Excluded destinations ("never capture these"): "10.250.0.0/24" (every port), "10.96.0.1:443"
 * or "10.96.0.0/16:443" (one port), ":15008" (that port on any address). Parsed into weft_exclude
 * LPM keys: the prefix covers port and pad (32 bits) and then the address bits, so the program
 * looks up once with the real port and once with port 0.
 */

import type { BpfMap } from "../../native/bpf-map.js";
import { excludeKeyCodec, excludeValueCodec } from "./abi.js";
import { intToIpv4, ipv4ToInt } from "./codec.js";

/** One weft_exclude key, decoded. */
export interface ExcludeKey {
  prefixlen: number;
  port: number;
  addr: string;
}

/** Parses one exclusion; throws naming the text and the expected forms. */
export function parseExclude(text: string): ExcludeKey {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?)?(?::(\d{1,5}))?$/.exec(text.trim());
  const usage = "expected a.b.c.d[/len][:port] or :port";
  if (!m || (!m[1] && !m[3])) throw new Error(`excluded destination '${text}': ${usage}`);
  const prefix = m[1] ? (m[2] === undefined ? 32 : Number(m[2])) : 0;
  if (prefix > 32) throw new Error(`excluded destination '${text}': prefix /${prefix} is longer than 32`);
  let base = 0;
  if (m[1]) {
    try {
      base = ipv4ToInt(m[1]);
    } catch {
      throw new Error(`excluded destination '${text}': '${m[1]}' is not an IPv4 address`);
    }
  }
  const port = m[3] === undefined ? 0 : Number(m[3]);
  if (m[3] !== undefined && (port < 1 || port > 65535)) throw new Error(`excluded destination '${text}': port ${m[3]} is not 1-65535`);
  // LPM keys must not carry bits beyond the prefix, or lookups would never match them.
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { prefixlen: 32 + prefix, port, addr: intToIpv4((base & mask) >>> 0) };
}

/** Canonical text of a key (the same form parseExclude accepts). */
export function formatExclude(k: ExcludeKey): string {
  const prefix = k.prefixlen - 32;
  const net = prefix === 0 ? "" : `${k.addr}${prefix === 32 ? "" : `/${prefix}`}`;
  return `${net}${k.port ? `:${k.port}` : ""}` || "0.0.0.0/0";
}

function keyId(k: ExcludeKey): string {
  return `${k.prefixlen}|${k.port}|${k.addr}`;
}

/** Makes weft_exclude hold exactly these exclusions; returns how many were added and removed. */
export function syncExcludes(map: BpfMap, excluded: readonly string[]): { added: number; removed: number } {
  const want = new Map(excluded.map((t) => parseExclude(t)).map((k) => [keyId(k), k]));
  const have = map.entries(excludeKeyCodec, excludeValueCodec).map(([k]) => k);
  let removed = 0;
  for (const k of have) {
    if (!want.has(keyId(k))) {
      map.delete(excludeKeyCodec, k);
      removed++;
    }
  }
  const haveIds = new Set(have.map(keyId));
  let added = 0;
  for (const [id, k] of want) {
    if (haveIds.has(id)) continue;
    map.update(excludeKeyCodec, excludeValueCodec, k, { flags: 1 });
    added++;
  }
  return { added, removed };
}
