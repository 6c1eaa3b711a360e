import { describe, expect, it } from "vitest";
import { explainHttp } from "../../agent/explain-http.js";
import { hr, parent, subsets, vs, world } from "../helpers/l7-world.js";

const sample = (headers: Record<string, string> = {}, path = "/") => ({ method: "GET", path, headers });

describe("weft explain for HTTP ports", () => {
  it("shows the route, subset, timeout, retries and fault the router applies to the sample request", () => {
    const w = world(
      subsets,
      vs("web", {
        hosts: ["web"],
        http: [
          {
            name: "jason",
            match: [{ headers: { "end-user": { exact: "jason" } } }],
            fault: { delay: { fixedDelay: "7s", percentage: { value: 100 } } },
            route: [{ destination: { host: "web", subset: "v2" } }],
            timeout: "0.5s",
            retries: { attempts: 3, perTryTimeout: "100ms", retryOn: "5xx" },
          },
          { route: [{ destination: { host: "web", subset: "v1" } }] },
        ],
      }),
    );
    const svc = w.view.serviceByAddress("10.96.0.10", 80);
    if (!svc) throw new Error("fixture");
    const jason = explainHttp(w.view, w.client, svc, sample({ "End-User": "jason" }));
    expect(jason).toMatchObject({
      route: "VirtualService/shop/web rule jason",
      decision: "forward",
      cluster: "shop/web:80|v2",
      subset: "v2",
      endpoints: 1,
      timeout: "500 ms",
      retries: "3 retries on 5xx, 100 ms per try",
      fault: "delay 7000 ms for 100%",
    });
    const other = explainHttp(w.view, w.client, svc, sample());
    expect(other).toMatchObject({ route: "VirtualService/shop/web rule http[1]", subset: "v1", timeout: "none" });
    expect(other.fault).toBeUndefined();
  });

  it("names the table that applies and the ones it shadows", () => {
    const w = world(
      vs("web", { hosts: ["web"], http: [{ route: [{ destination: { host: "web" } }] }] }),
      hr("gamma", { parentRefs: [parent], rules: [{ backendRefs: [{ name: "web", port: 80 }] }] }),
    );
    const svc = w.view.serviceByAddress("10.96.0.10", 80);
    if (!svc) throw new Error("fixture");
    const e = explainHttp(w.view, w.client, svc, sample());
    expect(e.tables).toEqual(["HTTPRoute/shop/gamma", "VirtualService/shop/web"]);
    expect(e.route).toMatch(/^HTTPRoute\/shop\/gamma/);
  });

  it("says a request no rule matches gets 404 NR", () => {
    const w = world(
      vs("web", { hosts: ["web"], http: [{ match: [{ uri: { exact: "/only" } }], route: [{ destination: { host: "web" } }] }] }),
    );
    const svc = w.view.serviceByAddress("10.96.0.10", 80);
    if (!svc) throw new Error("fixture");
    expect(explainHttp(w.view, w.client, svc, sample({}, "/other"))).toMatchObject({ decision: "no-route", status: 404 });
  });

  it("routes the canonical path, as the proxy does, and says a target it cannot read is answered 400", () => {
    const w = world(
      vs("web", { hosts: ["web"], http: [{ match: [{ uri: { exact: "/only" } }], route: [{ destination: { host: "web" } }] }] }),
    );
    const svc = w.view.serviceByAddress("10.96.0.10", 80);
    if (!svc) throw new Error("fixture");
    const dotted = explainHttp(w.view, w.client, svc, sample({}, "/x/..//%6Fnly"));
    expect(dotted).toMatchObject({ decision: "forward" });
    expect(dotted.detail).toMatch(/^path sent upstream: \/only,/);
    expect(explainHttp(w.view, w.client, svc, sample({}, "/a%zz"))).toMatchObject({
      decision: "direct",
      status: 400,
      detail: expect.stringMatching(/bad percent-encoding/),
    });
    expect(explainHttp(w.view, w.client, svc, { ...sample({}, "/only"), headers: { Host: "u@web" } })).toMatchObject({
      decision: "direct",
      status: 400,
      detail: expect.stringMatching(/is not a host\[:port\]/),
    });
  });
});

describe("weft policies on routes", () => {
  it("marks a VirtualService shadowed by an HTTPRoute for the same service", async () => {
    const { policyRows } = await import("../../agent/cli/inventory.js");
    const w = world(
      vs("web", { hosts: ["web"], http: [{ route: [{ destination: { host: "web" } }] }] }),
      hr("gamma", { parentRefs: [parent], rules: [{ backendRefs: [{ name: "web", port: 80 }] }] }),
    );
    const rows = policyRows(w.data);
    expect(rows.find((r) => r.kind === "VirtualService")?.detail).toMatch(/SHADOWED by HTTPRoute\/shop\/gamma/);
    expect(rows.find((r) => r.kind === "HTTPRoute")?.detail).not.toMatch(/SHADOWED/);
  });
});

describe("which calls take the L7 path", () => {
  it("only those a route table or DestinationRule applies to; the rest stay on the L4 splice", async () => {
    const { wantsL7 } = await import("../../agent/proxy/l7/protocol.js");
    const bare = world();
    const svc = (w: typeof bare) => {
      const m = w.view.serviceByAddress("10.96.0.10", 80);
      if (!m) throw new Error("fixture");
      return m;
    };
    expect(wantsL7(bare.view, svc(bare), bare.client)).toBe(false);
    expect(explainHttp(bare.view, bare.client, svc(bare), sample()).detail).toMatch(/spliced at L4/);
    const routed = world(vs("web", { hosts: ["web"], http: [{ route: [{ destination: { host: "web" } }] }] }));
    expect(wantsL7(routed.view, svc(routed), routed.client)).toBe(true);
    const ruled = world(subsets);
    expect(wantsL7(ruled.view, svc(ruled), ruled.client)).toBe(true);
    const private_ = world(vs("web", { hosts: ["web"], exportTo: ["."], http: [{ route: [{ destination: { host: "web" } }] }] }));
    expect(wantsL7(private_.view, svc(private_), private_.client)).toBe(false);
  });
});
