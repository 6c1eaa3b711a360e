/** Captured plaintext (15006): the decision (portLevelMtls, authorization with no identity) and the node's rules. */
import { describe, expect, it } from "vitest";
import { renderNodeRules } from "../../agent/capture/node-rules.js";
import { checkPlaintext, refusedSince } from "../../agent/proxy/inbound-policy.js";
import { MeshView } from "../../agent/state/view.js";
import { trafficLabels } from "../../agent/telemetry/labels.js";
import type { AuthorizationPolicy, AuthzSource, MeshSnapshotData, PeerAuthentication, Service } from "../../controller/api/model.js";
import { snapshot, workload } from "../helpers/mesh-fixture.js";

const N1 = "10.250.0.11";
const server = workload({ name: "server", ns: "shop", ip: "10.244.1.3", node: "node1", nodeAddress: N1 });
const remote = workload({ name: "remote", ns: "shop", ip: "10.244.2.3", node: "node2", nodeAddress: "10.250.0.12" });
const legacy = workload({ name: "legacy", ns: "legacy", ip: "10.244.1.9", node: "node1", nodeAddress: N1, enrolled: false });

const httpService: Service = {
  key: "shop/server",
  name: "server",
  namespace: "shop",
  hostname: "server.shop.svc.cluster.local",
  vips: ["10.96.0.3"],
  ports: [
    { name: "http", port: 80, targetPort: 8080, appProtocol: "http" },
    { name: "db", port: 5432, targetPort: 5432, appProtocol: "tcp" },
  ],
  endpoints: [{ workloadUid: server.uid, address: "10.244.1.3", ready: true }],
};

const allowFrom = (from: AuthzSource): AuthorizationPolicy => ({
  key: "shop/allow",
  name: "allow",
  namespace: "shop",
  scope: { kind: "namespace" },
  action: "ALLOW",
  rules: [{ from: [from], to: [], when: [] }],
});
const portStrict: PeerAuthentication = {
  key: "shop/port",
  name: "port",
  namespace: "shop",
  scope: { kind: "workload", selector: { app: "server" } },
  mode: "PERMISSIVE",
  portLevelMtls: { "9090": "STRICT" },
};

function view(policies: AuthorizationPolicy[] = [], pas: PeerAuthentication[] = []): MeshView {
  return new MeshView({ ...snapshot("node1", [server, remote, legacy], [], policies), peerAuthentications: pas });
}

describe("checkPlaintext where requests must be checked one by one", () => {
  const withDuty = (extra: Partial<MeshSnapshotData>) =>
    new MeshView({
      ...snapshot("node1", [server, legacy], [httpService]),
      ...extra,
    } as MeshSnapshotData);
  const at = (port: number) => ({ sourceIp: legacy.addresses[0] as string, target: { ip: "10.244.1.3", port } });
  const ra = {
    key: "shop/ra",
    name: "ra",
    namespace: "shop",
    scope: { kind: "namespace" },
    jwtRules: [{ issuer: "https://iss", jwks: "{}" }],
  };
  const rl = {
    key: "shop/rl",
    name: "rl",
    namespace: "shop",
    scope: { kind: "namespace" },
    total: { requestsPerSecond: 1, burst: 1 },
    overrides: [],
  };

  it.each([
    ["RequestAuthentication", { requestAuthentications: [ra] }],
    ["RateLimitPolicy", { rateLimitPolicies: [rl] }],
  ])("refuses plaintext to an HTTP port where a %s applies (it would pass unchecked), keeps a TCP port open", (duty, extra) => {
    const v = withDuty(extra as Partial<MeshSnapshotData>);
    const d = checkPlaintext(v, at(8080));
    expect(d).toMatchObject({ ok: false, status: 403, code: "WEFT_UNAUTHENTICATED" });
    expect(d.ok ? "" : d.reason).toContain(`a ${duty} applies to shop/server port 8080`);
    expect(checkPlaintext(v, at(5432))).toMatchObject({ ok: true });
    expect(checkPlaintext(withDuty({}), at(8080))).toMatchObject({ ok: true });
  });
});

