import { describe, expect, it } from "vitest";
import { type Explanation, explain, explainInbound, type InboundQuery, summarize } from "../../agent/admin-explain.js";
import { type CaptureFacts, captureVerdict, findPod, resolveDestination } from "../../agent/admin-explain-input.js";
import { renderExplanation } from "../../agent/cli/explain.js";
import type { CertificateStatus } from "../../agent/identity/manager.js";
import { MeshView } from "../../agent/state/view.js";
import type { AuthorizationPolicy, PeerAuthentication } from "../../controller/api/model.js";
import { service, snapshot, workload } from "../helpers/mesh-fixture.js";

const N1 = "10.250.0.11";
const N2 = "10.250.0.12";
const client = workload({ name: "client", ns: "shop", ip: "10.244.1.2", node: "node1", nodeAddress: N1 });
const bad = workload({ name: "bad", ns: "shop", sa: "bad", ip: "10.244.1.4", node: "node1", nodeAddress: N1 });
const local = workload({ name: "local", ns: "shop", ip: "10.244.1.3", node: "node1", nodeAddress: N1, labels: { app: "api" } });
const remote = workload({ name: "remote", ns: "shop", ip: "10.244.2.2", node: "node2", nodeAddress: N2, labels: { app: "api" } });
const plain = workload({ name: "plain", ns: "legacy", ip: "10.244.2.3", node: "node2", nodeAddress: N2, enrolled: false });
const outsider = workload({ name: "outsider", ns: "legacy", ip: "10.244.1.9", node: "node1", nodeAddress: N1, enrolled: false });
const api = service("api", "shop", "10.96.0.10", 80, 8080, [local, remote]);
const legacySvc = service("legacy", "legacy", "10.96.0.11", 80, 9090, [plain]);
const empty = service("empty", "shop", "10.96.0.12", 80, 80, []);
const denyBad: AuthorizationPolicy = {
  key: "shop/deny-bad",
  name: "deny-bad",
  namespace: "shop",
  scope: { kind: "namespace" },
  action: "DENY",
  rules: [{ from: [{ principals: ["cluster.local/ns/shop/sa/bad"] }], to: [], when: [] }],
};
const all = [client, bad, local, remote, plain, outsider];
const view1 = new MeshView(snapshot("node1", all, [api, legacySvc, empty], [denyBad]));
const view2 = new MeshView(snapshot("node2", all, [api, legacySvc, empty], [denyBad]));

const facts = (over: Partial<CaptureFacts> = {}): CaptureFacts => ({
  enabled: true,
  captured: new Set([client.uid, bad.uid, local.uid]),
  unresolved: [],
  proxyAddress: "10.244.1.1",
  outboundPort: 15001,
  excluded: [],
  ...over,
});
const certs: CertificateStatus[] = [client, bad, local].map((w) => ({ identity: w.identity, state: "valid", issued: 1 }));

