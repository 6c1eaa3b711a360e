import { Counter, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { trafficLabels } from "../../agent/telemetry/labels.js";
import { ProxyMetrics } from "../../agent/telemetry/metrics.js";
import { renderMetrics } from "../../agent/telemetry/servers.js";
import { workload } from "../helpers/mesh-fixture.js";

describe("telemetry", () => {
  const src = workload({ name: "web", ns: "shop", ip: "10.244.1.2", node: "n1", nodeAddress: "x" });
  const dst = workload({ name: "db", ns: "data", ip: "10.244.2.2", node: "n2", nodeAddress: "y" });

  it("labels a connection with Istio's names and values", () => {
    const l = trafficLabels({
      reporter: "destination",
      source: src,
      sourcePrincipal: src.identity,
      destination: dst,
      mtls: true,
      responseFlags: "DENY",
    });
    expect(l).toMatchObject({
      reporter: "destination",
      source_workload: "web",
      source_workload_namespace: "shop",
      source_principal: "spiffe://cluster.local/ns/shop/sa/web",
      destination_workload: "db",
      destination_principal: "spiffe://cluster.local/ns/data/sa/db",
      destination_service: "unknown",
      connection_security_policy: "mutual_tls",
      response_flags: "DENY",
      request_protocol: "tcp",
    });
    // Without mTLS no principal is claimed for the destination.
    expect(trafficLabels({ reporter: "source", destination: dst, mtls: false }).destination_principal).toBe("unknown");
  });

  it("sums workers' counters into one page next to the agent's own metrics", async () => {
    const w1 = new ProxyMetrics();
    const w2 = new ProxyMetrics();
    const l = trafficLabels({ reporter: "source", source: src, destination: dst, mtls: true });
    w1.connectionOpened(l);
    w2.connectionOpened(l);
    w2.connectionOpened(l);
    w1.bytes(l, 100, 7);
    w2.bytes(l, 50, 3);
    const agent = new Registry();
    new Counter({ name: "weft_agent_xds_pushes_total", help: "x", registers: [agent] }).inc(4);
    const text = await renderMetrics(agent, [await w1.registry.getMetricsAsJSON(), await w2.registry.getMetricsAsJSON()] as never);
    expect(text).toMatch(/istio_tcp_connections_opened_total\{[^}]*source_workload="web"[^}]*\} 3/);
    expect(text).toMatch(/istio_tcp_received_bytes_total\{[^}]*\} 150/);
    expect(text).toMatch(/istio_tcp_sent_bytes_total\{[^}]*\} 10/);
    expect(text).toMatch(/weft_agent_xds_pushes_total 4/);
  });
});
