/**
 * Acceptance (issue 12): request tracing in the node proxies on Bookinfo. One productpage request
 * yields one trace at an OTLP receiver the test runs in the cluster's fabric netns: a client span
 * at the source node and a server span at the destination node for every hop, linked parent to
 * child across both nodes. An Istio Telemetry at 0 % in the root namespace stops new traces,
 * shown against a positive control (a request that arrives already sampled is exported by the
 * same agents, after the unsampled ones).
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { requireState, runDetached } from "../../scripts/cluster/cluster.js";
import { Topology } from "../../scripts/cluster/topology.js";
import { BOOKINFO_NS } from "../../scripts/demo/bookinfo.js";
import { forceDown } from "../helpers/cluster.js";
import {
  applyIn,
  BOOKINFO_CLIENT,
  bookinfoUp,
  deleteIn,
  getOnce,
  ISTIO,
  loadClient,
  nodeOf,
  productpageUrl,
  waitForReviews,
} from "../helpers/l7.js";
import { describePrivileged } from "../helpers/privileged.js";
import { waitFor } from "../helpers/wait.js";
import { ROOT, testClusterName } from "../helpers/weft.js";

const C = testClusterName("lt");
const NS = BOOKINFO_NS;
const RECEIVER = join(ROOT, "test", "helpers", "otlp-receiver.mjs");
const OTLP_PORT = 4318;
const TMP = mkdtempSync(join(tmpdir(), "weft-l7-tracing-"));
const SPANS = join(TMP, "spans.jsonl");
const REVIEWS_V2 = join(TMP, "reviews-v2.yaml");
const TELEMETRY_OFF = join(TMP, "telemetry-off.yaml");
/** The local controller's root namespace (mesh-wide policies). */
const ROOT_NS = "weft-system";
/** Every hop of a productpage request with reviews v2: [caller, callee] canonical services. */
const HOPS: [string, string][] = [
  ["traffic", "productpage"],
  ["productpage", "details"],
  ["productpage", "reviews"],
  ["reviews", "ratings"],
];
/** The pod of each canonical service the request passes through. */
const POD: Record<string, string> = {
  traffic: "traffic",
  productpage: "productpage-v1",
  details: "details-v1",
  reviews: "reviews-v2",
  ratings: "ratings-v1",
};

/** One span as the receiver writes it. */
interface SpanLine {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: string;
  startNs: string;
  node: string;
  attributes: Record<string, unknown>;
}

function allSpans(): SpanLine[] {
  return readFileSync(SPANS, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as SpanLine);
}

/** Traces whose every span started at or after t0 (ns since the epoch): the ones requests sent after t0 made. */
function tracesSince(t0: bigint): Map<string, SpanLine[]> {
  const by = new Map<string, SpanLine[]>();
  for (const s of allSpans()) by.set(s.traceId, [...(by.get(s.traceId) ?? []), s]);
  for (const [id, spans] of by) if (spans.some((s) => BigInt(s.startNs) < t0)) by.delete(id);
  return by;
}

const nowNs = () => BigInt(Date.now()) * 1_000_000n;
const service = (s: SpanLine) => s.attributes["istio.canonical_service"];
const nodeName = (pod: string) => new Topology(requireState(C).spec).nodeName(nodeOf(C, NS, pod));

/** The client and server span of a hop (the server's parent is the client), or why not (yet). */
function hop(spans: SpanLine[], from: string, to: string): { client: SpanLine; server: SpanLine } | string {
  for (const client of spans.filter((s) => s.kind === "CLIENT" && service(s) === from)) {
    const server = spans.find((s) => s.kind === "SERVER" && service(s) === to && s.parentSpanId === client.spanId);
    if (server) return { client, server };
  }
  return `no ${from} -> ${to} client/server pair among ${spans.map((s) => `${s.kind} ${String(service(s))} ${s.name}`).join(", ")}`;
}

/** Waits until one trace holds every hop's span pair; returns its spans. */
async function completeTrace(what: string, pick: () => SpanLine[] | undefined): Promise<SpanLine[]> {
  return waitFor(
    what,
    () => {
      const spans = pick();
      if (!spans) throw new Error("no trace yet");
      for (const [from, to] of HOPS) {
        const h = hop(spans, from, to);
        if (typeof h === "string") throw new Error(h);
      }
      return spans;
    },
    20_000,
    100,
  );
}

/**
 * Sends `unsampled` productpage requests with no trace headers, then one that arrives already
 * sampled (a W3C traceparent with the sampled flag), and waits for the latter's whole trace.
 * Each agent exports its spans in the order they ended, so once the control trace is in, any
 * span of the earlier requests would be too. Returns the other traces started since.
 */
async function controlRound(unsampled: number): Promise<Map<string, SpanLine[]>> {
  const t0 = nowNs();
  const r = await loadClient(C, BOOKINFO_CLIENT, ["--url", productpageUrl(C), "-n", String(unsampled)]);
  expect(r.codes).toEqual({ "200": unsampled });
  const traceId = randomBytes(16).toString("hex");
  const control = await getOnce(C, BOOKINFO_CLIENT, productpageUrl(C), [`traceparent:00-${traceId}-${randomBytes(8).toString("hex")}-01`]);
  expect(control.status).toBe(200);
  await completeTrace("the sampled control request's trace", () => tracesSince(t0).get(traceId));
  const others = tracesSince(t0);
  others.delete(traceId);
  return others;
}