describe("captureVerdict mirrors connect.c", () => {
  const dst = { ip: "10.244.2.2", port: 8080 };
  it.each([
    ["captured", client, dst, facts(), true, /weft_connect4 redirects it to the node proxy at 10.244.1.1:15001/],
    ["no capture on this agent", client, dst, facts({ enabled: false }), false, /without capture/],
    ["source not in the mesh", outsider, dst, facts(), false, /not in the mesh \(test fixture\)/],
    ["enrolled but not in the map", client, dst, facts({ captured: new Set() }), false, /not yet in the BPF capture map/],
    [
      "enrolled, capture failed",
      client,
      dst,
      facts({ captured: new Set(), unresolved: [{ pod: "shop/client", error: "cgroup gone" }] }),
      false,
      /not in the BPF capture map: cgroup gone/,
    ],
    ["loopback", client, { ip: "127.0.0.1", port: 80 }, facts(), false, /loopback/],
    ["the proxy address", client, { ip: "10.244.1.1", port: 15001 }, facts(), false, /proxy's own address/],
    ["its own address", client, { ip: "10.244.1.2", port: 80 }, facts(), false, /own address/],
    ["excluded CIDR", client, dst, facts({ excluded: ["10.244.2.0/24"] }), false, /--exclude 10.244.2.0\/24/],
    ["excluded port only", client, dst, facts({ excluded: [":8080"] }), false, /--exclude :8080/],
    ["exclusion for another port", client, dst, facts({ excluded: ["10.244.2.2:9090"] }), true, /redirects/],
  ])("%s", (_name, w, d, f, captured, reason) => {
    const v = captureVerdict(w, w.addresses[0] as string, d, f);
    expect(v.captured).toBe(captured);
    expect(v.reason).toMatch(reason);
  });
});

describe("explain", () => {
  it("explains every ready endpoint of a service: same-node decided here, remote left to node2 with a query", () => {
    const e = explain(view1, "shop/client", "api:80", facts(), certs);
    expect(e.destination.service).toMatchObject({ key: "shop/api", targetPort: 8080, readyEndpoints: 2 });
    expect(e.selection).toMatch(/picks one of the 2 ready endpoints at random/);
    const [same, far] = e.candidates;
    expect(same).toMatchObject({ path: "same-node", workload: "shop/local", outcome: "allowed", target: "10.244.1.3:8080" });
    expect(same?.inbound).toMatchObject({ evaluatedBy: "node1", allowed: true, reason: "no ALLOW policy applies" });
    expect(far).toMatchObject({ path: "hbone", node: "node2", hbone: `${N2}:15008`, expectedIdentity: remote.identity, outcome: "remote" });
    expect(far?.inbound?.query).toEqual({
      kind: "mesh",
      sourceIdentity: client.identity,
      sourceIp: "10.244.1.2",
      target: "10.244.2.2:8080",
      presentedIdentity: remote.identity,
    });
    expect(e.outcome).toBe("depends");
    expect(e.summary).toBe("depends on the endpoint picked: allowed for 1, remote for 1 of 2");
  });

  it("completes with the destination agent's answer (what the CLI does when it can reach it)", () => {
    const e = explain(view1, "shop/bad", "10.244.2.2:8080", facts(), certs);
    const far = e.candidates[0];
    expect(far?.outcome).toBe("remote");
    // The destination's agent evaluates the same query with its own view.
    const answer = explainInbound(view2, far?.inbound?.query as InboundQuery);
    expect(answer).toMatchObject({ evaluatedBy: "node2", allowed: false, status: 403, reason: "denied by DENY policy shop/deny-bad" });
    const done = summarize({ ...e, candidates: [{ ...(far as NonNullable<typeof far>), inbound: answer }] });
    expect(done.outcome).toBe("denied");
    expect(done.summary).toMatch(/denied by DENY policy shop\/deny-bad \(HTTP 403 from node2; the client sees a reset\)/);
  });

  it("denies on the same node by the same checkInbound the proxy runs", () => {
    const e = explain(view1, "shop/bad", "shop/local:8080", facts(), certs);
    expect(e.outcome).toBe("denied");
    expect(e.candidates[0]?.inbound?.policies).toEqual([{ key: "shop/deny-bad", action: "DENY" }]);
  });

  it("passes through to a destination outside the mesh", () => {
    const e = explain(view1, "client", "legacy.legacy:80", facts(), certs);
    expect(e.outcome).toBe("passthrough");
    expect(e.candidates[0]).toMatchObject({ path: "passthrough", target: "10.244.2.3:9090", workload: "legacy/plain" });
    expect(e.summary).toBe("destination legacy/plain is not in the mesh");
  });

  it("refuses what the proxy refuses: no ready endpoint, a VIP port that is not the service's, no certificate", () => {
    expect(explain(view1, "shop/client", "empty:80", facts(), certs)).toMatchObject({ outcome: "refused" });
    expect(explain(view1, "shop/client", "10.96.0.10:81", facts(), certs).summary).toMatch(/service VIP but port 81/);
    const noCert = explain(view1, "shop/client", "10.244.2.2:8080", facts(), [
      { identity: client.identity, state: "failing", issued: 0, lastError: "CA down" },
    ]);
    expect(noCert.outcome).toBe("refused");
    expect(noCert.summary).toMatch(/no valid certificate .* \(failing: CA down\)/);
  });

  it("not captured at the source: plaintext is captured to the destination's 15006, which decides", () => {
    const strict: PeerAuthentication = {
      key: "shop/strict",
      name: "strict",
      namespace: "shop",
      scope: { kind: "namespace" },
      mode: "STRICT",
      portLevelMtls: {},
    };
    const data = { ...snapshot("node1", all, [api, legacySvc, empty], [denyBad]), peerAuthentications: [strict] };
    const v = new MeshView(data);
    const dropped = explain(v, "legacy/outsider", "shop/local:8080", facts(), certs);
    expect(dropped.capture.captured).toBe(false);
    expect(dropped.outcome).toBe("dropped");
    expect(dropped.summary).toMatch(/captured to 15006 and refused: .*mTLS is STRICT .* \(PeerAuthentication shop\/strict\)/);
    const permissive = explain(view1, "legacy/outsider", "shop/local:8080", facts(), certs);
    expect(permissive.outcome).toBe("direct");
    expect(permissive.summary).toMatch(/captured to 15006 and accepted/);
    // Through kube-proxy to a service: one candidate per endpoint, the remote one decided on node2.
    const viaVip = explain(view1, "legacy/outsider", "10.96.0.10:80", facts(), certs);
    expect(viaVip.candidates.map((c) => c.outcome)).toEqual(["direct", "remote"]);
    expect(viaVip.selection).toMatch(/kube-proxy/);
  });

  it("says which node decides for a pod of another node, and names bad input", () => {
    expect(() => explain(view1, "shop/remote", "api:80", facts(), certs)).toThrow(/runs on node node2.*use --node node2/);
    expect(() => findPod(view1, "nope")).toThrow(expect.objectContaining({ status: 404 }));
    expect(() => findPod(view1, "10.9.9.9")).toThrow(/no pod with address 10.9.9.9/);
    const twins = new MeshView(snapshot("node1", [client, { ...client, uid: "u2", namespace: "other", addresses: ["10.244.1.20"] }]));
    expect(() => findPod(twins, "client")).toThrow(/ambiguous: shop\/client, other\/client/);
    expect(() => resolveDestination(view1, "api", "shop")).toThrow(/expected <host>:<port>/);
    expect(() => resolveDestination(view1, "api:70000", "shop")).toThrow(/port 70000 is not 1-65535/);
    expect(() => resolveDestination(view1, "[fd00::1]:80", "shop")).toThrow(/IPv6/);
    expect(() => resolveDestination(view1, "nothere:80", "shop")).toThrow(/not an IPv4 address, a pod/);
    expect(resolveDestination(view1, "api.shop.svc.cluster.local:80", "legacy")).toEqual({
      ip: "10.96.0.10",
      port: 80,
      serviceKey: "shop/api",
    });
    // A bare service name resolves in the client's own namespace only (as DNS search paths do).
    expect(() => resolveDestination(view1, "api:80", "legacy")).toThrow(/not an IPv4 address/);
  });

  it("renders every candidate and one verdict", () => {
    const text = renderExplanation(explain(view1, "shop/client", "api:80", facts(), certs) as Explanation);
    expect(text).toMatch(/^explain shop\/client -> api:80 {2}\(agent node1\)/);
    expect(text).toMatch(/capture {6}CAPTURED: weft_connect4/);
    expect(text).toMatch(/\[1\/2\] 10\.244\.1\.3:8080 {2}shop\/local on node1/);
    expect(text).toMatch(/\[2\/2\] 10\.244\.2\.2:8080 {2}shop\/remote on node2/);
    expect(text).toMatch(/verdict {3}ALLOWED: no ALLOW policy applies \(decided by node1\)/);
    expect(text).toMatch(/verdict {2}DEPENDS ON THE ENDPOINT: depends on the endpoint picked/);
  });
});
