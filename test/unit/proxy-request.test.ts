import { describe, expect, it } from "vitest";
import { checkInbound, forwardedFor, parseAuthority } from "../../agent/proxy/inbound-policy.js";
import { buildRequest, localSource } from "../../agent/proxy/request.js";
import { MeshView } from "../../agent/state/view.js";
import { service, snapshot, workload } from "../helpers/mesh-fixture.js";

const N1 = "10.250.0.11";
const N2 = "10.250.0.12";
const client = workload({ name: "client", ns: "shop", ip: "10.244.1.2", node: "node1", nodeAddress: N1 });
const local = workload({ name: "local", ns: "shop", ip: "10.244.1.3", node: "node1", nodeAddress: N1 });
const remote = workload({ name: "remote", ns: "shop", ip: "10.244.2.2", node: "node2", nodeAddress: N2 });
const plain = workload({ name: "plain", ns: "legacy", ip: "10.244.2.3", node: "node2", nodeAddress: N2, enrolled: false });
const svc = service("api", "shop", "10.96.0.10", 80, 8080, [remote]);
const legacySvc = service("legacy", "legacy", "10.96.0.11", 80, 9090, [plain]);
const empty = { ...service("empty", "shop", "10.96.0.12", 80, 80, []) };
const view = new MeshView(snapshot("node1", [client, local, remote, plain], [svc, legacySvc, empty]));

describe("buildRequest", () => {
  it.each([
    [
      "pod on another node → HBONE to its node",
      "10.244.2.2",
      7000,
      { kind: "hbone", target: { ip: "10.244.2.2", port: 7000 }, hbone: { ip: N2, port: 15008 }, sameNode: false },
    ],
    [
      "pod on this node → same-node delivery",
      "10.244.1.3",
      7000,
      { kind: "hbone", sameNode: true, target: { ip: "10.244.1.3", port: 7000 } },
    ],
    [
      "service VIP → endpoint at target port over HBONE",
      "10.96.0.10",
      80,
      { kind: "hbone", target: { ip: "10.244.2.2", port: 8080 }, expectedIdentity: remote.identity },
    ],
    [
      "VIP of a non-mesh service → passthrough to the endpoint",
      "10.96.0.11",
      80,
      { kind: "passthrough", target: { ip: "10.244.2.3", port: 9090 } },
    ],
    ["non-mesh pod → passthrough", "10.244.2.3", 9090, { kind: "passthrough", target: { ip: "10.244.2.3", port: 9090 } }],
    ["unknown address → passthrough as dialled", "10.250.0.12", 22, { kind: "passthrough", target: { ip: "10.250.0.12", port: 22 } }],
    ["VIP on a port the service lacks → reject", "10.96.0.10", 81, { kind: "reject" }],
    ["service without endpoints → reject", "10.96.0.12", 80, { kind: "reject" }],
  ] as const)("%s", (_name, ip, port, want) => {
    expect(buildRequest(view, client.addresses[0] as string, { ip, port })).toMatchObject(want);
  });

  it("rejects a source that is not a workload of this node, saying why", () => {
    const r = buildRequest(view, remote.addresses[0] as string, { ip: "10.244.1.3", port: 80 });
    expect(r).toMatchObject({ kind: "reject", code: "WEFT_SOURCE_NOT_IN_MESH" });
    expect(r.kind === "reject" && r.reason).toMatch(/not a workload on node node1/);
  });

  it("opens nothing for a pod of this node that is not enrolled, to any destination", () => {
    const outsider = workload({ name: "outsider", ns: "legacy", ip: "10.244.1.7", node: "node1", nodeAddress: N1, enrolled: false });
    const v = new MeshView(snapshot("node1", [client, local, remote, plain, outsider], [svc, legacySvc]));
    for (const dst of [
      { ip: "10.244.1.3", port: 7000 }, // same node, in the mesh
      { ip: "10.244.2.2", port: 7000 }, // another node, in the mesh
      { ip: "10.96.0.10", port: 80 }, // a mesh service
      { ip: "10.96.0.11", port: 80 }, // a service outside the mesh
      { ip: "10.250.0.12", port: 22 }, // no workload at all
    ]) {
      const r = buildRequest(v, "10.244.1.7", dst);
      expect(r, `${dst.ip}:${dst.port}`).toMatchObject({ kind: "reject", code: "WEFT_SOURCE_NOT_IN_MESH", source: { name: "outsider" } });
      expect(r.kind === "reject" && r.reason).toMatch(/legacy\/outsider \(10\.244\.1\.7\) is not enrolled/);
    }
  });
});

