/**
 * A read-only look at a pin directory, for `weft redirect status` and tests: the links with their
 * programs, the maps, and (only when the ABI matches) their entries. Never writes; safe to run
 * beside a live agent.
 */
import { closeSync } from "node:fs";
import { join } from "node:path";
import { progInfo } from "../../native/bpf-info.js";
import { BpfMap } from "../../native/bpf-map.js";
import { LINK_TYPE, libbpf } from "../../native/libbpf.js";
import { pathExists } from "../../native/paths.js";
import { excludeKeyCodec, excludeValueCodec, guardCodec, guardKeyCodec, inboundModeName, MAP, podCodec, podKeyCodec } from "./abi.js";
import { formatExclude } from "./exclude.js";
import { assessPinned, listPins, openPinnedLink } from "./pins.js";
import { readStats } from "./stats.js";
import type { InboundMode } from "./types.js";

/** One pinned link. */
export interface PinnedLink {
  pin: string;
  linkId: number;
  progId: number;
  progName: string;
  kind: "cgroup" | "tcx" | "other";
  cgroupId?: string;
  ifindex?: number;
  attachType: number;
}

/** What a pin directory holds. */
export interface Inspection {
  pinDir: string;
  exists: boolean;
  state: "empty" | "compatible" | "incompatible";
  reason?: string;
  links: PinnedLink[];
  maps: { name: string; id: number; entries: number }[];
  pods: { cgroupId: string; flags: number; ip: string }[];
  guard: { ip: string; mode: InboundMode; ifindex: number }[];
  excluded: string[];
  stats: Record<string, number>;
}

/** Inspects a pin directory. */
export function inspect(pinDir: string): Inspection {
  const out: Inspection = {
    pinDir,
    exists: pathExists(pinDir),
    state: "empty",
    links: [],
    maps: [],
    pods: [],
    guard: [],
    excluded: [],
    stats: {},
  };
  if (!out.exists) return out;
  const assessed = assessPinned(pinDir);
  out.state = assessed.kind;
  if (assessed.kind === "incompatible") out.reason = assessed.reason;
  for (const name of listPins(pinDir)) {
    if (!name.startsWith("link_") && !name.startsWith("guard_")) continue;
    const link = openPinnedLink(join(pinDir, name));
    if (!link) continue;
    try {
      const info = link.info();
      out.links.push({
        pin: name,
        linkId: info.id,
        progId: info.progId,
        progName: progName(info.progId),
        kind: info.type === LINK_TYPE.CGROUP ? "cgroup" : info.type === LINK_TYPE.TCX ? "tcx" : "other",
        ...(info.type === LINK_TYPE.CGROUP ? { cgroupId: String(info.cgroupId) } : {}),
        ...(info.type === LINK_TYPE.TCX ? { ifindex: info.ifindex } : {}),
        attachType: info.attachType,
      });
    } finally {
      link.close();
    }
  }
  if (assessed.kind !== "compatible") return out;
  const open = (name: string) => BpfMap.openPinned(join(pinDir, name));
  for (const name of Object.values(MAP)) {
    const m = open(name);
    try {
      const info = m.info();
      const sized = name === MAP.skOrig || name === MAP.stats || name === MAP.meta;
      out.maps.push({ name, id: info.id, entries: sized ? info.maxEntries : m.count(info.keySize) });
      if (name === MAP.pods)
        out.pods = m.entries(podKeyCodec, podCodec).map(([k, v]) => ({ cgroupId: String(k), flags: v.flags, ip: v.ip4 }));
      if (name === MAP.guard)
        out.guard = m.entries(guardKeyCodec, guardCodec).map(([ip, v]) => ({ ip, mode: inboundModeName(v.mode), ifindex: v.ifindex }));
      if (name === MAP.exclude) out.excluded = m.entries(excludeKeyCodec, excludeValueCodec).map(([k]) => formatExclude(k));
      if (name === MAP.stats) out.stats = readStats(m);
    } finally {
      m.close();
    }
  }
  return out;
}

function progName(id: number): string {
  const fd = libbpf().bpf_prog_get_fd_by_id(id);
  if (fd < 0) return "";
  try {
    return progInfo(fd).name;
  } finally {
    closeSync(fd);
  }
}
