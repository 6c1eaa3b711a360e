/**
 * The L7 router end to end over what the controller pushes: Kubernetes-shaped VirtualServices,
 * HTTPRoutes and DestinationRules translated by the controller's translate(), then route().
 */
import { describe, expect, it } from "vitest";
import { defaultRetries, type RouteInput, resolveRetries, route } from "../../agent/proxy/l7/router.js";
import { MeshView } from "../../agent/state/view.js";
import type { MeshSnapshotData } from "../../controller/api/model.js";
import { addrs, forward, req, subsets, vs, world } from "../helpers/l7-world.js";
import { seeded } from "../helpers/seeded.js";

describe("route: default route", () => {
  it("forwards to the connected service port with all ready endpoints, the DestinationRule's policy, default retries, no timeout", () => {
    const w = world(subsets);
    const d = forward(route(w.view, req(w, { path: "/x?y=1", authority: "web:80" })));
    expect(d.route).toEqual({});
    expect(d.cluster).toMatchObject({ key: "shop/web:80", port: { port: 80, targetPort: 8080 } });
    expect(d.cluster.subset).toBeUndefined();
    expect(addrs(d).sort()).toEqual(["10.244.1.2", "10.244.1.3"]);
    expect(d.cluster.policy).toEqual({
      loadBalancer: { simple: "ROUND_ROBIN" },
      outlierDetection: { consecutive5xxErrors: 5 },
      destinationRule: "shop/web",
    });
    expect(d).toMatchObject({ path: "/x?y=1", authority: "web:80", timeoutMs: 0, requestHeaders: [], responseHeaders: [], mirrors: [] });
    expect(d.retries).toEqual({
      attempts: 2,
      retryOn: ["connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes", "503"],
    });
    expect(d.fault).toBeUndefined();
  });

  it("leaves out endpoints that are not ready, and applies when the table has TCP rules only", () => {
    const w = world(vs("tcp-only", { hosts: ["web"], tcp: [{ route: [{ destination: { host: "web" } }] }] }));
    const svc = w.data.services.find((s) => s.key === "shop/web");
    for (const e of svc?.endpoints ?? []) e.ready = e.address !== "10.244.1.2";
    const d = forward(route(new MeshView(w.data), req(w)));
    expect(d.route).toEqual({});
    expect(addrs(d)).toEqual(["10.244.1.3"]);
  });

  it("reuses the resolved cluster across requests of one snapshot", () => {
    const w = world();
    expect(forward(route(w.view, req(w))).cluster).toBe(forward(route(w.view, req(w, { path: "/other" }))).cluster);
  });
});

