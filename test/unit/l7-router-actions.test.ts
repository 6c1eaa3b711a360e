/**
 * What a matched rule does (rewrite, redirect, direct response, header edits, mirrors, retries,
 * timeout, fault) and which table applies (shadowing, HTTPRoute over VirtualService), over
 * objects translated by the controller.
 */
import { describe, expect, it } from "vitest";
import { route } from "../../agent/proxy/l7/router.js";
import { MeshView } from "../../agent/state/view.js";
import { forward, hr, parent, req, subsets, vs, world } from "../helpers/l7-world.js";

describe("route: rewrites", () => {
  it("replaces an Istio prefix, keeping the query, and rewrites the authority", () => {
    const w = world(
      vs("web", {
        hosts: ["web"],
        http: [
          {
            match: [{ uri: { prefix: "/api" } }],
            rewrite: { uri: "/v2/api", authority: "backend" },
            route: [{ destination: { host: "web" } }],
          },
        ],
      }),
    );
    expect(forward(route(w.view, req(w, { path: "/api/items?id=3" })))).toMatchObject({ path: "/v2/api/items?id=3", authority: "backend" });
  });

  it("replaces the whole path when the rule did not match on a prefix", () => {
    const w = world(
      vs("web", {
        hosts: ["web"],
        http: [{ match: [{ uri: { exact: "/old" } }], rewrite: { uri: "/new" }, route: [{ destination: { host: "web" } }] }],
      }),
    );
    expect(forward(route(w.view, req(w, { path: "/old?q" }))).path).toBe("/new?q");
  });

  it("rewrites with a regex", () => {
    const w = world(
      vs("web", {
        hosts: ["web"],
        http: [
          { rewrite: { uriRegexRewrite: { match: "^/u/([^/]+)$", rewrite: "/users/\\1" } }, route: [{ destination: { host: "web" } }] },
        ],
      }),
    );
    expect(forward(route(w.view, req(w, { path: "/u/ann" }))).path).toBe("/users/ann");
  });

  it("replaces a Gateway API prefix by whole segments", () => {
    const w = world(
      hr("web", {
        parentRefs: [parent],
        rules: [
          {
            matches: [{ path: { type: "PathPrefix", value: "/shop/" } }],
            filters: [
              { type: "URLRewrite", urlRewrite: { hostname: "store", path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/" } } },
            ],
            backendRefs: [{ name: "web", port: 80 }],
          },
        ],
      }),
    );
    expect(forward(route(w.view, req(w, { path: "/shop/cart?x=1" })))).toMatchObject({ path: "/cart?x=1", authority: "store" });
    expect(forward(route(w.view, req(w, { path: "/shop" }))).path).toBe("/");
    expect(route(w.view, req(w, { path: "/shopping" }))).toMatchObject({ kind: "no-route", status: 404 });
  });
});

describe("route: redirects and direct responses", () => {
  it("redirects (VirtualService: 301 by default, the port kept) and answers directly", () => {
    const w = world(
      vs("web", {
        hosts: ["web"],
        http: [
          { name: "moved", match: [{ uri: { prefix: "/old" } }], redirect: { uri: "/new", scheme: "https" } },
          { match: [{ uri: { exact: "/perm" } }], redirect: { authority: "api.shop", port: 8443, redirectCode: 308 } },
          { name: "teapot", match: [{ uri: { exact: "/tea" } }], directResponse: { status: 418, body: { string: "short and stout" } } },
          { match: [{ uri: { exact: "/empty" } }], directResponse: { status: 204 } },
        ],
      }),
    );
    expect(route(w.view, req(w, { path: "/old/x?a=1", authority: "web:8080" }))).toEqual({
      kind: "redirect",
      route: { table: "VirtualService/shop/web", rule: "moved" },
      status: 301,
      location: "https://web:8080/new?a=1",
    });
    expect(route(w.view, req(w, { path: "/perm", authority: "web" }))).toMatchObject({
      status: 308,
      location: "http://api.shop:8443/perm",
    });
    expect(route(w.view, req(w, { path: "/tea" }))).toEqual({
      kind: "direct",
      route: { table: "VirtualService/shop/web", rule: "teapot" },
      status: 418,
      body: "short and stout",
    });
    expect(route(w.view, req(w, { path: "/empty" }))).toEqual({
      kind: "direct",
      route: { table: "VirtualService/shop/web", rule: "http[3]" },
      status: 204,
    });
  });

  it("redirects (Gateway API: 302 by default, a new scheme drops the port, prefix by segments) and answers 500 without backends", () => {
    const w = world(
      hr("web", {
        parentRefs: [parent],
        rules: [
          {
            matches: [{ path: { type: "PathPrefix", value: "/docs" } }],
            filters: [
              {
                type: "RequestRedirect",
                requestRedirect: { scheme: "https", path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/manual" } },
              },
            ],
          },
          { matches: [{ path: { type: "Exact", value: "/void" } }] },
        ],
      }),
    );
    expect(route(w.view, req(w, { path: "/docs/intro", authority: "web.shop:80" }))).toMatchObject({
      kind: "redirect",
      status: 302,
      location: "https://web.shop/manual/intro",
    });
    expect(route(w.view, req(w, { path: "/void" }))).toMatchObject({ kind: "direct", status: 500 });
  });
});

describe("route: headers, mirrors, retries, timeout, fault", () => {
  it("lists header edits destination-level first, then rule-level", () => {
    const w = world(
      vs("web", {
        hosts: ["web"],
        http: [
          {
            headers: { request: { set: { "x-who": "rule" } }, response: { remove: ["server"] } },
            route: [
              {
                destination: { host: "web" },
                headers: { request: { set: { "x-who": "dest" }, add: { "x-hop": "1" } }, response: { add: { "x-d": "1" } } },
              },
            ],
          },
        ],
      }),
    );
    const d = forward(route(w.view, req(w)));
    expect(d.requestHeaders).toEqual([
      { set: { "x-who": "dest" }, add: { "x-hop": "1" }, remove: [] },
      { set: { "x-who": "rule" }, add: {}, remove: [] },
    ]);
    expect(d.responseHeaders).toEqual([
      { set: {}, add: { "x-d": "1" }, remove: [] },
      { set: {}, add: {}, remove: ["server"] },
    ]);
  });

  it("resolves mirrors to clusters with their percentage, leaving out one that does not resolve", () => {
    const w = world(
      vs("web", {
        hosts: ["web"],
        http: [
          {
            route: [{ destination: { host: "web" } }],
            mirrors: [{ destination: { host: "shadow" }, percentage: { value: 12.5 } }, { destination: { host: "web", subset: "v1" } }],
          },
        ],
      }),
      subsets,
    );
    // The controller refuses an unknown mirror subset; a DestinationRule changing later still yields one.
    const bad = structuredClone(w.data);
    const second = bad.routes?.[0]?.http[0]?.mirrors[1];
    if (second) second.destination.subset = "v9";
    const d = forward(route(new MeshView(bad), req(w)));
    expect(d.mirrors.map((m) => [m.cluster.key, m.percentage])).toEqual([["shop/shadow:8000", 12.5]]);
  });

  it("passes the rule's retries, timeout and fault; an empty retryOn means Istio's conditions", () => {
    const w = world(
      vs("web", {
        hosts: ["web"],
        http: [
          {
            match: [{ uri: { prefix: "/a" } }],
            timeout: "1.5s",
            retries: { attempts: 5, perTryTimeout: "200ms", retryOn: "5xx,reset" },
            fault: { abort: { httpStatus: 503, percentage: { value: 10 } } },
            route: [{ destination: { host: "web" } }],
          },
          { match: [{ uri: { prefix: "/b" } }], retries: { attempts: 1 }, route: [{ destination: { host: "web" } }] },
          { match: [{ uri: { prefix: "/c" } }], retries: { attempts: 0 }, route: [{ destination: { host: "web" } }] },
        ],
      }),
    );
    expect(forward(route(w.view, req(w, { path: "/a" })))).toMatchObject({
      timeoutMs: 1500,
      retries: { attempts: 5, perTryTimeoutMs: 200, retryOn: ["5xx", "reset"] },
      fault: { abort: { httpStatus: 503, percentage: 10 } },
    });
    const b = forward(route(w.view, req(w, { path: "/b" })));
    expect(b).toMatchObject({
      timeoutMs: 0,
      retries: { attempts: 1, retryOn: ["connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes", "503"] },
    });
    expect(b.fault).toBeUndefined();
    expect(forward(route(w.view, req(w, { path: "/c" }))).retries.attempts).toBe(0);
  });

  it("turns an HTTPRoute's retry codes into retriable status codes; backendRequest alone disables retries", () => {
    const w = world(
      hr("web", {
        parentRefs: [parent],
        rules: [
          {
            matches: [{ path: { value: "/r" } }],
            retry: { attempts: 3, codes: [502, 504] },
            timeouts: { request: "2s" },
            backendRefs: [{ name: "web", port: 80 }],
          },
          { matches: [{ path: { value: "/t" } }], timeouts: { backendRequest: "300ms" }, backendRefs: [{ name: "web", port: 80 }] },
          { backendRefs: [{ name: "web", port: 80 }] },
        ],
      }),
    );
    expect(forward(route(w.view, req(w, { path: "/r" })))).toMatchObject({
      timeoutMs: 2000,
      retries: {
        attempts: 3,
        retryOn: ["connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes", "502", "504"],
      },
    });
    expect(forward(route(w.view, req(w, { path: "/t" }))).retries).toMatchObject({ attempts: 0, perTryTimeoutMs: 300 });
    expect(forward(route(w.view, req(w, { path: "/x" }))).retries.attempts).toBe(2);
  });
});

describe("route: which table applies", () => {
  const to = (name: string, host: string, ns = "shop", createdAt = "2026-01-01T00:00:00Z") =>
    vs(
      name,
      { hosts: ["web.shop.svc.cluster.local"], http: [{ name, route: [{ destination: { host: `${host}.shop.svc.cluster.local` } }] }] },
      ns,
      createdAt,
    );

  it("uses the oldest table; later ones for the same service are shadowed", () => {
    const w = world(to("newer", "shadow", "shop", "2026-02-01T00:00:00Z"), to("older", "api", "shop", "2026-01-01T00:00:00Z"));
    const d = forward(route(w.view, req(w)));
    expect(d.route).toEqual({ table: "VirtualService/shop/older", rule: "older" });
    expect(d.cluster.key).toBe("shop/api:80");
  });

  it("prefers an HTTPRoute over an older VirtualService, and the client namespace's own table over both", () => {
    const gamma = hr(
      "gamma",
      { parentRefs: [parent], rules: [{ name: "g", backendRefs: [{ name: "shadow", port: 8000 }] }] },
      "shop",
      "2026-06-01T00:00:00Z",
    );
    const w = world(to("old-vs", "api", "shop", "2025-01-01T00:00:00Z"), gamma);
    expect(forward(route(w.view, req(w))).route).toEqual({ table: "HTTPRoute/shop/gamma", rule: "g" });
    const own = vs(
      "mine",
      {
        hosts: ["web.shop.svc.cluster.local"],
        exportTo: ["."],
        http: [{ name: "mine", route: [{ destination: { host: "web.shop.svc.cluster.local" } }] }],
      },
      "client",
    );
    const w2 = world(to("old-vs", "api", "shop", "2025-01-01T00:00:00Z"), gamma, own);
    expect(forward(route(w2.view, req(w2))).route).toEqual({ table: "VirtualService/client/mine", rule: "mine" });
    expect(forward(route(w2.view, req(w2, { source: w2.other }))).route).toEqual({ table: "HTTPRoute/shop/gamma", rule: "g" });
  });

  it("answers 503 NR when a table arrives with a rule that has no weighted destination", () => {
    const w = world(to("t", "web"));
    const bad = structuredClone(w.data);
    const rule = bad.routes?.[0]?.http[0];
    if (rule) for (const d of rule.destinations) d.weight = 0;
    expect(route(new MeshView(bad), req(w))).toMatchObject({
      kind: "no-route",
      status: 503,
      reason: "rule t of VirtualService/shop/t has no weighted destination",
    });
  });
});
