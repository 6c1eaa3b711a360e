/** MeshView's route and destination-policy lookups (what the L7 proxy will ask), and root-scope selectors. */
import { describe, expect, it } from "vitest";
import { MeshView } from "../../agent/state/view.js";
import type { DestinationPolicy, MeshSnapshotData, RouteTable } from "../../controller/api/model.js";
import { SERVICE, WORKLOAD } from "../helpers/control-fixtures-model.js";

const rt = (ns: string, name: string, exportTo: string[], createdAt: string, kind: RouteTable["kind"] = "VirtualService"): RouteTable => ({
  key: `${kind}/${ns}/${name}`,
  kind,
  name,
  namespace: ns,
  services: ["shop/web"],
  unresolvedHosts: [],
  exportTo,
  http: [],
  tcp: [],
  createdAt,
});
const dp = (ns: string, name: string, extra: Partial<DestinationPolicy> = {}): DestinationPolicy => ({
  key: `${ns}/${name}`,
  name,
  namespace: ns,
  host: "web.shop.svc.cluster.local",
  service: "shop/web",
  exportTo: ["*"],
  subsets: [],
  createdAt: "2026-01-01T00:00:00Z",
  ...extra,
});

function view(routes: RouteTable[], destinationPolicies: DestinationPolicy[]): MeshView {
  const data: MeshSnapshotData = {
    version: "1",
    nodeName: "n1",
    trustDomain: "cluster.local",
    rootNamespace: "weft-system",
    workloads: [WORKLOAD],
    services: [SERVICE],
    authorizationPolicies: [],
    peerAuthentications: [],
    routes,
    destinationPolicies,
  };
  return new MeshView(data);
}

describe("MeshView routing lookups", () => {
  it("returns the routes exported to the client, its own namespace's first, then the oldest", () => {
    const v = view(
      [
        rt("shop", "new", ["*"], "2026-02-01T00:00:00Z"),
        rt("shop", "old", ["*"], "2026-01-01T00:00:00Z"),
        rt("client", "mine", ["client"], "2026-03-01T00:00:00Z"),
        rt("other", "theirs", ["other"], "2026-01-01T00:00:00Z"),
      ],
      [],
    );
    expect(v.routesFor("shop/web", "client").map((r) => r.name)).toEqual(["mine", "old", "new"]);
    expect(v.routesFor("shop/web", "shop").map((r) => r.name)).toEqual(["old", "new"]);
    expect(v.routesFor("shop/other", "shop")).toEqual([]);
  });

  it("puts an HTTPRoute before any VirtualService after the client's own namespace, however old", () => {
    const v = view(
      [
        rt("shop", "old-vs", ["*"], "2025-01-01T00:00:00Z"),
        rt("shop", "new-hr", ["*"], "2026-06-01T00:00:00Z", "HTTPRoute"),
        rt("shop", "newer-hr", ["*"], "2026-07-01T00:00:00Z", "HTTPRoute"),
        rt("client", "mine-vs", ["client"], "2026-08-01T00:00:00Z"),
      ],
      [],
    );
    expect(v.routesFor("shop/web", "shop").map((r) => r.name)).toEqual(["new-hr", "newer-hr", "old-vs"]);
    expect(v.routesFor("shop/web", "client").map((r) => r.name)).toEqual(["mine-vs", "new-hr", "newer-hr", "old-vs"]);
  });

  it("finds the DestinationRule in the client's namespace, else the service's, else the root's", () => {
    const client = { namespace: "client", labels: { app: "c" } };
    const v = view(
      [],
      [
        dp("weft-system", "mesh"),
        dp("shop", "producer"),
        dp("client", "consumer", { exportTo: ["client"] }),
        dp("client", "selected", { workloadSelector: { app: "other" } }),
      ],
    );
    expect(v.destinationPolicyFor("shop/web", client)?.name).toBe("consumer");
    expect(v.destinationPolicyFor("shop/web", { namespace: "elsewhere", labels: {} })?.name).toBe("producer");
    const rootOnly = view([], [dp("weft-system", "mesh"), dp("shop", "private", { exportTo: ["shop"] })]);
    expect(rootOnly.destinationPolicyFor("shop/web", client)?.name).toBe("mesh");
    expect(view([], []).destinationPolicyFor("shop/web", client)).toBeUndefined();
  });

  it("applies a root-namespace policy with a selector to matching workloads in every namespace", () => {
    const v = view([], []);
    const p = { namespace: "weft-system", scope: { kind: "mesh" as const, selector: { app: "web" } } };
    expect(v.appliesTo(p, WORKLOAD)).toBe(true);
    expect(v.appliesTo(p, { ...WORKLOAD, labels: { app: "db" } })).toBe(false);
    expect(v.appliesTo({ namespace: "weft-system", scope: { kind: "mesh" } }, WORKLOAD)).toBe(true);
  });
});