describe("checkPlaintext", () => {
  const at = (port: number) => ({ sourceIp: legacy.addresses[0] as string, target: { ip: "10.244.1.3", port } });
  it.each([
    ["PERMISSIVE, no policy: allowed", view(), at(8080), { ok: true }],
    ["port-level STRICT on that port: refused", view([], [portStrict]), at(9090), { ok: false, status: 403, code: "WEFT_UNAUTHENTICATED" }],
    ["port-level STRICT elsewhere: allowed", view([], [portStrict]), at(8080), { ok: true }],
    [
      "an ALLOW naming principals never matches plaintext",
      view([allowFrom({ principals: ["*"] })]),
      at(8080),
      { ok: false, code: "WEFT_AUTHZ_DENIED" },
    ],
    [
      "an ALLOW naming namespaces never matches plaintext",
      view([allowFrom({ namespaces: ["legacy"] })]),
      at(8080),
      { ok: false, code: "WEFT_AUTHZ_DENIED" },
    ],
    ["an ALLOW by source address matches", view([allowFrom({ ipBlocks: ["10.244.1.0/24"] })]), at(8080), { ok: true }],
    ["a pod of another node: refused", view(), { sourceIp: "10.244.1.9", target: { ip: "10.244.2.3", port: 80 } }, { ok: false }],
    ["no pod at all: refused", view(), { sourceIp: "10.244.1.9", target: { ip: "10.244.1.77", port: 80 } }, { ok: false }],
  ] as const)("%s", (_name, v, req, want) => {
    expect(checkPlaintext(v, req)).toMatchObject(want);
  });

  it("names the port and the PeerAuthentication that made it STRICT", () => {
    const d = checkPlaintext(view([], [portStrict]), at(9090));
    expect(!d.ok && d.reason).toMatch(/STRICT for shop\/server port 9090 \(PeerAuthentication shop\/port\)/);
  });

  it("is reported by the destination as connection_security_policy none", () => {
    expect(trafficLabels({ reporter: "destination", destination: server, mtls: false }).connection_security_policy).toBe("none");
    expect(trafficLabels({ reporter: "source", destination: server, mtls: false }).connection_security_policy).toBe("unknown");
  });
});

describe("renderNodeRules", () => {
  const base = { proxyAddress: "10.244.1.1", plaintextPort: 15006, proxyMark: 0x7765, passthroughMark: 0x7764 };
  it("captures only guarded pods, HBONE to its own listener, and SNATs the node's own connections", () => {
    const text = renderNodeRules({
      ...base,
      hbonePort: 15008,
      pods: [
        { ip: "10.244.1.3", inbound: "strict" },
        { ip: "10.244.1.2", inbound: "permissive" },
        { ip: "10.244.1.4", inbound: "off" },
      ],
    });
    expect(text).toContain("elements = { 10.244.1.2, 10.244.1.3 }");
    expect(text).not.toContain("10.244.1.4");
    expect(text).toMatch(/tcp dport 15008 .* tproxy to 10\.244\.1\.1:15008/);
    expect(text).toMatch(/tproxy to 10\.244\.1\.1:15006/);
    expect(text).toContain("meta mark != { 0x7765, 0x7764 }");
    expect(text).toContain("snat to 169.254.7.127");
    // One transaction that replaces the table, whatever was there.
    expect(text.startsWith("table ip weft\ndelete table ip weft\n")).toBe(true);
  });

  it("leaves HBONE to pod addresses alone when there is no transparent HBONE listener", () => {
    const text = renderNodeRules({ ...base, hbonePort: null, pods: [] });
    expect(text).not.toContain("15008");
    expect(text).not.toContain("elements");
  });
});

describe("refusedSince: a connection decided with an older view, decided again after its dial", () => {
  const req = { sourceIp: legacy.addresses[0] as string, target: { ip: "10.244.1.3", port: 8080 } };
  const decide = (v: MeshView) => checkPlaintext(v, req);
  const before = view();

  it("says nothing while the view it was decided with is still in force", () => {
    expect(refusedSince(before, before, decide)).toBeNull();
  });

  it("says nothing when a newer view still allows it", () => {
    expect(refusedSince(before, view(), decide)).toBeNull();
  });

  it("refuses with the new view's status, code and reason when it now denies", () => {
    const strict: PeerAuthentication = { ...portStrict, portLevelMtls: { "8080": "STRICT" } };
    expect(refusedSince(before, view([], [strict]), decide)).toMatchObject({
      status: 403,
      code: "WEFT_UNAUTHENTICATED",
      flags: "DENY",
      reason: expect.stringMatching(/^policy changed while connecting: plaintext refused: mTLS is STRICT/),
    });
  });

  it("refuses a connection that would now need the destination's HTTP server", () => {
    const now = view();
    const http = () => ({
      ok: true as const,
      destination: server,
      policy: "allowed",
      http: { authz: true, jwt: false, rateLimit: false, trace: false, sniffed: false },
    });
    expect(refusedSince(before, now, http)).toMatchObject({
      status: 503,
      flags: "CONNECT",
      reason: expect.stringContaining("HTTP attributes"),
    });
  });
});
