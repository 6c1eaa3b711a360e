import { describe, expect, it } from "vitest";
import { layeredLayout } from "../../agent/cli/graph-layout.js";
import { bucketQuantile, buildGraph } from "../../agent/cli/graph-model.js";
import { graphPage } from "../../agent/cli/graph-page.js";
import { mergeMeshStates, policiesFor } from "../../agent/cli/graph-policies.js";
import { renderDot, renderTable } from "../../agent/cli/graph-render.js";
import { parsePrometheusText, ratesBetween, sumSamples } from "../../agent/cli/graph-samples.js";
import { servedGraph } from "../../agent/cli/graph-serve.js";
import { snapshot, workload } from "../helpers/mesh-fixture.js";

const BUCKETS = [1, 5, 10, 25, 50, 100, 250, 500, 1000];

/** Prometheus text for requests src→dst, with `durations` (ms) observed into Istio's buckets. */
function requests(opts: {
  src: string;
  dst: string;
  n: number;
  code?: string;
  flags?: string;
  mtls?: boolean;
  durations?: number[];
}): string {
  const l = [
    'reporter="source"',
    `source_workload="${opts.src}"`,
    'source_workload_namespace="bookinfo"',
    `destination_workload="${opts.dst}"`,
    'destination_workload_namespace="bookinfo"',
    `destination_service="${opts.dst.replace(/-v\d$/, "")}.bookinfo.svc.cluster.local"`,
    'request_protocol="http"',
    `response_code="${opts.code ?? "200"}"`,
    `response_flags="${opts.flags ?? "-"}"`,
    `connection_security_policy="${opts.mtls === false ? "unknown" : "mutual_tls"}"`,
  ].join(",");
  const lines = [`istio_requests_total{${l}} ${opts.n}`];
  const d = opts.durations ?? [];
  for (const le of BUCKETS) lines.push(`istio_request_duration_milliseconds_bucket{${l},le="${le}"} ${d.filter((x) => x <= le).length}`);
  lines.push(`istio_request_duration_milliseconds_bucket{${l},le="+Inf"} ${d.length}`);
  return lines.join("\n");
}

describe("graph samples", () => {
  it("parses names, labels (with escapes) and values, and filters by prefix", () => {
    const s = parsePrometheusText('# HELP x\nistio_requests_total{a="x\\"y",b="2"} 7\nother 1\nistio_tcp_x 3 1700000000\n', ["istio_"]);
    expect(s).toEqual([
      { name: "istio_requests_total", labels: { a: 'x"y', b: "2" }, value: 7 },
      { name: "istio_tcp_x", labels: {}, value: 3 },
    ]);
  });

  it("names the line it cannot parse", () => {
    expect(() => parsePrometheusText("ok 1\nbad{a=1} 2\n")).toThrow(/line 2/);
  });

  it("rates between scrapes; a counter that went down (restart) counts its new value", () => {
    const before = parsePrometheusText('c{a="1"} 10\nc{a="2"} 50\n');
    const after = parsePrometheusText('c{a="1"} 30\nc{a="2"} 4\nc{a="3"} 6\n');
    expect(ratesBetween(before, after, 2).map((r) => r.rate)).toEqual([10, 2, 3]);
  });

  it("sums the same series across agents", () => {
    const a = parsePrometheusText('c{a="1"} 1\n');
    const b = parsePrometheusText('c{a="1"} 2\nc{a="2"} 5\n');
    expect(sumSamples([a, b]).map((s) => s.value)).toEqual([3, 5]);
  });
});

