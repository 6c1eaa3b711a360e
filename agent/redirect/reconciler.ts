/**
 * Making weft_pods, weft_guard and the guard links match a desired pod set. Decide first, then
 * act: plan() works out every map change from the desired set and the maps' current content
 * with no I/O (table-tested); apply() carries it out. Only maps change, so established
 * connections are never touched: enrolment affects new connects only.
 *
 * A pod that cannot be resolved (its cgroup vanished, its veth is missing) is reported as failed
 * and its existing entries are left as they were: a transient error must not silently stop
 * capturing (fail open) a pod that was enrolled.
 */
import type { BpfMap } from "../../native/bpf-map.js";
import { guardCodec, guardKeyCodec, INBOUND_MODE, POD_CAPTURE, podCodec, podKeyCodec } from "./abi.js";
import { ipv4ToInt } from "./codec.js";
import type { InboundMode, PodRedirect } from "./types.js";

/** weft_pods value. */
export interface PodEntry {
  flags: number;
  ip4: string;
}

/** weft_guard value. */
export interface GuardEntry {
  mode: number;
  ifindex: number;
}

/** A desired pod with what the kernel needs: its cgroup id and (when guarded) its veth's ifindex. */
export interface ResolvedPod {
  pod: PodRedirect;
  cgroupId: bigint;
  ifindex: number | null;
}

/** What the maps hold now. */
export interface CurrentMaps {
  pods: ReadonlyMap<bigint, PodEntry>;
  guard: ReadonlyMap<string, GuardEntry>;
}

/** Keys owned by a pod in the last applied set (so failed pods keep theirs). */
export interface KnownPod {
  cgroupId: bigint;
  ip: string;
}

/** The map changes to make. */
export interface Plan {
  podUpserts: [bigint, PodEntry][];
  podDeletes: bigint[];
  guardUpserts: [string, GuardEntry][];
  guardDeletes: string[];
  /** Interfaces that must keep (or get) a guard. */
  guardIfindexes: Set<number>;
  enrolled: string[];
  updated: string[];
  removed: string[];
}

const MODES: readonly InboundMode[] = ["off", "permissive", "strict"];

/** Checks one desired pod's fields; returns the problems (empty when fine). */
export function podProblems(p: PodRedirect): string[] {
  const out: string[] = [];
  if (typeof p.uid !== "string" || p.uid === "") out.push("uid is missing");
  try {
    ipv4ToInt(p.ip);
  } catch {
    out.push(`ip '${String(p.ip)}' is not an IPv4 address`);
  }
  if (typeof p.cgroupPath !== "string" || !p.cgroupPath.startsWith("/"))
    out.push(`cgroupPath '${String(p.cgroupPath)}' is not an absolute path`);
  if (typeof p.capture !== "boolean") out.push("capture must be true or false");
  if (!MODES.includes(p.inbound)) out.push(`inbound '${String(p.inbound)}' must be off, permissive or strict`);
  if (p.inbound !== "off" && (typeof p.hostInterface !== "string" || p.hostInterface === "")) {
    out.push(`inbound '${p.inbound}' needs hostInterface (the pod's host-side veth)`);
  }
  return out;
}

function sameGuard(a: GuardEntry | undefined, b: GuardEntry): boolean {
  return a !== undefined && a.mode === b.mode && a.ifindex === b.ifindex;
}

function samePod(a: PodEntry | undefined, b: PodEntry): boolean {
  return a !== undefined && a.flags === b.flags && a.ip4 === b.ip4;
}

/**
 * Plans the changes from the current maps to the desired pods. `protect` holds keys of pods that
 * failed to resolve this round: they are neither deleted nor reported.
 */
