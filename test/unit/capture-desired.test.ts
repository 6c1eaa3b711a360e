import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { desiredRedirects, inboundModeOf } from "../../agent/capture/desired.js";
import { findKubeletCgroup, PodCgroups } from "../../agent/capture/pod-cgroups.js";
import { MeshView } from "../../agent/state/view.js";
import type { PeerAuthentication } from "../../controller/api/model.js";
import { snapshot, workload } from "../helpers/mesh-fixture.js";

const N1 = "10.250.0.11";
const a = workload({ name: "a", ns: "shop", ip: "10.244.1.2", node: "n1", nodeAddress: N1 });
const b = workload({ name: "b", ns: "shop", ip: "10.244.1.3", node: "n1", nodeAddress: N1, labels: { app: "b" } });
const off = workload({ name: "legacy", ns: "legacy", ip: "10.244.1.4", node: "n1", nodeAddress: N1, enrolled: false });
const remote = workload({ name: "r", ns: "shop", ip: "10.244.2.2", node: "n2", nodeAddress: "10.250.0.12" });
const strictNs: PeerAuthentication = {
  key: "shop/strict",
  name: "strict",
  namespace: "shop",
  scope: { kind: "namespace" },
  mode: "STRICT",
  portLevelMtls: {},
};
const permissiveB: PeerAuthentication = {
  key: "shop/b",
  name: "b",
  namespace: "shop",
  scope: { kind: "workload", selector: { app: "b" } },
  mode: "PERMISSIVE",
  portLevelMtls: {},
};

function view(pas: PeerAuthentication[] = []) {
  return new MeshView({ ...snapshot("n1", [a, b, off, remote]), peerAuthentications: pas });
}

describe("desired redirects", () => {
  it("captures enrolled local pods only, with the guard mode from PeerAuthentication", () => {
    const d = desiredRedirects(
      view([strictNs, permissiveB]),
      (w) => `/cg/${w.name}`,
      (w) => `veth-${w.name}`,
    );
    expect(d.pods.map((p) => [p.name, p.capture, p.inbound, p.cgroupPath, p.hostInterface])).toEqual([
      ["a", true, "strict", "/cg/a", "veth-a"],
      ["b", true, "permissive", "/cg/b", "veth-b"],
    ]);
    expect(d.unresolved).toEqual([]);
  });

  it("reports pods it cannot resolve and leaves them out", () => {
    const d = desiredRedirects(
      view(),
      (w) => (w.name === "a" ? new Error("no cgroup") : `/cg/${w.name}`),
      (w) => `veth-${w.name}`,
    );
    expect(d.pods.map((p) => p.name)).toEqual(["b"]);
    expect(d.unresolved).toEqual([{ pod: "shop/a", error: "no cgroup" }]);
  });

  it("maps modes: default PERMISSIVE, DISABLE off, outside the mesh off", () => {
    expect(inboundModeOf(view(), a)).toBe("permissive");
    expect(inboundModeOf(view([{ ...strictNs, mode: "DISABLE" }]), a)).toBe("off");
    expect(inboundModeOf(view([strictNs]), off)).toBe("off");
  });
});

describe("pod cgroups", () => {
  const root = mkdtempSync(join(tmpdir(), "weft-cg-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  it("finds kubelet's cgroupfs and systemd layouts", () => {
    mkdirSync(join(root, "kubepods", "besteffort", "pod11111111-2222-3333-4444-555555555555"), { recursive: true });
    mkdirSync(
      join(root, "kubepods.slice", "kubepods-burstable.slice", "kubepods-burstable-podaaaaaaaa_bbbb_cccc_dddd_eeeeeeeeeeee.slice"),
      { recursive: true },
    );
    expect(findKubeletCgroup(root, "11111111-2222-3333-4444-555555555555")).toBe(
      join(root, "kubepods", "besteffort", "pod11111111-2222-3333-4444-555555555555"),
    );
    expect(findKubeletCgroup(root, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")).toMatch(
      /kubepods-burstable-podaaaaaaaa_bbbb_cccc_dddd_eeeeeeeeeeee\.slice$/,
    );
    expect(findKubeletCgroup(root, "99999999-0000-0000-0000-000000000000")).toBeNull();
  });
  it("resolves the local cluster layout and says where it looked", () => {
    mkdirSync(join(root, "pods", "shop.a"), { recursive: true });
    const cg = new PodCgroups(join(root, "pods"), "local");
    expect(cg.resolve({ uid: "u", namespace: "shop", name: "a" })).toBe(join(root, "pods", "shop.a"));
    expect(String(cg.resolve({ uid: "u", namespace: "shop", name: "zz" }))).toMatch(/shop\.zz does not exist/);
  });
});