describe("graph model", () => {
  const before = parsePrometheusText(
    [requests({ src: "productpage-v1", dst: "reviews-v1", n: 100 }), requests({ src: "productpage-v1", dst: "details-v1", n: 40 })].join(
      "\n",
    ),
  );
  const durations = Array.from({ length: 100 }, (_, i) => (i < 90 ? 3 : 200));
  const after = parsePrometheusText(
    [
      requests({ src: "productpage-v1", dst: "reviews-v1", n: 200, durations }),
      requests({ src: "productpage-v1", dst: "reviews-v1", n: 10, code: "503", flags: "UF" }),
      requests({ src: "productpage-v1", dst: "details-v1", n: 40 }),
      requests({ src: "traffic", dst: "ratings-v1", n: 5, code: "403", flags: "DENY", mtls: false }),
    ].join("\n"),
  );
  const g = buildGraph(ratesBetween(before, after, 10), "agents", 10, new Date(0));

  it("has one edge per source→destination with rps, errors and mTLS", () => {
    const reviews = g.edges.find((e) => e.destination === "bookinfo/reviews-v1");
    expect(reviews).toMatchObject({ source: "bookinfo/productpage-v1", protocol: "http", mtls: "mutual_tls", denied: false });
    expect(reviews?.rps).toBeCloseTo((200 - 100 + 10) / 10);
    expect(reviews?.errorRate).toBeCloseTo(1 / 11, 3);
    expect(reviews?.services).toEqual(["reviews.bookinfo.svc.cluster.local"]);
    const details = g.edges.find((e) => e.destination === "bookinfo/details-v1");
    expect(details?.rps).toBe(0);
    expect(details?.total).toBe(40);
  });

  it("latency quantiles come from the histogram's increase", () => {
    const reviews = g.edges.find((e) => e.destination === "bookinfo/reviews-v1");
    expect(reviews?.p50Ms).toBeGreaterThan(1);
    expect(reviews?.p50Ms).toBeLessThanOrEqual(5);
    expect(reviews?.p99Ms).toBeGreaterThan(100);
    expect(reviews?.p99Ms).toBeLessThanOrEqual(250);
  });

  it("a denied edge stands out, and plain text shows as such", () => {
    const denied = g.edges.find((e) => e.destination === "bookinfo/ratings-v1");
    expect(denied).toMatchObject({ denied: true, mtls: "none", errorRate: 0 });
    expect(denied?.deniedRate).toBeCloseTo(0.5);
  });

  it("a routed call's connection to the Service is folded into its request edges, a plain TCP edge stays", () => {
    const tcp = (dst: string, svc: string) =>
      `istio_tcp_connections_opened_total{reporter="source",source_workload="productpage-v1",source_workload_namespace="bookinfo",destination_workload="${dst}",destination_workload_namespace="${dst === "unknown" ? "unknown" : "bookinfo"}",destination_service="${svc}.bookinfo.svc.cluster.local",destination_service_name="${svc}",destination_service_namespace="bookinfo",response_flags="-",connection_security_policy="mutual_tls"} 3`;
    const text = [requests({ src: "productpage-v1", dst: "reviews-v1", n: 5 }), tcp("unknown", "reviews"), tcp("unknown", "db")].join("\n");
    const samples = parsePrometheusText(text);
    const g2 = buildGraph(ratesBetween(samples, samples, 1), "agents", 1);
    expect(g2.edges.map((e) => e.destination).sort()).toEqual(["bookinfo/reviews-v1", "svc:db.bookinfo.svc.cluster.local"]);
    expect(g2.nodes.some((n) => n.id === "svc:reviews.bookinfo.svc.cluster.local")).toBe(false);
  });

  it("bucketQuantile interpolates inside the bucket", () => {
    const b = new Map([
      [10, 50],
      [20, 100],
      [Number.POSITIVE_INFINITY, 100],
    ]);
    expect(bucketQuantile(0.75, b)).toBeCloseTo(15);
    expect(bucketQuantile(0.5, new Map())).toBeUndefined();
  });

  it("the table fits 80 columns, lists every edge, and marks the denied one", () => {
    const text = renderTable(g, 80);
    for (const line of text.split("\n")) expect(line.length).toBeLessThanOrEqual(80);
    expect(text).toContain("productpage-v1");
    expect(text.split("\n").filter((l) => l.includes("→")).length).toBe(g.edges.length + 1);
    expect(text).toMatch(/ratings-v1.*DENY/);
  });

  it("dot has a cluster per namespace and a red dashed denied edge", () => {
    const dot = renderDot(g);
    expect(dot).toContain('subgraph "cluster_bookinfo"');
    expect(dot).toMatch(/"bookinfo\/traffic" -> "bookinfo\/ratings-v1" \[label="[^"]*DENIED", color=red/);
    expect(dot.match(/->/g)?.length).toBe(g.edges.length);
  });
});

describe("graph layout", () => {
  const nodes = ["a", "b", "c", "d", "e"].map((id) => ({ id, group: id === "e" ? "other" : "ns" }));
  const edges = [
    { source: "a", destination: "b" },
    { source: "a", destination: "c" },
    { source: "b", destination: "d" },
    { source: "c", destination: "d" },
    { source: "d", destination: "a" }, // a cycle
    { source: "e", destination: "d" },
  ];
  const out = layeredLayout({ nodes, edges });
  const at = new Map(out.nodes.map((n) => [n.id, n]));

  it("places every node once, callers left of callees (cycles broken)", () => {
    expect(out.nodes.map((n) => n.id).sort()).toEqual(["a", "b", "c", "d", "e"]);
    for (const e of edges.slice(0, 4)) expect(at.get(e.source)?.x).toBeLessThan(at.get(e.destination)?.x as number);
  });

  it("no two nodes overlap, and all lie inside the drawing", () => {
    const seen = new Set(out.nodes.map((n) => `${n.x},${n.y}`));
    expect(seen.size).toBe(out.nodes.length);
    for (const n of out.nodes) {
      expect(n.x).toBeGreaterThan(0);
      expect(n.x).toBeLessThan(out.width);
      expect(n.y).toBeGreaterThan(0);
      expect(n.y).toBeLessThan(out.height);
    }
  });

  it("is deterministic", () => {
    expect(layeredLayout({ nodes: [...nodes].reverse(), edges })).toEqual(out);
  });
});

describe("graph policies and page", () => {
  const reviews = workload({
    name: "reviews-v1",
    ns: "bookinfo",
    ip: "10.244.1.5",
    node: "node1",
    nodeAddress: "10.0.0.1",
    labels: { app: "reviews" },
  });
  const state = snapshot(
    "node1",
    [{ ...reviews, workloadName: "reviews-v1" }],
    [],
    [
      {
        key: "bookinfo/deny-traffic",
        name: "deny-traffic",
        namespace: "bookinfo",
        scope: { kind: "workload", selector: { app: "reviews" } },
        action: "DENY",
        rules: [],
      },
      {
        key: "bookinfo/other",
        name: "other",
        namespace: "bookinfo",
        scope: { kind: "workload", selector: { app: "ratings" } },
        action: "ALLOW",
        rules: [],
      },
      { key: "shop/ns-wide", name: "ns-wide", namespace: "shop", scope: { kind: "namespace" }, action: "ALLOW", rules: [] },
    ],
  );
  const edge = {
    id: "x",
    source: "bookinfo/productpage-v1",
    destination: "bookinfo/reviews-v1",
    services: ["reviews.bookinfo.svc.cluster.local"],
    protocol: "http" as const,
    rps: 1,
    errorRate: 0,
    mtls: "mutual_tls" as const,
    deniedRate: 0,
    denied: false,
    bytesPerSecond: 0,
    total: 1,
  };

  it("lists the policies whose scope covers the destination workload, and only those", () => {
    const p = policiesFor(edge, mergeMeshStates([state, state]));
    expect(p).toEqual([{ kind: "AuthorizationPolicy", key: "bookinfo/deny-traffic", effect: "DENY" }]);
  });

  it("the page is self-contained (no external script or style) and polls graph.json", () => {
    const html = graphPage(1000);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3\.org)/);
    expect(html).toContain("graph.json");
    const served = servedGraph({ generatedAt: "", source: "agents", windowSeconds: 1, nodes: [], edges: [] }, {});
    expect(served.layout.nodes).toEqual([]);
  });
});