describePrivileged("L7: request tracing across the node proxies (client and server spans, OTLP, Telemetry sampling)", () => {
  beforeAll(async () => {
    writeFileSync(
      REVIEWS_V2,
      [
        "apiVersion: networking.istio.io/v1",
        "kind: VirtualService",
        "metadata:",
        "  name: reviews",
        "spec:",
        "  hosts: [reviews]",
        "  http:",
        "    - route:",
        "        - destination: {host: reviews, subset: v2}",
        "",
      ].join("\n"),
    );
    writeFileSync(
      TELEMETRY_OFF,
      [
        "apiVersion: telemetry.istio.io/v1",
        "kind: Telemetry",
        "metadata:",
        "  name: mesh-default",
        "spec:",
        "  tracing:",
        "    - randomSamplingPercentage: 0",
        "",
      ].join("\n"),
    );
    // The receiver listens on the cluster bridge (fabric netns), which every node reaches; the
    // agents trace every new request (100 %) unless a Telemetry says otherwise.
    await bookinfoUp(C, async () => {
      const ip = new Topology(requireState(C).spec).fabricIp;
      await runDetached(C, "fabric", [process.execPath, RECEIVER, "--listen", `${ip}:${OTLP_PORT}`, "--out", SPANS], {
        what: "otlp receiver",
      });
      await waitFor("the OTLP receiver listening", () => existsSync(SPANS), 10_000, 50);
      return { agentArgs: ["--tracing-endpoint", `http://${ip}:${OTLP_PORT}`, "--tracing-sampling", "100"] };
    });
    // Every call takes the source's L7 path (DestinationRules), and reviews is always v2, which
    // calls ratings: four hops, each crossing or staying on a node as Bookinfo is placed.
    await applyIn(C, NS, join(ISTIO, "destination-rule-all.yaml"));
    await applyIn(C, NS, REVIEWS_V2);
    await waitForReviews(C, "all of reviews on v2", (v) => Object.keys(v).join() === "v2", { sample: 12 });
  }, 180_000);

  afterAll(async () => {
    await forceDown(C);
    rmSync(TMP, { recursive: true, force: true });
  });

  it("one productpage request yields one trace: client and server spans per hop, linked across both nodes", async () => {
    const t0 = nowNs();
    const r = await getOnce(C, BOOKINFO_CLIENT, productpageUrl(C));
    expect(r.status).toBe(200);
    expect((r.body as { reviewsVersion?: string }).reviewsVersion).toBe("v2");
    await completeTrace("the request's trace at the receiver", () => {
      const ts = [...tracesSince(t0).values()];
      if (ts.length > 1) throw new Error(`${ts.length} traces for one request`);
      return ts[0];
    });
    const traces = tracesSince(t0);
    expect(traces.size).toBe(1);
    const spans = [...traces.values()][0] as SpanLine[];
    expect(spans.length).toBeGreaterThanOrEqual(4);
    // One root: the client span where the request entered the mesh (the traffic pod's node).
    const roots = spans.filter((s) => s.parentSpanId === "");
    expect(roots.map((s) => [s.kind, service(s), s.node])).toEqual([["CLIENT", "traffic", nodeName(POD.traffic as string)]]);
    // Every other span's parent is in the same trace.
    const ids = new Set(spans.map((s) => s.spanId));
    expect(spans.filter((s) => s.parentSpanId !== "" && !ids.has(s.parentSpanId))).toEqual([]);
    for (const [from, to] of HOPS) {
      const h = hop(spans, from, to);
      if (typeof h === "string") throw new Error(h);
      // The client span is made at the caller's node, the server span at the callee's.
      expect([from, h.client.node], `${from} -> ${to} client span`).toEqual([from, nodeName(POD[from] as string)]);
      expect([to, h.server.node], `${from} -> ${to} server span`).toEqual([to, nodeName(POD[to] as string)]);
      expect(h.server.attributes["http.response.status_code"]).toBe("200");
      // A call the app makes while serving a request continues that request's server span.
      if (from !== "traffic") {
        const parent = spans.find((s) => s.spanId === h.client.parentSpanId);
        expect([parent?.kind, parent && service(parent)], `parent of the ${from} -> ${to} client span`).toEqual(["SERVER", from]);
      }
    }
    expect(new Set(spans.map((s) => s.node)).size).toBe(2);
  });

  it("a Telemetry at 0 % in the root namespace stops new traces; an already sampled request still traces", async () => {
    // Positive control first, at the flag's 100 %: the unsampled requests do make traces.
    expect((await controlRound(2)).size).toBe(2);
    await applyIn(C, ROOT_NS, TELEMETRY_OFF);
    await waitFor(
      "the 0 % Telemetry in effect at every agent",
      async () => {
        const others = await controlRound(1);
        if (others.size > 0) throw new Error(`a request without trace headers was still traced (${others.size})`);
        return true;
      },
      30_000,
      0,
    );
    const others = await controlRound(10);
    expect([...others.keys()]).toEqual([]);
    // Without the Telemetry, the agents' own 100 % is back.
    await deleteIn(C, ROOT_NS, TELEMETRY_OFF);
    await waitFor(
      "sampling back at the flag's 100 %",
      async () => {
        const n = (await controlRound(1)).size;
        if (n !== 1) throw new Error(`${n} traces for one unsampled request`);
        return true;
      },
      30_000,
      0,
    );
  });
});
