/**
 * Acceptance (issue 11): resilience in the source node proxy: circuit breaking (Istio's task:
 * connection-pool limits overflow as 503 UO, counted in istio_requests_total), outlier detection
 * (an endpoint answering 500 is ejected for baseEjectionTime, then returns) and retries (a 503 on
 * the first attempt is retried; the app counts the attempts it saw).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { forceDown } from "../helpers/cluster.js";
import { applyIn, fqdn, getOnce, httpbinStats, ISTIO, loadClient, nodeOf, sourceRequests, startHttpbin } from "../helpers/l7.js";
import { meshUp, podIp, vip } from "../helpers/mesh.js";
import { describePrivileged } from "../helpers/privileged.js";
import { waitFor } from "../helpers/wait.js";
import { testClusterName } from "../helpers/weft.js";

const C = testClusterName("lr");
const NS = "resilience";
const PORT = 8080;
const SVC_PORT = 8000;
const CLIENT = `${NS}/client`;
const url = (svc: string, path = "/get") => `http://${vip(C, NS, svc)}:${SVC_PORT}${path}`;
const svc = (name: string, app: string) => ({ ns: NS, name, port: SVC_PORT, targetPort: PORT, selector: { app }, appProtocol: "http" });

describePrivileged("L7: circuit breaking, outlier detection and retries in the source node proxy", () => {
  beforeAll(async () => {
    await meshUp(
      C,
      [
        { ns: NS, name: "client", node: 1 },
        { ns: NS, name: "httpbin", node: 2, labels: { app: "httpbin", version: "v1" } },
        { ns: NS, name: "flaky-1", node: 1, labels: { app: "flaky" } },
        { ns: NS, name: "flaky-2", node: 2, labels: { app: "flaky" } },
        { ns: NS, name: "flaky-bad", node: 2, labels: { app: "flaky" } },
        { ns: NS, name: "retry", node: 2, labels: { app: "retry" } },
        { ns: NS, name: "keepalive", node: 2, labels: { app: "keepalive" } },
      ],
      [NS],
      [svc("httpbin", "httpbin"), svc("flaky", "flaky"), svc("retry", "retry"), svc("keepalive", "keepalive")],
    );
    // Each answer takes 50 ms, so three clients' requests overlap at the pool limits.
    await startHttpbin(C, `${NS}/httpbin`, PORT, ["--delay-ms", "50"]);
    await startHttpbin(C, `${NS}/flaky-1`, PORT);
    await startHttpbin(C, `${NS}/flaky-2`, PORT);
    await startHttpbin(C, `${NS}/flaky-bad`, PORT, ["--always", "500"]);
    await startHttpbin(C, `${NS}/retry`, PORT, ["--fail-first", "1", "--fail-code", "503"]);
    await startHttpbin(C, `${NS}/keepalive`, PORT);
    await waitFor(
      "test apps answering through the mesh",
      async () => {
        for (const s of ["httpbin", "flaky", "retry", "keepalive"]) {
          const r = await getOnce(C, CLIENT, url(s, "/__health"));
          if (r.status !== 200) throw new Error(`${s}: HTTP ${r.status} ${r.error ?? ""}`);
        }
        return true;
      },
      30_000,
      200,
    );
  }, 180_000);

  afterAll(async () => {
    await forceDown(C);
  });

  it("trips the circuit breaker (maxConnections 1, http1MaxPendingRequests 1): 3 clients × 30 requests see 503 UO, counted", async () => {
    await applyIn(C, NS, join(ISTIO, "destination-rule-circuit-breaker.yaml"));
    const node = nodeOf(C, NS, "client");
    const labels = { destination_service: fqdn(NS, "httpbin"), response_code: "503", response_flags: "UO" };
    const before = await sourceRequests(C, node, labels);
    const load = () => loadClient(C, CLIENT, ["--url", url("httpbin"), "-c", "3", "-n", "30", "--max-ms", "60000"]);
    const r = await waitFor(
      "requests overflowing the connection pool",
      async () => {
        const res = await load();
        if (!res.codes["503"]) throw new Error(`no 503 among ${JSON.stringify(res.codes)} errors ${JSON.stringify(res.errors)}`);
        return res;
      },
      30_000,
      200,
    );
    expect(r.requests).toBe(90);
    expect(r.codes["200"]).toBeGreaterThan(0);
    expect((r.codes["200"] ?? 0) + (r.codes["503"] ?? 0)).toBe(90);
    // Every 503 the clients saw was the proxy's overflow, counted as such on the client's node.
    const overflowed = r.codes["503"] ?? 0;
    await waitFor("the overflows counted", async () => (await sourceRequests(C, node, labels)) - before >= overflowed, 10_000, 100);
    const after = await sourceRequests(C, node, labels);
    expect(after - before).toBeGreaterThanOrEqual(overflowed);
  });

  it("ejects the endpoint that answers 500 after consecutive5xxErrors, sends it nothing for baseEjectionTime, then lets it back", async () => {
    const bad = podIp(C, NS, "flaky-bad");
    // Without the rule the failing endpoint takes its share. Every request on a new connection
    // throughout, so what is measured is the proxy's endpoint choice, not a pinned connection.
    const plain = await loadClient(C, CLIENT, ["--url", url("flaky"), "-n", "30", "--no-keepalive"]);
    expect(plain.codes["500"]).toBeGreaterThan(0);

    await applyIn(C, NS, join(ISTIO, "destination-rule-outlier-detection.yaml"));
    let t0 = Date.now();
    let errorsSeen = 0;
    await waitFor(
      "the failing endpoint ejected (its 500s stop)",
      async () => {
        t0 = Date.now();
        const r = await loadClient(C, CLIENT, ["--url", url("flaky"), "-n", "30", "--seq", "--no-keepalive"]);
        errorsSeen += r.codes["500"] ?? 0;
        const tail = (r.seq ?? []).slice(15);
        if (tail.length < 15 || tail.some(([code]) => code !== 200))
          throw new Error(`last 15 answers still include failures: ${JSON.stringify(tail.map(([c, s]) => `${c}:${s}`))}`);
        return true;
      },
      30_000,
      100,
    );
    expect(errorsSeen).toBeGreaterThanOrEqual(3); // consecutive5xxErrors: 3 before the ejection
    // While ejected: no request reaches it at all (its own counter stands still).
    const during = await httpbinStats(C, CLIENT, bad, PORT);
    const burst = await loadClient(C, CLIENT, ["--url", url("flaky"), "-c", "3", "-n", "10", "--no-keepalive"]);
    expect(burst.codes).toEqual({ 200: 30 });
    expect((await httpbinStats(C, CLIENT, bad, PORT)).total).toBe(during.total);
    // After baseEjectionTime (15 s) it is tried again.
    const back = await waitFor(
      "the ejected endpoint getting requests again",
      async () => {
        await loadClient(C, CLIENT, ["--url", url("flaky"), "-n", "6", "--no-keepalive"]);
        return (await httpbinStats(C, CLIENT, bad, PORT)).total > during.total ? Date.now() : 0;
      },
      45_000,
      500,
    );
    expect(back - t0).toBeGreaterThanOrEqual(15_000);
  });

  it("retries a request whose first attempt got 503: the client sees 200, the app saw 2 attempts", async () => {
    const retryPod = podIp(C, NS, "retry");
    await applyIn(C, NS, join(ISTIO, "virtual-service-retries.yaml"));
    let n = 0;
    const key = await waitFor(
      "a failed first attempt retried",
      async () => {
        const k = `retry-${++n}`;
        const r = await getOnce(C, CLIENT, url("retry"), [`x-test-key:${k}`]);
        if (r.status !== 200) throw new Error(`client saw HTTP ${r.status} ${r.error ?? ""} for ${k}`);
        return k;
      },
      20_000,
      200,
    );
    const stats = await httpbinStats(C, CLIENT, retryPod, PORT, key);
    expect(stats.attempts[key]).toBe(2);
    expect(stats.recent.map((r) => r.path)).toEqual(["/get", "/get"]);
    // Every fresh request likewise: one failure, one retry, success.
    for (let i = 0; i < 5; i++) {
      const k = `${key}-again-${i}`;
      expect((await getOnce(C, CLIENT, url("retry"), [`x-test-key:${k}`])).status).toBe(200);
      expect((await httpbinStats(C, CLIENT, retryPod, PORT, k)).attempts[k]).toBe(2);
    }
  });

  it("a kept-alive upstream connection the app closes as a GET arrives: the GET goes again on a fresh one, the client sees 200", async () => {
    const pod = podIp(C, NS, "keepalive");
    // A DestinationRule puts the service on the L7 path (pooled upstream connections).
    const dir = mkdtempSync(join(tmpdir(), "weft-keepalive-"));
    const file = join(dir, "dr.yaml");
    writeFileSync(
      file,
      "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: keepalive\nspec:\n  host: keepalive\n  trafficPolicy:\n    loadBalancer:\n      simple: ROUND_ROBIN\n",
    );
    try {
      await applyIn(C, NS, file);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    let n = 0;
    // Each round: one GET leaves a kept-alive upstream connection in the source proxy's pool;
    // the next arrives on it and the app closes it without answering. On the L4 path every GET
    // has its own connection and the app never closes one, so two attempts mean the L7 pool.
    const key = await waitFor(
      "a GET lost on a kept-alive connection sent again",
      async () => {
        const k = `keepalive-${++n}`;
        const first = await getOnce(C, CLIENT, url("keepalive"));
        if (first.status !== 200) throw new Error(`priming GET: HTTP ${first.status} ${first.error ?? ""}`);
        const r = await getOnce(C, CLIENT, url("keepalive"), [`x-test-key:${k}`, "x-test-close-reused:1"]);
        if (r.status !== 200) throw new Error(`client saw HTTP ${r.status} ${r.error ?? ""} for ${k}`);
        const seen = (await httpbinStats(C, CLIENT, pod, PORT, k)).attempts[k];
        if (seen !== 2) throw new Error(`the app saw ${seen} attempt(s) of ${k}`);
        return k;
      },
      30_000,
      200,
    );
    expect((await httpbinStats(C, CLIENT, pod, PORT, key)).recent.map((r) => r.path)).toEqual(["/get", "/get"]);
  });
});
