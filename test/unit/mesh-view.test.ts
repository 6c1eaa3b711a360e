import { describe, expect, it } from "vitest";
import { MeshView } from "../../agent/state/view.js";
import type { MeshSnapshotData, PeerAuthentication, Workload } from "../../controller/api/model.js";
import { parseSpiffeId, spiffeId } from "../../controller/api/model.js";

function wl(name: string, ns: string, node: string, ip: string, labels: Record<string, string> = {}): Workload {
  return {
    uid: `u-${name}`,
    name,
    namespace: ns,
    serviceAccount: "sa",
    identity: spiffeId("cluster.local", ns, "sa"),
    addresses: [ip],
    node,
    nodeAddress: node === "n1" ? "10.250.0.11" : "10.250.0.12",
    labels,
    workloadName: name,
    canonicalName: name,
    canonicalRevision: "latest",
    enrolled: true,
    enrolmentReason: "test",
    ready: true,
  };
}

function pa(
  name: string,
  ns: string,
  mode: PeerAuthentication["mode"],
  selector?: Record<string, string>,
  ports: Record<string, PeerAuthentication["mode"]> = {},
): PeerAuthentication {
  const kind = ns === "weft-system" && !selector ? "mesh" : selector ? "workload" : "namespace";
  return { key: `${ns}/${name}`, name, namespace: ns, scope: selector ? { kind, selector } : { kind }, mode, portLevelMtls: ports };
}

const web = wl("web", "shop", "n1", "10.244.1.2", { app: "web" });
const db = wl("db", "shop", "n2", "10.244.2.2", { app: "db" });
const other = wl("x", "default", "n1", "10.244.1.3");

function view(peerAuthentications: PeerAuthentication[] = []): MeshView {
  const data: MeshSnapshotData = {
    version: "1",
    nodeName: "n1",
    trustDomain: "cluster.local",
    rootNamespace: "weft-system",
    workloads: [web, db, other],
    services: [
      {
        key: "shop/web",
        name: "web",
        namespace: "shop",
        hostname: "web.shop.svc.cluster.local",
        vips: ["10.96.0.10"],
        ports: [{ name: "http", port: 80, targetPort: 8080, appProtocol: "http" }],
        endpoints: [{ workloadUid: web.uid, address: "10.244.1.2", ready: true }],
      },
    ],
    authorizationPolicies: [],
    peerAuthentications,
  };
  return new MeshView(data);
}

describe("MeshView", () => {
  it("indexes workloads and services", () => {
    const v = view();
    expect(v.workloadByAddress("10.244.2.2")?.name).toBe("db");
    expect(v.workloadByUid("u-x")?.namespace).toBe("default");
    expect(v.serviceByAddress("10.96.0.10", 80)?.port.targetPort).toBe(8080);
    expect(v.serviceByAddress("10.96.0.10", 81)).toBeUndefined();
    expect(v.isServiceVip("10.96.0.10")).toBe(true);
    expect(v.localWorkloads().map((w) => w.name)).toEqual(["web", "x"]);
    expect(v.servicesOf(web).map((s) => s.key)).toEqual(["shop/web"]);
    expect(v.servicesOf(db)).toEqual([]);
    // Indexed on first use: a second answer is the same list.
    expect(v.servicesOf(web)).toBe(v.servicesOf(web));
  });

  it.each([
    ["no policy: PERMISSIVE by default", [], web, 8080, "PERMISSIVE", "default"],
    ["mesh-wide STRICT", [pa("m", "weft-system", "STRICT")], web, 8080, "STRICT", "weft-system/m"],
    ["namespace overrides mesh", [pa("m", "weft-system", "STRICT"), pa("n", "shop", "PERMISSIVE")], web, 80, "PERMISSIVE", "shop/n"],
    [
      "workload overrides namespace",
      [pa("n", "shop", "PERMISSIVE"), pa("w", "shop", "STRICT", { app: "web" })],
      web,
      80,
      "STRICT",
      "shop/w",
    ],
    ["workload policy for another app does not apply", [pa("w", "shop", "STRICT", { app: "db" })], web, 80, "PERMISSIVE", "default"],
    ["UNSET inherits from namespace", [pa("n", "shop", "STRICT"), pa("w", "shop", "UNSET", { app: "web" })], web, 80, "STRICT", "shop/n"],
    ["port-level beats workload mode", [pa("w", "shop", "STRICT", { app: "web" }, { "8080": "DISABLE" })], web, 8080, "DISABLE", "shop/w"],
    ["port-level only for its port", [pa("w", "shop", "STRICT", { app: "web" }, { "8080": "DISABLE" })], web, 9090, "STRICT", "shop/w"],
    ["other namespace's policy does not apply", [pa("n", "shop", "STRICT")], other, 80, "PERMISSIVE", "default"],
  ] as const)("mTLS mode: %s", (_name, pas, w, port, mode, source) => {
    expect(view([...pas]).mtlsModeFor(w, port)).toEqual({ mode, source });
  });

  it("answers which AuthorizationPolicies apply, per workload, from the snapshot", () => {
    const deny = (name: string, ns: string, selector?: Record<string, string>) => ({
      key: `${ns}/${name}`,
      name,
      namespace: ns,
      scope: selector ? { kind: "workload" as const, selector } : { kind: "namespace" as const },
      action: "DENY" as const,
      rules: [],
    });
    const v = new MeshView({
      ...view().data,
      authorizationPolicies: [deny("all", "shop"), deny("db-only", "shop", { app: "db" }), deny("other", "default")],
    });
    expect(v.authorizationPoliciesFor(web).map((p) => p.key)).toEqual(["shop/all"]);
    expect(v.authorizationPoliciesFor(db).map((p) => p.key)).toEqual(["shop/all", "shop/db-only"]);
    expect(v.authorizationPoliciesFor(other).map((p) => p.key)).toEqual(["default/other"]);
    expect(v.authorizationPoliciesFor(db)).toBe(v.authorizationPoliciesFor(db));
  });

  it("parses SPIFFE ids and rejects others", () => {
    expect(parseSpiffeId("spiffe://cluster.local/ns/shop/sa/web")).toEqual({
      trustDomain: "cluster.local",
      namespace: "shop",
      serviceAccount: "web",
    });
    expect(parseSpiffeId("spiffe://cluster.local/ns/shop")).toBeNull();
    expect(parseSpiffeId("https://x/ns/a/sa/b")).toBeNull();
  });
});
