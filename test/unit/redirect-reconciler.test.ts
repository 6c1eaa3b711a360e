/** plan(): the map changes from the current maps to a desired pod set, decided with no I/O. */
import { describe, expect, it } from "vitest";
import { INBOUND_MODE, POD_CAPTURE } from "../../agent/redirect/abi.js";
import {
  type CurrentMaps,
  type GuardEntry,
  type KnownPod,
  type PodEntry,
  plan,
  podProblems,
  type ResolvedPod,
} from "../../agent/redirect/reconciler.js";
import type { InboundMode, PodRedirect } from "../../agent/redirect/types.js";

function pod(n: number, capture = true, inbound: InboundMode = "off"): PodRedirect {
  return {
    uid: `uid-${n}`,
    namespace: "default",
    name: `p${n}`,
    cgroupPath: `/sys/fs/cgroup/unified/x/pods/default.p${n}`,
    ip: `10.244.1.${n + 1}`,
    hostInterface: `weft${n}`,
    capture,
    inbound,
  };
}

function resolved(p: PodRedirect): ResolvedPod {
  const n = Number(p.uid.slice(4));
  return { pod: p, cgroupId: BigInt(1000 + n), ifindex: p.inbound === "off" ? null : 10 + n };
}

function current(pods: [bigint, PodEntry][] = [], guard: [string, GuardEntry][] = []): CurrentMaps {
  return { pods: new Map(pods), guard: new Map(guard) };
}

const none = { cgroupIds: new Set<bigint>(), ips: new Set<string>() };

