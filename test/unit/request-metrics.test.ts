import { AggregatorRegistry, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { trafficLabels } from "../../agent/telemetry/labels.js";
import { ProxyMetrics } from "../../agent/telemetry/metrics.js";
import { workload } from "../helpers/mesh-fixture.js";

const src = workload({ name: "client", ns: "a", ip: "10.0.0.1", node: "n1", nodeAddress: "10.250.0.11" });
const dst = workload({ name: "server", ns: "b", ip: "10.0.0.2", node: "n2", nodeAddress: "10.250.0.12" });
const labels = trafficLabels({
  reporter: "source",
  source: src,
  sourcePrincipal: src.identity,
  destination: dst,
  mtls: true,
  protocol: "http",
});

describe("request metrics", () => {
  it("renders Istio's counter and histograms with cumulative buckets, sum and count", async () => {
    const m = new ProxyMetrics(new Registry());
    m.requests.record(labels, 200, "", 3, 0, 1024);
    m.requests.record(labels, 200, "", 700, 10, 1024);
    m.requests.record(labels, 503, "", 1, 0, 20);
    const text = await m.registry.metrics();
    expect(text).toMatch(/istio_requests_total\{[^}]*response_code="200"[^}]*\} 2\n/);
    expect(text).toMatch(/istio_requests_total\{[^}]*response_code="503"[^}]*\} 1\n/);
    expect(text).toMatch(/istio_request_duration_milliseconds_bucket\{[^}]*response_code="200"[^}]*le="5"\} 1\n/);
    expect(text).toMatch(/istio_request_duration_milliseconds_bucket\{[^}]*response_code="200"[^}]*le="500"\} 1\n/);
    expect(text).toMatch(/istio_request_duration_milliseconds_bucket\{[^}]*response_code="200"[^}]*le="1000"\} 2\n/);
    expect(text).toMatch(/istio_request_duration_milliseconds_bucket\{[^}]*response_code="200"[^}]*le="\+Inf"\} 2\n/);
    expect(text).toMatch(/istio_request_duration_milliseconds_sum\{[^}]*response_code="200"[^}]*\} 703\n/);
    expect(text).toMatch(/istio_response_bytes_count\{[^}]*response_code="503"[^}]*\} 1\n/);
    expect(text).toContain("# TYPE istio_request_duration_milliseconds histogram");
  });

  it("sums across proxy workers as the metrics endpoint does", async () => {
    const a = new ProxyMetrics(new Registry());
    const b = new ProxyMetrics(new Registry());
    a.requests.record(labels, 200, "0", 2, 5, 5);
    b.requests.record(labels, 200, "0", 30, 5, 5);
    b.requests.record(labels, 200, "0", 30, 5, 5);
    const merged = AggregatorRegistry.aggregate([await a.registry.getMetricsAsJSON(), await b.registry.getMetricsAsJSON()] as never);
    const text = await merged.metrics();
    expect(text).toMatch(/istio_requests_total\{[^}]*grpc_response_status="0"[^}]*\} 3\n/);
    expect(text).toMatch(/istio_request_duration_milliseconds_bucket\{[^}]*le="5"\} 1\n/);
    expect(text).toMatch(/istio_request_duration_milliseconds_bucket\{[^}]*le="50"\} 3\n/);
  });

  it("keeps one series for equal labels even when the label object is rebuilt", async () => {
    const m = new ProxyMetrics(new Registry());
    m.requests.record(labels, 200, "", 1, 0, 0);
    m.requests.record({ ...labels }, 200, "", 1, 0, 0);
    const json = await m.registry.getMetricsAsJSON();
    const total = json.find((x) => x.name === "istio_requests_total");
    expect(total?.values).toHaveLength(1);
    expect(total?.values[0]?.value).toBe(2);
  });
});
