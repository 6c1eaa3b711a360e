/** Translation of VirtualService, HTTPRoute (GAMMA) and DestinationRule into routes and traffic policy. */
import { describe, expect, it } from "vitest";
import type { KubeObject } from "../../controller/api/kube-types.js";
import { parseDuration } from "../../controller/translate/fields.js";
import { translate } from "../../controller/translate/index.js";
import { custom, namespace, node, objects, pod, service } from "../helpers/control-objects.js";

const web = pod({ name: "web", ns: "shop", node: "n1", ip: "10.244.1.2" });
const base: KubeObject[] = [
  namespace("shop"),
  namespace("client"),
  node("n1", "10.250.0.11"),
  web,
  ...service("web", "shop", "10.96.0.10", [{ name: "http", port: 80, targetPort: 8080 }], [web]),
  ...service("shadow", "shop", "10.96.0.11", [{ name: "http", port: 80, targetPort: 8080 }], []),
];
const vs = (name: string, ns: string, spec: unknown) => custom("networking.istio.io/v1", "VirtualService", name, ns, spec);
const dr = (name: string, ns: string, spec: unknown) => custom("networking.istio.io/v1alpha3", "DestinationRule", name, ns, spec);
const hr = (name: string, ns: string, spec: unknown) => custom("gateway.networking.k8s.io/v1", "HTTPRoute", name, ns, spec);
const run = (...extra: KubeObject[]) => translate(objects([...base, ...extra]));

describe("durations", () => {
  it.each([
    ["1.5s", 1500],
    ["100ms", 100],
    ["1h30m", 5_400_000],
    ["2m", 120_000],
    ["0s", 0],
  ])("%s = %i ms", (t, ms) => expect(parseDuration(t, "x")).toBe(ms));
  it("rejects a non-duration, naming the field", () =>
    expect(() => parseDuration("fast", "spec.http[0].timeout")).toThrow("spec.http[0].timeout: 'fast' is not a duration"));
});

