/**
 * The pin directory: what a restarted agent finds there, whether it may trust it, and how to
 * remove all of it. Layout (all under RedirectConfig.pinDir):
 *   weft_<map>          the shared maps (weft_meta holds the ABI version that created them)
 *   link_<program>      the cgroup hooks' links
 *   guard_if<ifindex>   one TCX guard link per guarded pod interface
 */
import { closeSync, mkdirSync, readdirSync, rmdirSync, statfsSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "../../common/errors.js";
import { BpfError } from "../../native/bpf-error.js";
import { BpfLink } from "../../native/bpf-link.js";
import { BpfMap, unpin } from "../../native/bpf-map.js";
import { libbpf } from "../../native/libbpf.js";
import { ABI_VERSION, MAGIC, MAP, MAP_SHAPES, metaCodec, metaKeyCodec } from "./abi.js";

/** statfs f_type of bpffs. */
const BPF_FS_MAGIC = 0xcafe4a11;

/** What the pin directory holds, as far as a starting agent is concerned. */
export type PinnedState = { kind: "empty" } | { kind: "compatible"; createdNs: bigint } | { kind: "incompatible"; reason: string };

/** Creates the pin directory (and parents) and checks it is on bpffs. */
export function ensurePinDir(pinDir: string): void {
  mkdirSync(pinDir, { recursive: true, mode: 0o700 });
  const fsType = statfsSync(pinDir).type;
  if (fsType !== BPF_FS_MAGIC) {
    throw new Error(
      `pin directory ${pinDir} is not on bpffs (filesystem type 0x${fsType.toString(16)}): mount one with 'mount -t bpf bpf /sys/fs/bpf'`,
    );
  }
}

/** Names of the entries in the pin directory (empty when it does not exist). */
export function listPins(pinDir: string): string[] {
  try {
    return readdirSync(pinDir).sort();
  } catch {
    return [];
  }
}

/**
 * Reads weft_meta and checks every pinned shared map's shape, without reading anything else:
 * state written by another ABI version is reported, never interpreted.
 */
export function assessPinned(pinDir: string): PinnedState {
  const pins = listPins(pinDir);
  if (pins.length === 0) return { kind: "empty" };
  if (!pins.includes(MAP.meta))
    return {
      kind: "incompatible",
      reason: `no ${MAP.meta} among the pins (${pins.slice(0, 4).join(", ")}…): not weft's, or from a version before ABI versioning`,
    };
  let meta: BpfMap | undefined;
  try {
    meta = BpfMap.openPinned(join(pinDir, MAP.meta));
    const info = meta.info();
    const want = MAP_SHAPES[MAP.meta];
    if (!want || info.type !== want.type || info.keySize !== want.keySize || info.valueSize !== want.valueSize) {
      return {
        kind: "incompatible",
        reason: `${MAP.meta} has another layout (type ${info.type}, key ${info.keySize}, value ${info.valueSize} bytes)`,
      };
    }
    const m = meta.lookup(metaKeyCodec, metaCodec, 0);
    if (!m || m.magic !== MAGIC) return { kind: "incompatible", reason: `${MAP.meta} carries no weft magic` };
    if (m.abi_version !== ABI_VERSION)
      return { kind: "incompatible", reason: `pinned state has ABI version ${m.abi_version}, this agent speaks ${ABI_VERSION}` };
    for (const name of Object.values(MAP)) {
      if (!pins.includes(name)) continue;
      const problem = shapeProblem(join(pinDir, name), name);
      if (problem) return { kind: "incompatible", reason: problem };
    }
    return { kind: "compatible", createdNs: m.created_ns };
  } catch (e) {
    return { kind: "incompatible", reason: `cannot read ${MAP.meta}: ${errorMessage(e)}` };
  } finally {
    meta?.close();
  }
}

/** Why a pinned map cannot be reused as `name`, or null when it can. */
export function shapeProblem(path: string, name: string): string | null {
  const want = MAP_SHAPES[name];
  if (!want) return `unknown map ${name}`;
  const map = BpfMap.openPinned(path);
  try {
    const got = map.info();
    if (got.type !== want.type || got.keySize !== want.keySize || got.valueSize !== want.valueSize || got.maxEntries !== want.maxEntries) {
      return `pinned map ${name} is type ${got.type} key ${got.keySize} value ${got.valueSize} max ${got.maxEntries}, expected type ${want.type} key ${want.keySize} value ${want.valueSize} max ${want.maxEntries}`;
    }
    return null;
  } finally {
    map.close();
  }
}

/** Writes weft_meta[0] for freshly created maps. */
export function writeMeta(meta: BpfMap): void {
  const now = BigInt(Date.now()) * 1_000_000n;
  meta.update(metaKeyCodec, metaCodec, 0, { magic: MAGIC, abi_version: ABI_VERSION, created_ns: now });
}

/**
 * Detaches every pinned link and removes every pin, then the directory. Works on any version's
 * layout: each pin is tried as a link (a map just refuses BPF_LINK_DETACH) and unlinked.
 * Returns what was removed.
 */
export function removeAllPins(pinDir: string): string[] {
  const removed: string[] = [];
  for (const name of listPins(pinDir)) {
    const path = join(pinDir, name);
    const fd = libbpf().bpf_obj_get(path);
    if (fd >= 0) {
      // A link: cut it now, so no other holder keeps capture alive. A map: EINVAL, ignored.
      libbpf().bpf_link_detach(fd);
      closeFd(fd);
    }
    try {
      if (unpin(path)) removed.push(name);
    } catch (e) {
      // A directory (not weft's layout): remove its pins too.
      if ((e as NodeJS.ErrnoException).code === "EISDIR" || (e as NodeJS.ErrnoException).code === "EPERM") {
        removed.push(...removeAllPins(path).map((n) => `${name}/${n}`));
      } else throw e;
    }
  }
  try {
    rmdirSync(pinDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  return removed;
}

/** Reopens a pinned link, or null when the pin is absent. */
export function openPinnedLink(path: string): BpfLink | null {
  try {
    return BpfLink.openPinned(path);
  } catch (e) {
    if (e instanceof BpfError && e.errnoName === "ENOENT") return null;
    throw e;
  }
}

function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
