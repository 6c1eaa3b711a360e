import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { LabelCounter } from "../../agent/telemetry/label-counter.js";
import { trafficLabels } from "../../agent/telemetry/labels.js";
import { ProxyMetrics } from "../../agent/telemetry/metrics.js";
import type { Workload } from "../../controller/api/model.js";

const web = { uid: "w1", workloadName: "web", canonicalName: "web", canonicalRevision: "v1", namespace: "shop" } as Workload;

describe("LabelCounter", () => {
  it("renders one Prometheus counter series per label set, with its sum", async () => {
    const registry = new Registry();
    const c = new LabelCounter(registry, "things_total", "Things");
    const a = Object.freeze({ kind: "a" });
    const b = Object.freeze({ kind: "b" });
    c.inc(a);
    c.inc(a, 4);
    c.inc(b);
    const text = await registry.metrics();
    expect(text).toContain("# TYPE things_total counter");
    expect(text).toContain('things_total{kind="a"} 5');
    expect(text).toContain('things_total{kind="b"} 1');
  });

  it("keeps one series for equal labels in another object, whatever the key order", async () => {
    const registry = new Registry();
    const c = new LabelCounter(registry, "things_total", "Things");
    c.inc(Object.freeze({ x: "1", y: "2" }));
    c.inc(Object.freeze({ y: "2", x: "1" }), 2);
    const json = await registry.getMetricsAsJSON();
    expect(json[0]?.values).toEqual([{ labels: { x: "1", y: "2" }, value: 3 }]);
  });
});

describe("ProxyMetrics TCP counters", () => {
  it("counts a close under the flags it closed with, merged with a refusal's equal labels", async () => {
    const m = new ProxyMetrics();
    const ok = trafficLabels({ reporter: "source", source: web, mtls: true });
    const refused = trafficLabels({ reporter: "source", source: web, mtls: true, responseFlags: "DENY" });
    m.connectionOpened(ok);
    m.connectionOpened(ok);
    m.connectionClosed(ok, "-");
    // A tunnel the destination refused opened with "-" and closes with DENY…
    m.connectionClosed(ok, "DENY");
    // …and a refusal decided before opening carries DENY from the start: one series for both.
    m.connectionOpened(refused);
    m.connectionClosed(refused, "DENY");
    m.bytes(ok, 100, 0);
    m.bytes(ok, 50, 10);
    const text = await m.registry.metrics();
    const closed = text.split("\n").filter((l) => l.startsWith("istio_tcp_connections_closed_total{"));
    expect(closed).toHaveLength(2);
    expect(closed.find((l) => l.includes('response_flags="-"'))).toMatch(/ 1$/);
    expect(closed.find((l) => l.includes('response_flags="DENY"'))).toMatch(/ 2$/);
    expect(text).toMatch(/istio_tcp_connections_opened_total\{[^}]*response_flags="-"[^}]*\} 2/);
    expect(text).toMatch(/istio_tcp_received_bytes_total\{[^}]*\} 150/);
    expect(text).toMatch(/istio_tcp_sent_bytes_total\{[^}]*\} 10/);
    expect(text).not.toMatch(/istio_tcp_sent_bytes_total\{[^}]*\} 0/);
  });
});