describe("translate: VirtualService", () => {
  it("translates matches, weighted subsets, retries, timeout, fault, mirror, rewrite and headers", () => {
    const m = run(
      vs("web", "shop", {
        hosts: ["web"],
        http: [
          {
            name: "canary",
            match: [
              {
                uri: { prefix: "/api" },
                headers: { "X-Canary": { exact: "1" } },
                withoutHeaders: { "x-debug": {} },
                queryParams: { v: { regex: "v[0-9]+" } },
                sourceLabels: { app: "client" },
                port: 80,
              },
            ],
            route: [
              {
                destination: { host: "web", subset: "v2", port: { number: 80 } },
                weight: 10,
                headers: { request: { set: { "x-a": "1" } } },
              },
              { destination: { host: "web.shop.svc.cluster.local", subset: "v1" }, weight: 90 },
            ],
            rewrite: { uri: "/v2/api" },
            timeout: "5s",
            retries: { attempts: 3, perTryTimeout: "1s", retryOn: "5xx,connect-failure" },
            fault: { delay: { fixedDelay: "100ms", percentage: { value: 1.5 } }, abort: { httpStatus: 503, percentage: { value: 0.1 } } },
            mirror: { host: "shadow" },
            mirrorPercentage: { value: 5 },
            headers: { response: { remove: ["server"] } },
          },
          { route: [{ destination: { host: "web" } }] },
        ],
      }),
      dr("web", "shop", {
        host: "web",
        subsets: [
          { name: "v1", labels: { v: "1" } },
          { name: "v2", labels: { v: "2" } },
        ],
      }),
    );
    expect(m.diagnostics).toEqual([]);
    expect(m.routes).toHaveLength(1);
    const t = m.routes[0];
    expect(t).toMatchObject({ key: "VirtualService/shop/web", services: ["shop/web"], unresolvedHosts: [], exportTo: ["*"] });
    expect(t?.http[0]).toEqual({
      name: "canary",
      matches: [
        {
          path: { kind: "prefix", value: "/api" },
          ignorePathCase: false,
          headers: [
            { name: "x-canary", match: { kind: "exact", value: "1" }, invert: false },
            { name: "x-debug", invert: true },
          ],
          queryParams: [{ name: "v", match: { kind: "regex", value: "v[0-9]+" } }],
          port: 80,
          sourceLabels: { app: "client" },
        },
      ],
      destinations: [
        {
          host: "web.shop.svc.cluster.local",
          service: "shop/web",
          subset: "v2",
          port: 80,
          weight: 10,
          headers: { request: { set: { "x-a": "1" }, add: {}, remove: [] } },
        },
        { host: "web.shop.svc.cluster.local", service: "shop/web", subset: "v1", weight: 90 },
      ],
      // The rule matched on a prefix, so the rewrite replaces that prefix (Istio).
      rewrite: { pathPrefix: "/v2/api" },
      timeoutMs: 5000,
      retries: { attempts: 3, perTryTimeoutMs: 1000, retryOn: ["5xx", "connect-failure"] },
      fault: { delay: { fixedDelayMs: 100, percentage: 1.5 }, abort: { httpStatus: 503, percentage: 0.1 } },
      mirrors: [{ destination: { host: "shadow.shop.svc.cluster.local", service: "shop/shadow", weight: 100 }, percentage: 5 }],
      headers: { response: { set: {}, add: {}, remove: ["server"] } },
    });
    expect(t?.http[1]?.destinations).toEqual([{ host: "web.shop.svc.cluster.local", service: "shop/web", weight: 100 }]);
  });

  it("routes TCP, redirects, answers directly, and resolves exportTo", () => {
    const m = run(
      vs("r", "shop", {
        hosts: ["web.shop"],
        exportTo: [".", "client"],
        http: [
          { match: [{ uri: { exact: "/old" } }], redirect: { uri: "/new", redirectCode: 308 } },
          { directResponse: { status: 418, body: { string: "teapot" } } },
        ],
        tcp: [{ match: [{ port: 9000 }], route: [{ destination: { host: "web" } }] }],
      }),
    );
    expect(m.routes[0]?.exportTo).toEqual(["client", "shop"]);
    expect(m.routes[0]?.http.map((r) => r.redirect ?? r.directResponse)).toEqual([
      { statusCode: 308, path: "/new" },
      { status: 418, body: "teapot" },
    ]);
    expect(m.routes[0]?.tcp).toEqual([
      { matches: [{ port: 9000 }], destinations: [{ host: "web.shop.svc.cluster.local", service: "shop/web", weight: 100 }] },
    ]);
  });

  it("keeps a gateway-only VirtualService out of the mesh, and reports unresolved hosts and unsupported fields", () => {
    const m = run(
      vs("gw", "shop", { hosts: ["web"], gateways: ["ingress"], http: [{ route: [{ destination: { host: "web" } }] }] }),
      vs("ext", "shop", {
        hosts: ["api.example.com"],
        http: [{ corsPolicy: { allowOrigins: [] }, route: [{ destination: { host: "web" } }] }],
      }),
    );
    expect(m.routes.map((r) => r.name)).toEqual(["ext"]);
    expect(m.routes[0]?.unresolvedHosts).toEqual(["api.example.com"]);
    expect(m.diagnostics.map((d) => d.message).sort()).toEqual([
      "spec.gateways names only gateways (ingress): not mesh routing, not applied",
      "spec.hosts api.example.com match no Service (ServiceEntry is not supported); not routed",
      "spec.http[0].corsPolicy is not supported and is ignored",
    ]);
  });

  it.each([
    ["no hosts", { http: [] }, "invalid: spec.hosts: needs at least one host; VirtualService skipped"],
    [
      "two string matchers",
      { hosts: ["web"], http: [{ match: [{ uri: { exact: "/", prefix: "/" } }], route: [{ destination: { host: "web" } }] }] },
      "invalid: spec.http[0].match[0].uri: needs exactly one of exact, prefix, regex; VirtualService skipped",
    ],
    [
      "a regex that does not compile",
      { hosts: ["web"], http: [{ match: [{ uri: { regex: "(" } }], route: [{ destination: { host: "web" } }] }] },
      /invalid: spec.http\[0\].match\[0\].uri.regex: regex '\(' does not compile/,
    ],
    [
      "a bad timeout",
      { hosts: ["web"], http: [{ timeout: "soon", route: [{ destination: { host: "web" } }] }] },
      "invalid: spec.http[0].timeout: 'soon' is not a duration (e.g. 1.5s, 100ms, 1h30m); VirtualService skipped",
    ],
    [
      "a weight out of range",
      { hosts: ["web"], http: [{ route: [{ destination: { host: "web" }, weight: -1 }] }] },
      /spec.http\[0\].route\[0\].weight: -1 is out of range/,
    ],
    ["neither route nor redirect", { hosts: ["web"], http: [{ timeout: "1s" }] }, /needs exactly one of route, redirect, directResponse/],
  ])("skips a VirtualService with %s; the rest flows", (_n, spec, message) => {
    const m = run(vs("bad", "shop", spec), vs("good", "shop", { hosts: ["web"], http: [{ route: [{ destination: { host: "web" } }] }] }));
    expect(m.routes.map((r) => r.name)).toEqual(["good"]);
    expect(m.diagnostics).toHaveLength(1);
    expect(m.diagnostics[0]?.severity).toBe("error");
    if (typeof message === "string") expect(m.diagnostics[0]?.message).toBe(message);
    else expect(m.diagnostics[0]?.message).toMatch(message);
  });
});

