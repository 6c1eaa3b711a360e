/**
 * Tracing settings from Istio's Telemetry: translation (scopes, refusal with field paths), the
 * agent's per-workload precedence, and the proxy sampling each new trace at that percentage.
 */
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { describe, expect, it } from "vitest";
import { MeshView } from "../../agent/state/view.js";
import { ProxyTracer } from "../../agent/telemetry/tracing.js";
import type { MeshSnapshotData, TracingPolicy, Workload } from "../../controller/api/model.js";
import { spiffeId } from "../../controller/api/model.js";
import { translate } from "../../controller/translate/index.js";
import type { Diagnostic } from "../../controller/translate/types.js";
import { custom, objects } from "../helpers/control-objects.js";

const msgs = (d: Diagnostic[]) => d.map((x) => `${x.severity}: ${x.message}`);
const telemetry = (name: string, ns: string, spec: unknown, created = "2026-01-01T00:00:00Z") =>
  custom("telemetry.istio.io/v1", "Telemetry", name, ns, spec, { creationTimestamp: created });

describe("translate: Telemetry (telemetry.istio.io) tracing", () => {
  it("reads randomSamplingPercentage with Istio's scopes: root namespace, namespace, selector", () => {
    const m = translate(
      objects([
        telemetry("mesh-default", "weft-system", { tracing: [{ randomSamplingPercentage: 10 }] }),
        telemetry("shop", "shop", { tracing: [{ randomSamplingPercentage: "2.5" }] }),
        telemetry("web", "shop", { selector: { matchLabels: { app: "web" } }, tracing: [{ randomSamplingPercentage: 100 }] }),
      ]),
    );
    expect(msgs(m.diagnostics)).toEqual([]);
    expect(m.meshConfig.tracing).toEqual([
      {
        key: "shop/shop",
        name: "shop",
        namespace: "shop",
        scope: { kind: "namespace" },
        samplingPercentage: 2.5,
        createdAt: "2026-01-01T00:00:00Z",
      },
      {
        key: "shop/web",
        name: "web",
        namespace: "shop",
        scope: { kind: "workload", selector: { app: "web" } },
        samplingPercentage: 100,
        createdAt: "2026-01-01T00:00:00Z",
      },
      {
        key: "weft-system/mesh-default",
        name: "mesh-default",
        namespace: "weft-system",
        scope: { kind: "mesh" },
        samplingPercentage: 10,
        createdAt: "2026-01-01T00:00:00Z",
      },
    ]);
  });

  it.each([
    [
      "a percentage over 100",
      { tracing: [{ randomSamplingPercentage: 150 }] },
      /spec\.tracing\[0\]\.randomSamplingPercentage: 150 is out of range 0\.\.100/,
    ],
    [
      "a percentage that is not a number",
      { tracing: [{ randomSamplingPercentage: "half" }] },
      /spec\.tracing\[0\]\.randomSamplingPercentage: expected a number/,
    ],
    [
      "two tracing entries",
      { tracing: [{ randomSamplingPercentage: 1 }, { randomSamplingPercentage: 2 }] },
      /spec\.tracing: only one tracing entry/,
    ],
    [
      "a targetRefs binding",
      { targetRefs: [{ kind: "Service", name: "web" }], tracing: [{ randomSamplingPercentage: 1 }] },
      /spec\.targetRefs: not supported/,
    ],
    [
      "a selector in the root namespace",
      { selector: { matchLabels: { app: "web" } }, tracing: [{ randomSamplingPercentage: 1 }] },
      /spec\.selector: not valid in the root namespace/,
    ],
    ["tracing that is not a list", { tracing: { randomSamplingPercentage: 1 } }, /spec\.tracing: expected a list/],
  ])("refuses %s, naming the field, and pushes nothing for it", (_n, spec, why) => {
    const ns = /root namespace/.test(String(why)) ? "weft-system" : "shop";
    const m = translate(objects([telemetry("bad", ns, spec)]));
    expect(m.meshConfig.tracing).toBeUndefined();
    const errors = m.diagnostics.filter((d) => d.severity === "error");
    expect(errors).toHaveLength(1);
    expect(errors[0]?.message).toMatch(why);
    expect(errors[0]?.message).toMatch(/Telemetry refused$/);
    // Listed like refused routing objects, so `weft policies` shows why it has no effect.
    expect(m.meshConfig.refused?.map((r) => `${r.kind} ${r.namespace}/${r.name}`)).toEqual([`Telemetry ${ns}/bad`]);
  });

  it("reports what it does not use instead of ignoring it silently", () => {
    const m = translate(
      objects([
        telemetry("t", "shop", {
          tracing: [{ providers: [{ name: "zipkin" }], customTags: { a: { literal: { value: "b" } } }, randomSamplingPercentage: 5 }],
          accessLogging: [{ providers: [{ name: "envoy" }] }],
        }),
        telemetry("typo", "shop", { tracing: [{ randomSamplingPercent: 5 }] }),
      ]),
    );
    expect(m.meshConfig.tracing?.map((t) => [t.key, t.samplingPercentage])).toEqual([
      ["shop/t", 5],
      ["shop/typo", undefined],
    ]);
    const text = msgs(m.diagnostics).join("\n");
    expect(text).toMatch(/warning: spec\.tracing\[0\]\.providers is not supported: spans go to the collector/);
    expect(text).toMatch(/warning: spec\.tracing\[0\]\.customTags is not supported/);
    expect(text).toMatch(/warning: spec\.accessLogging is not supported/);
    expect(text).toMatch(
      /warning: spec\.tracing\[0\]\.randomSamplingPercent is not a field weft supports; it is ignored \(did you mean randomSamplingPercentage\?\)/,
    );
    expect(text).toMatch(/warning: sets no tracing\.randomSamplingPercentage/);
  });
});