describe("route: rules", () => {
  const table = vs("web", {
    hosts: ["web"],
    http: [
      { name: "canary", match: [{ headers: { "x-canary": { exact: "1" } } }], route: [{ destination: { host: "web", subset: "v2" } }] },
      {
        name: "admins",
        match: [{ sourceLabels: { tier: "front" }, uri: { prefix: "/admin" } }],
        route: [{ destination: { host: "api" } }],
      },
      { name: "others", match: [{ sourceNamespace: "other" }], route: [{ destination: { host: "shadow" } }] },
      { name: "ci", match: [{ uri: { exact: "/CaSe" }, ignoreUriCase: true }], route: [{ destination: { host: "web", subset: "v1" } }] },
      {
        match: [{ uri: { prefix: "/v1" } }, { queryParams: { v: { exact: "1" } } }],
        route: [{ destination: { host: "web", subset: "v1" } }],
      },
    ],
  });

  it.each<[string, Partial<RouteInput> & { from?: "client" | "other" }, string | undefined, string]>([
    ["header → canary subset", { headers: { "x-canary": "1" } }, "canary", "shop/web:80|v2"],
    ["sourceLabels + prefix", { path: "/admin/users" }, "admins", "shop/api:80"],
    ["sourceLabels not carried", { path: "/admin/users", from: "other" }, "others", "shop/shadow:8000"],
    ["sourceNamespace", { from: "other" }, "others", "shop/shadow:8000"],
    ["ignoreUriCase", { path: "/case" }, "ci", "shop/web:80|v1"],
    ["second match of a rule (query param)", { path: "/x?v=1" }, "http[4]", "shop/web:80|v1"],
    ["first matching rule wins", { path: "/v1", headers: { "x-canary": "1" } }, "canary", "shop/web:80|v2"],
  ])("%s", (_n, p, rule, cluster) => {
    const w = world(table, subsets);
    const { from, ...rest } = p;
    const d = forward(route(w.view, req(w, { ...rest, source: from === "other" ? w.other : w.client })));
    expect(d.route).toEqual({ table: "VirtualService/shop/web", rule });
    expect(d.cluster.key).toBe(cluster);
  });

  it("answers 404 NR when rules exist and none matches", () => {
    const w = world(table, subsets);
    expect(route(w.view, req(w, { path: "/nope?x=1" }))).toEqual({
      kind: "no-route",
      route: { table: "VirtualService/shop/web" },
      status: 404,
      reason: "no rule of VirtualService/shop/web matches GET /nope",
    });
  });

  it("matches a rule without matches for every request", () => {
    const w = world(vs("web", { hosts: ["web"], http: [{ route: [{ destination: { host: "web", subset: "v1" } }] }] }), subsets);
    expect(forward(route(w.view, req(w, { method: "DELETE", path: "/anything" }))).route).toEqual({
      table: "VirtualService/shop/web",
      rule: "http[0]",
    });
  });

  it("matches the service port the request came to", () => {
    const w = world(
      vs("api", {
        hosts: ["api"],
        http: [
          { match: [{ port: 9090 }], route: [{ destination: { host: "api", port: { number: 9090 } } }] },
          { route: [{ destination: { host: "web" } }] },
        ],
      }),
    );
    expect(forward(route(w.view, req(w, { vip: "10.96.0.12", port: 9090 }))).cluster.key).toBe("shop/api:9090");
    expect(forward(route(w.view, req(w, { vip: "10.96.0.12", port: 80 }))).cluster.key).toBe("shop/web:80");
  });

  it("fails a match with a regex that does not compile closed, and the next rule takes the request", () => {
    const w = world(
      vs("web", {
        hosts: ["web"],
        http: [
          { match: [{ uri: { regex: "/x.*" } }], route: [{ destination: { host: "shadow" } }] },
          { route: [{ destination: { host: "web" } }] },
        ],
      }),
    );
    expect(forward(route(w.view, req(w, { path: "/xy" }))).cluster.key).toBe("shop/shadow:8000");
    // A table arriving with a regex this runtime cannot compile (the controller checked another engine).
    const bad = structuredClone(w.data);
    const m = bad.routes?.[0]?.http[0]?.matches[0];
    if (m?.path) m.path.value = "/x(";
    expect(forward(route(new MeshView(bad), req(w, { path: "/x(" }))).cluster.key).toBe("shop/web:80");
  });
});