describe("translate: HTTPRoute (GAMMA)", () => {
  const parent = { group: "", kind: "Service", name: "web", port: 80 };
  it("translates a producer route with matches, filters and weighted backends", () => {
    const m = run(
      hr("web", "shop", {
        parentRefs: [parent],
        rules: [
          {
            matches: [{ path: { type: "PathPrefix", value: "/api" }, headers: [{ name: "X-V", value: "2" }], method: "get" }],
            filters: [
              { type: "RequestHeaderModifier", requestHeaderModifier: { set: [{ name: "X-A", value: "1" }], remove: ["X-B"] } },
              { type: "URLRewrite", urlRewrite: { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/v2" } } },
              { type: "RequestMirror", requestMirror: { backendRef: { name: "shadow", port: 80 }, percent: 20 } },
            ],
            backendRefs: [
              { name: "web", port: 80, weight: 3 },
              { name: "shadow", port: 80 },
            ],
            timeouts: { request: "10s", backendRequest: "2s" },
          },
          { backendRefs: [] },
        ],
      }),
    );
    expect(m.diagnostics).toEqual([]);
    const t = m.routes[0];
    expect(t).toMatchObject({ key: "HTTPRoute/shop/web", kind: "HTTPRoute", services: ["shop/web"], exportTo: ["*"] });
    expect(t?.http[0]).toEqual({
      matches: [
        {
          path: { kind: "pathPrefix", value: "/api" },
          ignorePathCase: false,
          headers: [{ name: "x-v", match: { kind: "exact", value: "2" }, invert: false }],
          queryParams: [],
          method: { kind: "exact", value: "GET" },
          port: 80,
        },
      ],
      destinations: [
        { host: "web.shop.svc.cluster.local", service: "shop/web", port: 80, weight: 3 },
        { host: "shadow.shop.svc.cluster.local", service: "shop/shadow", port: 80, weight: 1 },
      ],
      headers: { request: { set: { "x-a": "1" }, add: {}, remove: ["x-b"] } },
      rewrite: { pathPrefix: "/v2" },
      mirrors: [{ destination: { host: "shadow.shop.svc.cluster.local", service: "shop/shadow", port: 80, weight: 100 }, percentage: 20 }],
      timeoutMs: 10_000,
      retries: { attempts: 0, retryOn: [], perTryTimeoutMs: 2000 },
    });
    // No backend: Gateway API answers 500; default match is every path.
    expect(t?.http[1]).toMatchObject({
      matches: [{ path: { kind: "pathPrefix", value: "/" }, port: 80 }],
      destinations: [],
      directResponse: { status: 500 },
    });
  });

  it("scopes a route in another namespace to its own clients (consumer route)", () => {
    const m = run(
      hr("mine", "client", {
        parentRefs: [{ ...parent, namespace: "shop" }],
        rules: [{ backendRefs: [{ name: "web", namespace: "shop", port: 80 }] }],
      }),
    );
    expect(m.routes[0]?.exportTo).toEqual(["client"]);
    expect(m.diagnostics.map((d) => d.message)).toEqual([
      "spec.rules[0].backendRefs[0].namespace crosses namespaces; weft does not check ReferenceGrants",
    ]);
  });

  it("leaves a Gateway route out of the mesh, and reports redirect+unsupported filters", () => {
    const m = run(
      hr("edge", "shop", { parentRefs: [{ name: "gw" }], rules: [{ backendRefs: [{ name: "web", port: 80 }] }] }),
      hr("r", "shop", {
        parentRefs: [parent],
        rules: [
          {
            filters: [
              { type: "RequestRedirect", requestRedirect: { scheme: "https", statusCode: 301 } },
              { type: "ExtensionRef", extensionRef: { name: "x" } },
            ],
          },
        ],
      }),
    );
    expect(m.routes.map((r) => r.name)).toEqual(["r"]);
    expect(m.routes[0]?.http[0]).toMatchObject({ redirect: { scheme: "https", statusCode: 301 }, destinations: [] });
    expect(m.diagnostics.map((d) => d.message).sort()).toEqual([
      "has no Service parentRef (it is for a Gateway): not mesh routing, not applied",
      "spec.rules[0].filters[1] filter ExtensionRef is not supported and is ignored",
    ]);
  });

  it("skips an HTTPRoute with an invalid match type", () => {
    const m = run(
      hr("bad", "shop", {
        parentRefs: [parent],
        rules: [{ matches: [{ path: { type: "Glob", value: "/x" } }], backendRefs: [{ name: "web", port: 80 }] }],
      }),
    );
    expect(m.routes).toEqual([]);
    expect(m.diagnostics[0]?.message).toBe(
      "invalid: spec.rules[0].matches[0].path.type: 'Glob' is not one of Exact, PathPrefix, RegularExpression; HTTPRoute skipped",
    );
  });
});

describe("translate: DestinationRule", () => {
  it("translates load balancing, pools, outlier detection, port settings and subsets", () => {
    const m = run(
      dr("web", "shop", {
        host: "web",
        trafficPolicy: {
          loadBalancer: { simple: "LEAST_CONN" },
          connectionPool: {
            tcp: { maxConnections: 100, connectTimeout: "500ms" },
            http: { http2MaxRequests: 1000, maxRetries: 3, idleTimeout: "30s" },
          },
          outlierDetection: { consecutive5xxErrors: 5, interval: "10s", baseEjectionTime: "30s", maxEjectionPercent: 50 },
          tls: { mode: "ISTIO_MUTUAL" },
          portLevelSettings: [{ port: { number: 80 }, loadBalancer: { consistentHash: { httpCookie: { name: "s", ttl: "1h" } } } }],
        },
        subsets: [
          { name: "v1", labels: { version: "v1" } },
          { name: "v2", labels: { version: "v2" }, trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: "X-User" } } } },
        ],
      }),
    );
    expect(m.diagnostics).toEqual([]);
    expect(m.destinationPolicies[0]).toEqual({
      key: "shop/web",
      name: "web",
      namespace: "shop",
      host: "web.shop.svc.cluster.local",
      service: "shop/web",
      exportTo: ["*"],
      trafficPolicy: {
        loadBalancer: { simple: "LEAST_REQUEST" },
        connectionPool: {
          tcp: { maxConnections: 100, connectTimeoutMs: 500 },
          http: { http2MaxRequests: 1000, maxRetries: 3, idleTimeoutMs: 30_000 },
        },
        outlierDetection: { consecutive5xxErrors: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 50 },
        portLevel: [{ port: 80, loadBalancer: { consistentHash: { cookie: { name: "s", ttlMs: 3_600_000 } } } }],
      },
      subsets: [
        { name: "v1", labels: { version: "v1" } },
        { name: "v2", labels: { version: "v2" }, trafficPolicy: { loadBalancer: { consistentHash: { header: "x-user" } }, portLevel: [] } },
      ],
      createdAt: "2026-01-01T00:00:00Z",
    });
  });

  it("reports what it cannot do (TLS origination, locality) and skips invalid rules", () => {
    const m = run(
      dr("tls", "shop", {
        host: "web",
        trafficPolicy: { tls: { mode: "SIMPLE" }, loadBalancer: { localityLbSetting: { enabled: true } } },
      }),
      dr("dup", "shop", { host: "web", subsets: [{ name: "a" }, { name: "a" }] }),
      dr("both", "shop", { host: "web", trafficPolicy: { loadBalancer: { simple: "RANDOM", consistentHash: { useSourceIp: true } } } }),
    );
    expect(m.destinationPolicies.map((d) => d.name)).toEqual(["tls"]);
    expect(m.diagnostics.map((d) => `${d.severity}: ${d.message}`).sort()).toEqual([
      "error: invalid: spec.subsets[1].name: subset 'a' is defined twice; DestinationRule skipped",
      "error: invalid: spec.trafficPolicy.loadBalancer: simple and consistentHash are exclusive; DestinationRule skipped",
      "warning: spec.trafficPolicy.loadBalancer.localityLbSetting (locality load balancing) is not supported: endpoints are balanced regardless of locality",
      "warning: spec.trafficPolicy.tls.mode SIMPLE (origination of TLS to the destination) is not supported; mesh traffic uses weft's mTLS",
    ]);
  });
});
