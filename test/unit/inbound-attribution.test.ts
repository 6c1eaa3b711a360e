/** Source attribution on HBONE (the forwarded header is a claim to check) and IP clashes failing closed. */
import { describe, expect, it } from "vitest";
import { attributeSource, checkInbound } from "../../agent/proxy/inbound-policy.js";
import { buildRequest } from "../../agent/proxy/request.js";
import { MeshView } from "../../agent/state/view.js";
import { translate } from "../../controller/translate/index.js";
import { namespace, node, objects, pod } from "../helpers/control-objects.js";
import { snapshot, workload } from "../helpers/mesh-fixture.js";

const N1 = "10.250.0.11";
const N2 = "10.250.0.12";
const client = workload({ name: "client", ns: "shop", ip: "10.244.2.5", node: "node2", nodeAddress: N2 });
const other = workload({ name: "other", ns: "admin", ip: "10.244.2.6", node: "node2", nodeAddress: N2 });
const server = workload({ name: "server", ns: "shop", ip: "10.244.1.3", node: "node1", nodeAddress: N1 });
const view = new MeshView(snapshot("node1", [client, other, server], []));

describe("attributeSource", () => {
  it.each([
    ["no header: the TCP peer", undefined, client.identity, N2, { ok: true, ip: N2, trusted: false }],
    [
      "a pod of the peer's node with the peer's identity",
      "for=10.244.2.5",
      client.identity,
      N2,
      { ok: true, ip: "10.244.2.5", trusted: true },
    ],
    ["IPv4-mapped peer address", "for=10.244.2.5", client.identity, `::ffff:${N2}`, { ok: true, ip: "10.244.2.5", trusted: true }],
    ["a pod with another identity: forged", "for=10.244.2.6", client.identity, N2, { ok: true, ip: N2, trusted: false }],
    ["the right identity from another node", "for=10.244.2.5", client.identity, N1, { ok: true, ip: N1, trusted: false }],
    ["an address no workload has", "for=10.9.9.9", client.identity, N2, { ok: true, ip: N2, trusted: false }],
    ["a hostname", "for=evil.example", client.identity, N2, { ok: false }],
    ["an obfuscated identifier", "for=_hidden", client.identity, N2, { ok: false }],
    ["not an address at all", "for=1.2.3.4.5", client.identity, N2, { ok: false }],
    ["an empty header", "", client.identity, N2, { ok: false }],
  ] as const)("%s", (_name, header, identity, peer, want) => {
    expect(attributeSource(view, header, identity, peer)).toMatchObject(want);
  });

  it("names the header it could not read", () => {
    const r = attributeSource(view, "for=evil.example", client.identity, N2);
    expect(!r.ok && r.reason).toContain("evil.example");
  });
});

describe("two pods claiming one IP", () => {
  const twin = { ...workload({ name: "twin", ns: "shop", ip: "10.244.1.3", node: "node1", nodeAddress: N1 }), uid: "u-twin" };
  const clashView = new MeshView(snapshot("node1", [client, server, twin], []));

  it("trusts neither with the address", () => {
    expect(clashView.workloadByAddress("10.244.1.3")).toBeUndefined();
    expect(clashView.isClashingAddress("10.244.1.3")).toBe(true);
    expect(clashView.isClashingAddress("10.244.2.5")).toBe(false);
  });

  it("refuses HBONE to it", () => {
    const d = checkInbound(clashView, { sourceIdentity: client.identity, sourceIp: "10.244.2.5", target: { ip: "10.244.1.3", port: 80 } });
    expect(d).toMatchObject({ ok: false, code: "WEFT_UNKNOWN_DESTINATION" });
    expect(!d.ok && d.reason).toContain("more than one pod");
  });

  it("refuses outbound from it and to it instead of passing through", () => {
    expect(buildRequest(clashView, "10.244.1.3", { ip: "10.244.2.5", port: 80 })).toMatchObject({ kind: "reject" });
    const local = workload({ name: "local", ns: "shop", ip: "10.244.1.9", node: "node1", nodeAddress: N1 });
    const v = new MeshView(snapshot("node1", [client, server, twin, local], []));
    expect(buildRequest(v, "10.244.1.9", { ip: "10.244.1.3", port: 80 })).toMatchObject({ kind: "reject", code: "WEFT_NO_ROUTE" });
  });
});

describe("translate: address ownership", () => {
  const n1 = node("n1", "10.250.0.11");
  it("a terminating pod leaves the address index to the live pod that has its IP", () => {
    const old = pod({ name: "old", ns: "shop", node: "n1", ip: "10.244.1.2" });
    old.metadata.deletionTimestamp = "2026-01-01T00:00:00Z";
    const fresh = pod({ name: "fresh", ns: "shop", node: "n1", ip: "10.244.1.2" });
    const m = translate(objects([namespace("shop"), n1, old, fresh]));
    expect(m.workloads.map((w) => w.name)).toEqual(["fresh"]);
    const v = new MeshView(snapshot("n1", m.workloads, []));
    expect(v.workloadByAddress("10.244.1.2")?.name).toBe("fresh");
  });

  it("two live pods with one IP are both reported and the view trusts neither", () => {
    const a = pod({ name: "a", ns: "shop", node: "n1", ip: "10.244.1.2" });
    const b = pod({ name: "b", ns: "shop", node: "n1", ip: "10.244.1.2" });
    const m = translate(objects([namespace("shop"), n1, a, b]));
    expect(m.diagnostics.some((d) => d.message.includes("also claimed"))).toBe(true);
    const v = new MeshView(snapshot("n1", m.workloads, []));
    expect(v.workloadByAddress("10.244.1.2")).toBeUndefined();
    expect(v.isClashingAddress("10.244.1.2")).toBe(true);
  });

  it("a terminating pod whose IP nobody else has keeps it", () => {
    const t = pod({ name: "t", ns: "shop", node: "n1", ip: "10.244.1.2" });
    t.metadata.deletionTimestamp = "2026-01-01T00:00:00Z";
    const m = translate(objects([namespace("shop"), n1, t]));
    expect(m.workloads.map((w) => w.addresses)).toEqual([["10.244.1.2"]]);
  });
});
