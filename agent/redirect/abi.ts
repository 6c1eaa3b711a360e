/**
 * The TypeScript side of bpf/include/weft_abi.h: constants, map and program names, and a codec
 * per map key and value. test/unit/bpf-abi.test.ts checks every codec against the BTF of the
 * built objects and every constant against the header, so the two sides cannot drift.
 */

import { scalarCodec, structCodec } from "./codec.js";
import type { InboundMode } from "./types.js";

/** WEFT_ABI_VERSION: bump with any change to a map's layout or meaning (see weft_abi.h). */
export const ABI_VERSION = 1;
/** WEFT_MAGIC ("weft"). */
export const MAGIC = 0x77656674;
/** WEFT_POD_CAPTURE. */
export const POD_CAPTURE = 1;
/** Capacity limits (WEFT_MAX_*). */
export const MAX_PODS = 16384;
export const MAX_TUPLES = 65536;
export const MAX_EXCLUDES = 1024;

/** enum weft_inbound_mode by InboundMode. */
export const INBOUND_MODE: Readonly<Record<InboundMode, number>> = { off: 0, permissive: 1, strict: 2 };

/** InboundMode of an enum weft_inbound_mode value (unknown values read as "off" would hide a bug, so they throw). */
export function inboundModeName(n: number): InboundMode {
  const hit = (Object.entries(INBOUND_MODE) as [InboundMode, number][]).find(([, v]) => v === n);
  if (!hit) throw new Error(`unknown inbound mode ${n} in weft_guard`);
  return hit[0];
}

/** enum weft_reason, index = value (names as in the header, without WEFT_R_, lower-case). */
export const REASONS: readonly string[] = [
  "captured",
  "not_enrolled",
  "proxy_socket",
  "loopback",
  "excluded",
  "to_proxy",
  "self",
  "not_tcp",
  "ipv6",
  "no_storage",
  "tuple_recorded",
  "tuple_failed",
  "sockname",
  "peername",
  "sock_marked",
  "guard_drop",
  "guard_marked",
  "guard_permissive",
  "tuple_closed",
  "guard_probe",
  "source_spoofed",
  "source_mismatch",
];
/** WEFT_R_MAX: entries of weft_stats. */
export const REASON_MAX = 32;

/** The maps every object shares, pinned by these names. */
export const MAP = {
  pods: "weft_pods",
  guard: "weft_guard",
  exclude: "weft_exclude",
  skOrig: "weft_sk_orig",
  tuples: "weft_tuples",
  stats: "weft_stats",
  meta: "weft_meta",
} as const;

/** Kernel map types (enum bpf_map_type) the shared maps have, checked on pinned maps before reuse. */
export const MAP_TYPE = { HASH: 1, ARRAY: 2, PERCPU_ARRAY: 6, LRU_HASH: 9, LPM_TRIE: 11, SK_STORAGE: 24 } as const;

/** weft_config (.rodata of every object). */
export const configCodec = structCodec("weft_config", 16, {
  proxy_ip4: ["ipv4", 0],
  proxy_port: ["be16", 4],
  proxy_mark: ["u32", 8],
  pod_level: ["u32", 12],
});

/** weft_pods key: cgroup id. */
export const podKeyCodec = scalarCodec("u64");
/** weft_pods value. */
export const podCodec = structCodec("weft_pod", 8, { flags: ["u32", 0], ip4: ["ipv4", 4] });

/** weft_guard key: pod IPv4 (network order). */
export const guardKeyCodec = scalarCodec("ipv4");
/** weft_guard value. */
export const guardCodec = structCodec("weft_guard", 8, { mode: ["u32", 0], ifindex: ["u32", 4] });

/** weft_tuples key (client's view: pod → proxy). */
export const tupleCodec = structCodec("weft_tuple4", 12, {
  saddr: ["ipv4", 0],
  daddr: ["ipv4", 4],
  sport: ["be16", 8],
  dport: ["be16", 10],
});
/** weft_tuples and weft_sk_orig value. */
export const origCodec = structCodec("weft_orig", 16, { ip4: ["ipv4", 0], port: ["be16", 4], cgroup_id: ["u64", 8] });

/** weft_exclude key (LPM: prefixlen counts the 32 bits of port+pad, then the address bits). */
export const excludeKeyCodec = structCodec("weft_exclude_key", 12, {
  prefixlen: ["u32", 0],
  port: ["be16", 4],
  addr: ["ipv4", 8],
});
/** weft_exclude value. */
export const excludeValueCodec = structCodec("weft_exclude_value", 4, { flags: ["u32", 0] });

/** weft_meta key (always 0) and value. */
export const metaKeyCodec = scalarCodec("u32");
export const metaCodec = structCodec("weft_meta", 16, { magic: ["u32", 0], abi_version: ["u32", 4], created_ns: ["u64", 8] });

/** weft_stats key. */
export const statsKeyCodec = scalarCodec("u32");

/** Every struct codec, for the ABI test. */
export const STRUCT_CODECS = [configCodec, podCodec, guardCodec, tupleCodec, origCodec, excludeKeyCodec, excludeValueCodec, metaCodec];

/** Expected shape of each shared map: what a pinned map must match before it is reused. */
export const MAP_SHAPES: Readonly<Record<string, { type: number; keySize: number; valueSize: number; maxEntries: number }>> = {
  [MAP.pods]: { type: MAP_TYPE.HASH, keySize: 8, valueSize: podCodec.size, maxEntries: MAX_PODS },
  [MAP.guard]: { type: MAP_TYPE.HASH, keySize: 4, valueSize: guardCodec.size, maxEntries: MAX_PODS },
  [MAP.exclude]: { type: MAP_TYPE.LPM_TRIE, keySize: excludeKeyCodec.size, valueSize: excludeValueCodec.size, maxEntries: MAX_EXCLUDES },
  [MAP.skOrig]: { type: MAP_TYPE.SK_STORAGE, keySize: 4, valueSize: origCodec.size, maxEntries: 0 },
  [MAP.tuples]: { type: MAP_TYPE.LRU_HASH, keySize: tupleCodec.size, valueSize: origCodec.size, maxEntries: MAX_TUPLES },
  [MAP.stats]: { type: MAP_TYPE.PERCPU_ARRAY, keySize: 4, valueSize: 8, maxEntries: REASON_MAX },
  [MAP.meta]: { type: MAP_TYPE.ARRAY, keySize: 4, valueSize: metaCodec.size, maxEntries: 1 },
};
