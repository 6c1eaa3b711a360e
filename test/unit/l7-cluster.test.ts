/** Traffic policy precedence and port choice of the L7 router's clusters (Istio's MergeTrafficPolicy). */
import { describe, expect, it } from "vitest";
import { resolvePolicy, resolvePort } from "../../agent/proxy/l7/cluster.js";
import type { DestinationPolicy, Service } from "../../controller/api/model.js";

const dr: DestinationPolicy = {
  key: "shop/web",
  name: "web",
  namespace: "shop",
  host: "web.shop.svc.cluster.local",
  service: "shop/web",
  exportTo: ["*"],
  createdAt: "2026-01-01T00:00:00Z",
  trafficPolicy: {
    loadBalancer: { simple: "ROUND_ROBIN" },
    connectionPool: { tcp: { maxConnections: 10 } },
    portLevel: [{ port: 9090, outlierDetection: { consecutive5xxErrors: 3 } }],
  },
  subsets: [
    { name: "plain", labels: { v: "1" } },
    { name: "lr", labels: { v: "2" }, trafficPolicy: { loadBalancer: { simple: "LEAST_REQUEST" }, portLevel: [] } },
    {
      name: "ported",
      labels: { v: "3" },
      trafficPolicy: { loadBalancer: { simple: "RANDOM" }, portLevel: [{ port: 80, connectionPool: { tcp: { maxConnections: 1 } } }] },
    },
  ],
};

describe("resolvePolicy", () => {
  it.each<[string, DestinationPolicy | undefined, string | undefined, number, object]>([
    ["no DestinationRule: nothing", undefined, undefined, 80, {}],
    ["top level", dr, undefined, 80, { loadBalancer: { simple: "ROUND_ROBIN" }, connectionPool: { tcp: { maxConnections: 10 } } }],
    ["a port-level entry replaces all three fields", dr, undefined, 9090, { outlierDetection: { consecutive5xxErrors: 3 } }],
    [
      "a subset without a policy inherits",
      dr,
      "plain",
      80,
      { loadBalancer: { simple: "ROUND_ROBIN" }, connectionPool: { tcp: { maxConnections: 10 } } },
    ],
    [
      "a subset overrides field by field",
      dr,
      "lr",
      80,
      { loadBalancer: { simple: "LEAST_REQUEST" }, connectionPool: { tcp: { maxConnections: 10 } } },
    ],
    ["a subset's port-level entry replaces all three", dr, "ported", 80, { connectionPool: { tcp: { maxConnections: 1 } } }],
    [
      "a subset's port-level entry for another port is ignored",
      dr,
      "ported",
      9090,
      { loadBalancer: { simple: "RANDOM" }, outlierDetection: { consecutive5xxErrors: 3 } },
    ],
  ])("%s", (_n, rule, subset, port, want) => {
    expect(resolvePolicy(rule, subset, port)).toEqual(rule ? { ...want, destinationRule: "shop/web" } : want);
  });
});

describe("resolvePort", () => {
  const svc = (ports: number[]): Service => ({
    key: "shop/api",
    name: "api",
    namespace: "shop",
    hostname: "api.shop.svc.cluster.local",
    vips: [],
    ports: ports.map((port) => ({ port, targetPort: port, appProtocol: "http" })),
    endpoints: [],
  });
  it.each<[string, number[], number | undefined, number, number | string]>([
    ["the named port", [80, 9090], 9090, 80, 9090],
    ["a named port the service lacks", [80], 81, 80, "service shop/api has no port 81"],
    ["the request's port number", [80, 9090], undefined, 80, 80],
    ["the only port", [8000], undefined, 80, 8000],
    ["ambiguous", [81, 82], undefined, 80, "service shop/api has no port 80 and several others; the route must name one"],
  ])("%s", (_n, ports, named, requestPort, want) => {
    const p = resolvePort(svc(ports), named, requestPort);
    expect(typeof p === "string" ? p : p.port).toBe(want);
  });
});