describe("route: destinations", () => {
  const split = (a: number, b: number) =>
    vs("web", {
      hosts: ["web"],
      http: [
        {
          route: [
            { destination: { host: "web", subset: "v1" }, weight: a },
            { destination: { host: "web", subset: "v2" }, weight: b },
          ],
        },
      ],
    });

  it.each([
    [0, "shop/web:80|v1"],
    [0.8999, "shop/web:80|v1"],
    [0.9, "shop/web:80|v2"],
    [0.9999999, "shop/web:80|v2"],
  ])("picks by relative weight: random %f → %s", (r, key) => {
    const w = world(split(90, 10), subsets);
    expect(forward(route(w.view, req(w), () => r)).cluster.key).toBe(key);
  });

  it("never picks a destination of weight 0", () => {
    const w = world(split(0, 100), subsets);
    expect(forward(route(w.view, req(w), () => 0)).cluster.key).toBe("shop/web:80|v2");
  });

  it("splits 90/10 within ±2 points over 10,000 seeded picks", () => {
    const w = world(split(90, 10), subsets);
    const random = seeded(42);
    let v1n = 0;
    for (let i = 0; i < 10_000; i++) if (forward(route(w.view, req(w), random)).cluster.subset === "v1") v1n++;
    expect(Math.abs(v1n / 100 - 90)).toBeLessThanOrEqual(2);
  });

  it("narrows a subset to the endpoints carrying its labels, with the subset's policy over the rule's", () => {
    const w = world(split(100, 0), subsets);
    const d1 = forward(route(w.view, req(w)));
    expect(addrs(d1)).toEqual(["10.244.1.2"]);
    expect(d1.cluster.policy).toEqual({
      loadBalancer: { simple: "ROUND_ROBIN" },
      outlierDetection: { consecutive5xxErrors: 5 },
      destinationRule: "shop/web",
    });
    const w2 = world(split(0, 100), subsets);
    const d2 = forward(route(w2.view, req(w2)));
    expect(addrs(d2)).toEqual(["10.244.1.3"]);
    // The subset's port-level entry replaces all three fields (Istio: port-level does not inherit).
    expect(d2.cluster.policy).toEqual({ connectionPool: { tcp: { maxConnections: 7 } }, destinationRule: "shop/web" });
  });

  it("answers 503 NR naming an unknown subset, or a subset without a DestinationRule", () => {
    // The controller refuses such a table; the agent still meets one when a DestinationRule
    // changes under a table it already holds, so the snapshot is edited after translation.
    const table = vs("web", { hosts: ["web"], http: [{ route: [{ destination: { host: "web", subset: "v1" } }] }] });
    const unknownSubset = (data: MeshSnapshotData) => {
      const bad = structuredClone(data);
      for (const d of bad.routes?.[0]?.http[0]?.destinations ?? []) d.subset = "v9";
      return new MeshView(bad);
    };
    const w = world(table, subsets);
    expect(route(unknownSubset(w.data), req(w))).toEqual({
      kind: "no-route",
      route: { table: "VirtualService/shop/web", rule: "http[0]" },
      status: 503,
      reason: "subset 'v9' of service shop/web is not defined (DestinationRule shop/web) (rule http[0] of VirtualService/shop/web)",
    });
    const withRule = world(table, subsets);
    const bare = structuredClone(withRule.data);
    bare.destinationPolicies = [];
    const d = route(unknownSubset(bare), req(withRule));
    expect(d.kind === "no-route" && d.status === 503 && d.reason).toMatch(
      /subset 'v9' of service shop\/web is not defined \(no DestinationRule\)/,
    );
  });

  it("answers 503 NR for a destination host that is not a known Service", () => {
    const w = world(vs("web", { hosts: ["web"], http: [{ route: [{ destination: { host: "gone.example.com" } }] }] }));
    const d = route(w.view, req(w));
    expect(d).toMatchObject({ kind: "no-route", status: 503 });
    expect(d.kind === "no-route" && d.reason).toMatch(/destination host 'gone.example.com' is not a known Service/);
  });

  it.each<[string, unknown, string | RegExp]>([
    ["another service's only port", { host: "shadow" }, "shop/shadow:8000"],
    ["the request's port number on another service", { host: "api" }, "shop/api:80"],
    ["the port the destination names", { host: "api", port: { number: 9090 } }, "shop/api:9090"],
    ["a port the service lacks", { host: "api", port: { number: 7 } }, /service shop\/api has no port 7/],
  ])("routes across services: %s", (_n, destination, want) => {
    const w = world(vs("web", { hosts: ["web"], http: [{ route: [{ destination }] }] }));
    const d = route(w.view, req(w));
    if (typeof want === "string") expect(forward(d).cluster.key).toBe(want);
    else expect(d.kind === "no-route" && d.status === 503 && d.reason).toMatch(want);
  });

  it("answers 503 NR when another service has neither the request's port nor a single one", () => {
    const w = world(vs("shadow", { hosts: ["shadow"], http: [{ route: [{ destination: { host: "api" } }] }] }));
    const d = route(w.view, req(w, { vip: "10.96.0.11", port: 8000 }));
    expect(d.kind === "no-route" && d.reason).toMatch(/service shop\/api has no port 8000 and several others/);
  });
});

describe("resolveRetries", () => {
  it("resolves a rule's policy once per kind: the same frozen object for every request, which no caller can change", () => {
    const rule = { attempts: 3, retryOn: ["5xx"], perTryTimeoutMs: 100 };
    const vs1 = resolveRetries("VirtualService", rule);
    expect(resolveRetries("VirtualService", rule)).toBe(vs1);
    expect(vs1).toEqual({ attempts: 3, retryOn: ["5xx"], perTryTimeoutMs: 100 });
    expect(Object.isFrozen(vs1) && Object.isFrozen(vs1.retryOn)).toBe(true);
    const hr = resolveRetries("HTTPRoute", rule);
    expect(hr).not.toBe(vs1);
    expect(hr.retryOn).toEqual(["connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes", "5xx"]);
    expect(resolveRetries("VirtualService", undefined)).toBe(defaultRetries());
    expect(Object.isFrozen(defaultRetries())).toBe(true);
  });
});