function wl(name: string, ns: string, labels: Record<string, string>): Workload {
  return {
    uid: `u-${name}`,
    name,
    namespace: ns,
    serviceAccount: "sa",
    identity: spiffeId("cluster.local", ns, "sa"),
    addresses: [`10.244.1.${name.length}`],
    node: "n1",
    nodeAddress: "10.250.0.11",
    labels,
    workloadName: name,
    canonicalName: name,
    canonicalRevision: "latest",
    enrolled: true,
    enrolmentReason: "test",
    ready: true,
  };
}

function tp(
  name: string,
  ns: string,
  pct: number | undefined,
  selector?: Record<string, string>,
  createdAt = "2026-01-01T00:00:00Z",
): TracingPolicy {
  const kind = ns === "weft-system" ? "mesh" : selector ? "workload" : "namespace";
  return {
    key: `${ns}/${name}`,
    name,
    namespace: ns,
    scope: selector ? { kind, selector } : { kind },
    ...(pct === undefined ? {} : { samplingPercentage: pct }),
    createdAt,
  };
}

function view(tracingPolicies: TracingPolicy[], workloads: Workload[]): MeshView {
  const data: MeshSnapshotData = {
    version: "1",
    nodeName: "n1",
    trustDomain: "cluster.local",
    rootNamespace: "weft-system",
    workloads,
    services: [],
    authorizationPolicies: [],
    peerAuthentications: [],
    tracingPolicies,
  };
  return new MeshView(data);
}

describe("agent: the sampling percentage a workload's Telemetry sets", () => {
  const web = wl("web", "shop", { app: "web" });
  const db = wl("db", "shop", { app: "db" });
  const other = wl("other", "default", { app: "web" });

  it("takes the selector's over the namespace's over the root namespace's; none: the flag decides", () => {
    const v = view([tp("mesh", "weft-system", 10), tp("ns", "shop", 20), tp("web", "shop", 30, { app: "web" })], [web, db, other]);
    expect([v.samplingFor(web), v.samplingFor(db), v.samplingFor(other)]).toEqual([30, 20, 10]);
    expect(view([], [web]).samplingFor(web)).toBeUndefined();
  });

  it("lets an unset percentage inherit, and the oldest of one scope win", () => {
    const v = view(
      [
        tp("mesh", "weft-system", 10),
        tp("web-unset", "shop", undefined, { app: "web" }),
        tp("newer", "shop", 50, undefined, "2026-02-01T00:00:00Z"),
        tp("older", "shop", 40, undefined, "2026-01-01T00:00:00Z"),
      ],
      [web],
    );
    expect(v.samplingFor(web)).toBe(40);
  });
});

describe("proxy: new traces sampled at the request's percentage", () => {
  it("uses the given percentage over the configured one, and the configured one when none is given", async () => {
    const exporter = new InMemorySpanExporter();
    const tracer = new ProxyTracer({ endpoint: "http://127.0.0.1:1", samplingPercentage: 100 }, "n1", exporter);
    const facts = { method: "GET", path: "/", authority: "web:80" };
    const traceparents: string[] = [];
    for (let i = 0; i < 20; i++) {
      const h: Record<string, string | string[]> = {};
      tracer.start("client", h, facts, i % 2 === 0 ? 0 : undefined).end(200, "-");
      traceparents.push(String(h.traceparent));
    }
    await tracer.flush();
    // Every request carries a trace context on; only the ones at the configured 100 % were recorded.
    expect(traceparents.map((t) => t.slice(-2))).toEqual(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? "00" : "01")));
    expect(exporter.getFinishedSpans()).toHaveLength(10);
    await tracer.shutdown();
  });
});
