import { join } from "node:path";
import { BpfLink } from "../../native/bpf-link.js";
import { BpfMap, unpin } from "../../native/bpf-map.js";
import { BpfObject, type BpfProgram } from "../../native/bpf-object.js";
import { cgroupId, cgroupLevel } from "../../native/cgroup.js";
import { LINK_TYPE } from "../../native/libbpf.js";
import { pathExists } from "../../native/paths.js";
import { configCodec, MAP, MAP_SHAPES } from "./abi.js";
import { assessPinned, ensurePinDir, listPins, openPinnedLink, removeAllPins, shapeProblem, writeMeta } from "./pins.js";
import { CGROUP_HOOKS, type CgroupHook, GUARD, hookPinName, OBJECT_FILES } from "./programs.js";
import type { RedirectConfig } from "./types.js";

/** Shared maps by role, each an owned fd on the pinned map. */
export type SharedMaps = { -readonly [K in keyof typeof MAP]: BpfMap };

/** A cgroup hook as attached. */
export interface AttachedHook {
  hook: CgroupHook;
  link: BpfLink;
  cgroup: string;
  /** "created" on a fresh attach, "swapped" when a pinned link got the new program. */
  how: "created" | "swapped";
}

/** Everything start() brought up. */
export interface Installed {
  objects: Map<string, BpfObject>;
  maps: SharedMaps;
  hooks: AttachedHook[];
  guardProgram: BpfProgram;
  /** Set when pinned state of another ABI was found and removed. */
  replaced: string | null;
}

/** Progress notes for the agent's log. */
export type InstallLog = (msg: string, fields?: Record<string, unknown>) => void;

/** Loads, pins and attaches; on failure releases what it opened (pins made so far stay, consistent). */
export function install(cfg: RedirectConfig, log: InstallLog): Installed {
  ensurePinDir(cfg.pinDir);
  let replaced: string | null = null;
  const state = assessPinned(cfg.pinDir);
  if (state.kind === "incompatible") {
    replaced = state.reason;
    const removed = removeAllPins(cfg.pinDir);
    log("replaced incompatible pinned state", { reason: state.reason, removed });
    ensurePinDir(cfg.pinDir);
  }
  // Pods are matched by their cgroup below the parent, whatever depth their processes run at.
  const config = configCodec.encode({
    proxy_ip4: cfg.proxyAddress,
    proxy_port: cfg.outboundPort,
    proxy_mark: cfg.proxyMark,
    pod_level: cgroupLevel(cfg.podCgroupParent),
  });
  const objects = new Map<string, BpfObject>();
  const hooks: AttachedHook[] = [];
  try {
    for (const file of OBJECT_FILES) objects.set(file, loadObject(join(cfg.objectDir, file), cfg.pinDir, config));
    const maps = openSharedMaps(cfg.pinDir);
    const obj = (file: string) => objects.get(file) as BpfObject;
    for (const hook of CGROUP_HOOKS) {
      const cgroup = hook.target === "pods" ? cfg.podCgroupParent : cfg.proxyCgroup;
      hooks.push(attachHook(cfg.pinDir, hook, obj(hook.object).program(hook.program), cgroup));
    }
    const stale = dropStaleHookLinks(cfg.pinDir);
    log("programs attached", { hooks: hooks.map((h) => `${h.hook.program}:${h.how}`), ...(stale.length ? { removedStale: stale } : {}) });
    return { objects, maps, hooks, guardProgram: obj(GUARD.object).program(GUARD.program), replaced };
  } catch (e) {
    for (const h of hooks) h.link.close();
    for (const o of objects.values()) o.close();
    throw e;
  }
}

/**
 * Opens an object, sets its constants, hands it the pinned shared maps, loads it, and pins the
 * shared maps it had to create (weft_meta last, once written, so a crash half-way leaves state
 * that the next start recognises as unfinished and replaces).
 */
function loadObject(path: string, pinDir: string, config: Buffer): BpfObject {
  const obj = BpfObject.open(path);
  try {
    obj.setRodata(config);
    const shared = obj.mapNames().filter((n) => n in MAP_SHAPES);
    const created: string[] = [];
    for (const name of shared) {
      const pin = join(pinDir, name);
      if (!pathExists(pin)) {
        created.push(name);
        continue;
      }
      const problem = shapeProblem(pin, name);
      if (problem) throw new Error(`${problem}: run 'weft agent uninstall --pin-dir ${pinDir}' and start again`);
      const map = BpfMap.openPinned(pin);
      try {
        obj.reuseMap(name, map);
      } finally {
        map.close(); // libbpf keeps its own duplicate
      }
    }
    obj.load();
    if (created.includes(MAP.meta)) writeMeta(obj.map(MAP.meta));
    const order = [...created.filter((n) => n !== MAP.meta), ...created.filter((n) => n === MAP.meta)];
    for (const name of order) obj.map(name).pin(join(pinDir, name));
    return obj;
  } catch (e) {
    obj.close();
    throw e;
  }
}

function openSharedMaps(pinDir: string): SharedMaps {
  const out: Partial<SharedMaps> = {};
  for (const [role, name] of Object.entries(MAP) as [keyof typeof MAP, string][]) out[role] = BpfMap.openPinned(join(pinDir, name));
  return out as SharedMaps;
}

/** Detaches and unpins cgroup links of hooks this version no longer has (same ABI, fewer hooks). */
function dropStaleHookLinks(pinDir: string): string[] {
  const wanted = new Set(CGROUP_HOOKS.map(hookPinName));
  const dropped: string[] = [];
  for (const name of listPins(pinDir)) {
    if (!name.startsWith("link_") || wanted.has(name)) continue;
    const link = openPinnedLink(join(pinDir, name));
    try {
      link?.detach();
    } catch {
      // already detached; unpinning releases it
    }
    link?.close();
    unpin(join(pinDir, name));
    dropped.push(name);
  }
  return dropped;
}

/** Swaps the program of a matching pinned link, or replaces a stale one, or attaches and pins. */
function attachHook(pinDir: string, hook: CgroupHook, prog: BpfProgram, cgroup: string): AttachedHook {
  const pin = join(pinDir, hookPinName(hook));
  const existing = openPinnedLink(pin);
  if (existing) {
    const info = existing.info();
    if (info.type === LINK_TYPE.CGROUP && info.attachType === hook.attachType && info.cgroupId === cgroupId(cgroup)) {
      existing.update(prog.fd);
      return { hook, link: existing, cgroup, how: "swapped" };
    }
    // Attached elsewhere (the cgroup was re-created, or the config changed): move it.
    try {
      existing.detach();
    } catch {
      // already detached (its cgroup is gone); unpinning releases it
    }
    unpin(pin);
    existing.close();
  }
  const link = BpfLink.attachCgroup(hook.program, prog.fd, cgroup, hook.attachType);
  try {
    link.pin(pin);
  } catch (e) {
    link.detach();
    link.close();
    throw e;
  }
  return { hook, link, cgroup, how: "created" };
}
