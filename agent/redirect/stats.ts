/**
 * weft_stats, the per-CPU decision counters: summed over CPUs and named by reason. A per-CPU
 * map's value, seen from userspace, is one 8-byte slot per possible CPU.
 */
import { readFileSync } from "node:fs";
import type { BpfMap } from "../../native/bpf-map.js";
import { REASON_MAX, REASONS, statsKeyCodec } from "./abi.js";

/** Number of possible CPUs ("0-3,5" style list in /sys/devices/system/cpu/possible). */
export function possibleCpus(text = readFileSync("/sys/devices/system/cpu/possible", "utf8")): number {
  let max = -1;
  for (const part of text.trim().split(",")) {
    const [a, b] = part.split("-").map(Number);
    max = Math.max(max, b ?? a ?? 0);
  }
  return max + 1;
}

/** Counters by reason name (zero counters included, so dashboards see every series). */
export function readStats(map: BpfMap): Record<string, number> {
  const cpus = possibleCpus();
  const out: Record<string, number> = {};
  for (let r = 0; r < Math.min(REASONS.length, REASON_MAX); r++) {
    const raw = map.lookupRaw(statsKeyCodec.encode(r), 8 * cpus);
    let sum = 0n;
    if (raw) for (let c = 0; c < cpus; c++) sum += raw.readBigUInt64LE(c * 8);
    out[REASONS[r] as string] = Number(sum);
  }
  return out;
}
