import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { describe, expect, it } from "vitest";
import { ProxyTracer } from "../../agent/telemetry/tracing.js";

const facts = { method: "GET", path: "/productpage?u=1", authority: "productpage:9080", canonicalService: "productpage" };

async function run(samplingPercentage: number, headers: Record<string, string>) {
  const exporter = new InMemorySpanExporter();
  const source = new ProxyTracer({ endpoint: "http://127.0.0.1:1", samplingPercentage }, "node1", exporter);
  const dest = new ProxyTracer({ endpoint: "http://127.0.0.1:1", samplingPercentage }, "node2", exporter);
  const h: Record<string, string | string[]> = { ...headers };
  const client = source.start("client", h, facts);
  const sentByClient = String(h.traceparent);
  const server = dest.start("server", h, facts);
  server.end(200, "-");
  client.end(200, "-");
  await source.flush();
  await dest.flush();
  return { spans: exporter.getFinishedSpans(), headers: h, sentByClient };
}

describe("proxy tracing (OpenTelemetry)", () => {
  it("links the destination's server span to the source's client span in one trace, and propagates W3C headers", async () => {
    const { spans, headers, sentByClient } = await run(100, {});
    expect(spans).toHaveLength(2);
    const client = spans.find((s) => s.kind === 2);
    const server = spans.find((s) => s.kind === 1);
    expect(server?.spanContext().traceId).toBe(client?.spanContext().traceId);
    expect(server?.parentSpanContext?.spanId).toBe(client?.spanContext().spanId);
    expect(sentByClient).toBe(`00-${client?.spanContext().traceId}-${client?.spanContext().spanId}-01`);
    expect(headers.traceparent).toBe(`00-${server?.spanContext().traceId}-${server?.spanContext().spanId}-01`);
    expect(server?.attributes).toMatchObject({
      "http.request.method": "GET",
      "url.path": "/productpage",
      "http.response.status_code": 200,
    });
  });

  it("continues a trace the app started (W3C), with its tracestate", async () => {
    const { spans, headers } = await run(0, {
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      tracestate: "app=1",
    });
    // The app sampled it: the proxies record it whatever their own percentage.
    expect(spans.map((s) => s.spanContext().traceId)).toEqual(["4bf92f3577b34da6a3ce929d0e0e4736", "4bf92f3577b34da6a3ce929d0e0e4736"]);
    expect(headers.tracestate).toBe("app=1");
  });

  it("accepts B3 headers as the parent", async () => {
    const { spans } = await run(100, { "x-b3-traceid": "463ac35c9f6413ad", "x-b3-spanid": "a2fb4a1d1a96d312", "x-b3-sampled": "1" });
    expect(spans[0]?.spanContext().traceId).toBe("0000000000000000463ac35c9f6413ad");
  });

  it("records nothing at 0 % sampling, and tells the next hop not to sample", async () => {
    const { spans, headers } = await run(0, {});
    expect(spans).toHaveLength(0);
    expect(String(headers.traceparent)).toMatch(/-00$/);
  });

  it("never fails a request when the collector is unreachable", async () => {
    const t = new ProxyTracer({ endpoint: "http://127.0.0.1:1", samplingPercentage: 100 }, "n");
    const h: Record<string, string | string[]> = {};
    t.start("client", h, facts).end(503, "UF");
    await expect(t.shutdown()).resolves.toBeUndefined();
  });
});