describe("localSource", () => {
  const outsider = workload({ name: "outsider", ns: "legacy", ip: "10.244.1.7", node: "node1", nodeAddress: N1, enrolled: false });
  const twinA = workload({ name: "a", ns: "shop", ip: "10.244.1.8", node: "node1", nodeAddress: N1 });
  const twinB = workload({ name: "b", ns: "shop", ip: "10.244.1.8", node: "node1", nodeAddress: N1 });
  const v = new MeshView(snapshot("node1", [client, remote, outsider, twinA, twinB], []));

  it.each([
    ["an enrolled pod of this node", "10.244.1.2", { ok: true, source: { name: "client" } }],
    ["a pod of this node outside the mesh", "10.244.1.7", { ok: false, code: "WEFT_SOURCE_NOT_IN_MESH", source: { name: "outsider" } }],
    ["an enrolled pod of another node", "10.244.2.2", { ok: false, code: "WEFT_SOURCE_NOT_IN_MESH" }],
    ["an address no workload has", "10.244.1.99", { ok: false, code: "WEFT_SOURCE_NOT_IN_MESH" }],
    ["the node's own address", N1, { ok: false, code: "WEFT_SOURCE_NOT_IN_MESH" }],
    ["an address two pods claim", "10.244.1.8", { ok: false, code: "WEFT_NO_ROUTE" }],
    ["text that is no address", "not-an-ip", { ok: false, code: "WEFT_SOURCE_NOT_IN_MESH" }],
  ] as const)("%s", (_name, ip, want) => {
    expect(localSource(v, ip)).toMatchObject(want);
  });

  it("never hands out a source for a refusal: a refused address carries no identity to tunnel under", () => {
    for (const ip of ["10.244.1.7", "10.244.2.2", "10.244.1.99", "10.244.1.8"]) {
      const r = localSource(v, ip);
      expect(r.ok).toBe(false);
      expect(buildRequest(v, ip, { ip: "10.244.2.2", port: 80 }).kind).toBe("reject");
    }
  });

  it("uses the picker to choose among ready endpoints", () => {
    const second = workload({ name: "remote2", ns: "shop", ip: "10.244.2.9", node: "node2", nodeAddress: N2 });
    const two = service("api", "shop", "10.96.0.10", 80, 8080, [remote, second]);
    const v = new MeshView(snapshot("node1", [client, remote, second], [two]));
    const r = buildRequest(v, "10.244.1.2", { ip: "10.96.0.10", port: 80 }, (_s, eps) => eps[1] as (typeof eps)[number]);
    expect(r).toMatchObject({ kind: "hbone", target: { ip: "10.244.2.9" } });
  });
});

describe("inbound decision", () => {
  const v2 = new MeshView(snapshot("node2", [client, remote, plain], [svc]));
  it.each([
    [
      "allowed to a local mesh pod",
      { sourceIdentity: client.identity, sourceIp: "10.244.1.2", target: { ip: "10.244.2.2", port: 80 } },
      { ok: true },
    ],
    [
      "unknown destination",
      { sourceIdentity: client.identity, sourceIp: "10.244.1.2", target: { ip: "10.244.9.9", port: 80 } },
      { ok: false, status: 400, code: "WEFT_UNKNOWN_DESTINATION" },
    ],
    [
      "destination on another node",
      { sourceIdentity: remote.identity, sourceIp: "10.244.2.2", target: { ip: "10.244.1.2", port: 80 } },
      { ok: false, status: 400, code: "WEFT_WRONG_NODE" },
    ],
    [
      "destination not in the mesh",
      { sourceIdentity: client.identity, sourceIp: "10.244.1.2", target: { ip: "10.244.2.3", port: 80 } },
      { ok: false, status: 400, code: "WEFT_NOT_IN_MESH" },
    ],
    [
      "SNI asked for another identity",
      {
        sourceIdentity: client.identity,
        sourceIp: "10.244.1.2",
        target: { ip: "10.244.2.2", port: 80 },
        presentedIdentity: plain.identity,
      },
      { ok: false, status: 421, code: "WEFT_IDENTITY_MISMATCH" },
    ],
  ] as const)("%s", (_name, req, want) => {
    expect(checkInbound(v2, req)).toMatchObject(want);
  });

  it("trusts the forwarded source workload only when its identity is the authenticated one", () => {
    const ok = checkInbound(v2, { sourceIdentity: client.identity, sourceIp: "10.244.1.2", target: { ip: "10.244.2.2", port: 80 } });
    expect(ok.ok && ok.source?.name).toBe("client");
    const spoof = checkInbound(v2, { sourceIdentity: plain.identity, sourceIp: "10.244.1.2", target: { ip: "10.244.2.2", port: 80 } });
    expect(spoof.ok && spoof.source).toBe(undefined);
  });

  it("parses forwarded and authority headers", () => {
    expect(forwardedFor("for=10.244.1.2")).toBe("10.244.1.2");
    expect(forwardedFor('for="[fd00::1]:443";proto=https')).toBe("fd00::1");
    expect(forwardedFor(undefined)).toBeUndefined();
    expect(parseAuthority("10.244.1.2:8080")).toEqual({ ip: "10.244.1.2", port: 8080 });
    expect(parseAuthority("[fd00::1]:80")).toEqual({ ip: "fd00::1", port: 80 });
    expect(parseAuthority("host:80")).toBeNull();
    expect(parseAuthority("10.0.0.1:99999")).toBeNull();
  });
});