export function plan(
  desired: readonly ResolvedPod[],
  current: CurrentMaps,
  known: ReadonlyMap<string, KnownPod>,
  protect: { cgroupIds: ReadonlySet<bigint>; ips: ReadonlySet<string> },
): Plan {
  const out: Plan = {
    podUpserts: [],
    podDeletes: [],
    guardUpserts: [],
    guardDeletes: [],
    guardIfindexes: new Set(),
    enrolled: [],
    updated: [],
    removed: [],
  };
  const wantPods = new Map<bigint, PodEntry>();
  const wantGuard = new Map<string, GuardEntry>();
  for (const r of desired) {
    const had = current.pods.has(r.cgroupId) || current.guard.has(r.pod.ip);
    let changed = false;
    if (r.pod.capture) {
      const entry = { flags: POD_CAPTURE, ip4: r.pod.ip };
      wantPods.set(r.cgroupId, entry);
      if (!samePod(current.pods.get(r.cgroupId), entry)) {
        out.podUpserts.push([r.cgroupId, entry]);
        changed = true;
      }
    }
    if (r.pod.inbound !== "off" && r.ifindex !== null) {
      const entry = { mode: INBOUND_MODE[r.pod.inbound], ifindex: r.ifindex };
      wantGuard.set(r.pod.ip, entry);
      out.guardIfindexes.add(r.ifindex);
      if (!sameGuard(current.guard.get(r.pod.ip), entry)) {
        out.guardUpserts.push([r.pod.ip, entry]);
        changed = true;
      }
    }
    const has = wantPods.has(r.cgroupId) || wantGuard.has(r.pod.ip);
    if (!had && has) out.enrolled.push(r.pod.uid);
    else if (had && changed) out.updated.push(r.pod.uid);
  }
  // Who owns a key that goes away: a desired pod (it dropped capture or guard), else the last applied set.
  const byCgroup = new Map([...known].map(([uid, k]) => [k.cgroupId, uid]));
  const byIp = new Map([...known].map(([uid, k]) => [k.ip, uid]));
  for (const r of desired) {
    byCgroup.set(r.cgroupId, r.pod.uid);
    byIp.set(r.pod.ip, r.pod.uid);
  }
  const removed = new Set<string>();
  for (const cg of current.pods.keys()) {
    if (wantPods.has(cg) || protect.cgroupIds.has(cg)) continue;
    out.podDeletes.push(cg);
    removed.add(byCgroup.get(cg) ?? `cgroup:${cg}`);
  }
  for (const [ip, g] of current.guard) {
    if (wantGuard.has(ip)) continue;
    if (protect.ips.has(ip)) {
      out.guardIfindexes.add(g.ifindex);
      continue;
    }
    out.guardDeletes.push(ip);
    removed.add(byIp.get(ip) ?? `ip:${ip}`);
  }
  // A pod still desired but losing one of its entries (e.g. capture off, guard kept) is updated, not removed.
  const stillThere = new Set(desired.filter((r) => wantPods.has(r.cgroupId) || wantGuard.has(r.pod.ip)).map((r) => r.pod.uid));
  for (const uid of removed) {
    if (stillThere.has(uid)) {
      if (!out.updated.includes(uid)) out.updated.push(uid);
    } else out.removed.push(uid);
  }
  return out;
}

/** Reads the current content of weft_pods and weft_guard. */
export function readCurrent(pods: BpfMap, guard: BpfMap): CurrentMaps {
  return {
    pods: new Map(pods.entries(podKeyCodec, podCodec)),
    guard: new Map(guard.entries(guardKeyCodec, guardCodec)),
  };
}

/** Applies a plan's map changes: upserts before deletes, so a moved pod is never absent from both. */
export function applyMaps(p: Plan, pods: BpfMap, guard: BpfMap): void {
  for (const [k, v] of p.podUpserts) pods.update(podKeyCodec, podCodec, k, v);
  for (const [k, v] of p.guardUpserts) guard.update(guardKeyCodec, guardCodec, k, v);
  for (const k of p.podDeletes) pods.delete(podKeyCodec, k);
  for (const k of p.guardDeletes) guard.delete(guardKeyCodec, k);
}