describe("redirect reconcile plan", () => {
  it("enrols new pods: capture entries by cgroup id, guard entries by IP with the veth's ifindex", () => {
    const p = plan([resolved(pod(1)), resolved(pod(2, false, "strict"))], current(), new Map(), none);
    expect(p.podUpserts).toEqual([[1001n, { flags: POD_CAPTURE, ip4: "10.244.1.2" }]]);
    expect(p.guardUpserts).toEqual([["10.244.1.3", { mode: INBOUND_MODE.strict, ifindex: 12 }]]);
    expect([...p.guardIfindexes]).toEqual([12]);
    expect(p.enrolled).toEqual(["uid-1", "uid-2"]);
    expect(p.updated).toEqual([]);
    expect(p.removed).toEqual([]);
    expect(p.podDeletes).toEqual([]);
  });

  it("changes nothing when the maps already match (idempotent)", () => {
    const desired = [resolved(pod(1, true, "permissive"))];
    const cur = current(
      [[1001n, { flags: POD_CAPTURE, ip4: "10.244.1.2" }]],
      [["10.244.1.2", { mode: INBOUND_MODE.permissive, ifindex: 11 }]],
    );
    const p = plan(desired, cur, new Map(), none);
    expect(p.podUpserts).toEqual([]);
    expect(p.guardUpserts).toEqual([]);
    expect(p.enrolled.concat(p.updated, p.removed)).toEqual([]);
    expect([...p.guardIfindexes]).toEqual([11]);
  });

  it("reports a mode change as updated and rewrites only that entry", () => {
    const cur = current(
      [[1001n, { flags: POD_CAPTURE, ip4: "10.244.1.2" }]],
      [["10.244.1.2", { mode: INBOUND_MODE.permissive, ifindex: 11 }]],
    );
    const p = plan([resolved(pod(1, true, "strict"))], cur, new Map(), none);
    expect(p.guardUpserts).toEqual([["10.244.1.2", { mode: INBOUND_MODE.strict, ifindex: 11 }]]);
    expect(p.podUpserts).toEqual([]);
    expect(p.updated).toEqual(["uid-1"]);
  });

  it("removes pods no longer desired, naming them from the last applied set (or by key after a restart)", () => {
    const cur = current(
      [
        [1001n, { flags: POD_CAPTURE, ip4: "10.244.1.2" }],
        [1002n, { flags: POD_CAPTURE, ip4: "10.244.1.3" }],
      ],
      [["10.244.1.9", { mode: INBOUND_MODE.strict, ifindex: 19 }]],
    );
    const known = new Map<string, KnownPod>([["uid-1", { cgroupId: 1001n, ip: "10.244.1.2" }]]);
    const p = plan([], cur, known, none);
    expect(p.podDeletes.sort()).toEqual([1001n, 1002n]);
    expect(p.guardDeletes).toEqual(["10.244.1.9"]);
    expect(p.removed.sort()).toEqual(["cgroup:1002", "ip:10.244.1.9", "uid-1"]);
    expect(p.guardIfindexes.size).toBe(0);
  });

  it("turning capture off but keeping the guard updates the pod instead of removing it", () => {
    const cur = current([[1001n, { flags: POD_CAPTURE, ip4: "10.244.1.2" }]], [["10.244.1.2", { mode: INBOUND_MODE.strict, ifindex: 11 }]]);
    const p = plan([resolved(pod(1, false, "strict"))], cur, new Map(), none);
    expect(p.podDeletes).toEqual([1001n]);
    expect(p.guardDeletes).toEqual([]);
    expect(p.updated).toEqual(["uid-1"]);
    expect(p.removed).toEqual([]);
  });

  it("a desired pod with capture off and guard off holds no entries and is removed", () => {
    const cur = current([[1001n, { flags: POD_CAPTURE, ip4: "10.244.1.2" }]]);
    const p = plan([resolved(pod(1, false, "off"))], cur, new Map(), none);
    expect(p.podDeletes).toEqual([1001n]);
    expect(p.removed).toEqual(["uid-1"]);
  });

  it("keeps the entries (and guard link) of a pod that failed to resolve this round", () => {
    const cur = current([[1001n, { flags: POD_CAPTURE, ip4: "10.244.1.2" }]], [["10.244.1.2", { mode: INBOUND_MODE.strict, ifindex: 11 }]]);
    const p = plan([], cur, new Map(), { cgroupIds: new Set([1001n]), ips: new Set(["10.244.1.2"]) });
    expect(p.podDeletes).toEqual([]);
    expect(p.guardDeletes).toEqual([]);
    expect(p.removed).toEqual([]);
    expect([...p.guardIfindexes]).toEqual([11]);
  });

  it("a pod re-created with a new cgroup moves its entry (upsert before delete)", () => {
    const cur = current([[1001n, { flags: POD_CAPTURE, ip4: "10.244.1.2" }]]);
    const moved: ResolvedPod = { ...resolved(pod(1)), cgroupId: 5001n };
    const p = plan([moved], cur, new Map([["uid-1", { cgroupId: 1001n, ip: "10.244.1.2" }]]), none);
    expect(p.podUpserts).toEqual([[5001n, { flags: POD_CAPTURE, ip4: "10.244.1.2" }]]);
    expect(p.podDeletes).toEqual([1001n]);
    expect(p.updated).toEqual(["uid-1"]);
    expect(p.removed).toEqual([]);
  });
});

describe("desired pod validation", () => {
  it("accepts a well-formed pod", () => {
    expect(podProblems(pod(1, true, "strict"))).toEqual([]);
  });

  it("names every bad field", () => {
    const bad = {
      ...pod(1),
      ip: "10.244.1.300",
      cgroupPath: "relative/path",
      inbound: "loose" as InboundMode,
      capture: "yes" as unknown as boolean,
    };
    const problems = podProblems(bad);
    expect(problems).toContain("ip '10.244.1.300' is not an IPv4 address");
    expect(problems).toContain("cgroupPath 'relative/path' is not an absolute path");
    expect(problems).toContain("inbound 'loose' must be off, permissive or strict");
    expect(problems).toContain("capture must be true or false");
  });

  it("requires the host interface when the pod is guarded", () => {
    expect(podProblems({ ...pod(1, true, "strict"), hostInterface: "" })).toEqual([
      "inbound 'strict' needs hostInterface (the pod's host-side veth)",
    ]);
  });
});
