/**
 * Acceptance (issue 16) on a real mesh with Bookinfo: `weft graph -o json|dot` and the terminal
 * table read every agent's metrics and show Bookinfo's edges with the exact request counts sent,
 * mTLS, and a DENY policy as a denied edge; `weft analyze --cluster` has no error on Bookinfo's
 * correct config; `weft status --all` shows both agents in step, then flags the agent that stops
 * answering pushes as lagging.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Graph } from "../../agent/cli/graph-model.js";
import type { DriftReport } from "../../agent/cli/status-all.js";
import type { AnalysisMessage } from "../../controller/analyze/message.js";
import { requireState, runDetached } from "../../scripts/cluster/cluster.js";
import { agentSocket, controllerDir } from "../../scripts/cluster/mesh.js";
import { execArgv, resolvePlace } from "../../scripts/cluster/processes.js";
import { Topology } from "../../scripts/cluster/topology.js";
import { Browser, haveChromium, LoopbackNetns } from "../helpers/chromium.js";
import { forceDown } from "../helpers/cluster.js";
import { applyIn, bookinfoUp, ISTIO, reviewsSplit } from "../helpers/l7.js";
import { counterSum, metrics } from "../helpers/mesh.js";
import { describePrivileged, IN_CI } from "../helpers/privileged.js";
import { waitFor } from "../helpers/wait.js";
import { ROOT, testClusterName, WEFT_BIN, weft, weftOk } from "../helpers/weft.js";

const C = testClusterName("obs");
const NS = "bookinfo";
const agents = () => [agentSocket(C, 1), agentSocket(C, 2)];
const agentFlags = () => agents().flatMap((a) => ["--agent", a]);
const controllerSocket = () => join(controllerDir(C), "controller.sock");
const DENY_DETAILS = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-details
  namespace: bookinfo
spec:
  selector:
    matchLabels: {app: details}
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/bookinfo/sa/bookinfo-productpage"]
`;
let tmp = "";

async function graph(): Promise<Graph> {
  return JSON.parse(await weftOk(["graph", "-o", "json", "--window", "1s", ...agentFlags()])) as Graph;
}

/** Runs a command in the cluster's fabric netns (where Prometheus runs); its stdout. */
function inFabric(argv: string[]): Promise<string> {
  const state = requireState(C);
  const [cmd, ...args] = execArgv(state, resolvePlace(state, "fabric"), argv);
  return new Promise((resolve, reject) => {
    const c = spawn(cmd as string, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    c.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    c.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    c.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`${argv.join(" ")} exited ${code}: ${err.slice(0, 400)}`))));
  });
}

const PROM = "http://127.0.0.1:19090";

/** An instant query against the test's Prometheus. */
async function promQuery(q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const body = JSON.parse(await inFabric(["curl", "-s", "-m", "5", "-G", `${PROM}/api/v1/query`, "--data-urlencode", `query=${q}`])) as {
    status: string;
    error?: string;
    data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
  };
  if (body.status !== "success") throw new Error(`query ${q}: ${body.error}`);
  return body.data?.result ?? [];
}

/** Every PromQL expression in the dashboards, with the template variables set for Bookinfo. */
function dashboardQueries(): { where: string; expr: string }[] {
  const dir = join(ROOT, "dashboards");
  const vars: Record<string, string> = {
    __rate_interval: "1m",
    service: "reviews.bookinfo.svc.cluster.local",
    namespace: NS,
    workload: "productpage-v1",
    instance: ".*",
  };
  const out: { where: string; expr: string }[] = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith(".json"))) {
    const d = JSON.parse(readFileSync(join(dir, f), "utf8")) as { panels: { title: string; targets: { expr: string }[] }[] };
    for (const p of d.panels)
      for (const t of p.targets) out.push({ where: `${f}: ${p.title}`, expr: t.expr.replace(/\$(\w+)/g, (m, v: string) => vars[v] ?? m) });
  }
  return out;
}

const edge = (g: Graph, from: string, to: string) => g.edges.find((e) => e.source === `${NS}/${from}` && e.destination === `${NS}/${to}`);

describePrivileged("observability: weft graph, analyze --cluster and status --all on Bookinfo", () => {
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "weft-obs-"));
    await bookinfoUp(C);
    // DestinationRules put Bookinfo's calls on the L7 path (request metrics); wait until they
    // are in effect, so no request below is still carried at L4 and missing from the counts.
    await applyIn(C, NS, join(ISTIO, "destination-rule-all.yaml"));
    await waitFor(
      "Bookinfo's calls counted as requests",
      async () => {
        const before = edge(await graph(), "traffic", "productpage-v1")?.total ?? 0;
        await reviewsSplit(C, 2, 1);
        return (edge(await graph(), "traffic", "productpage-v1")?.total ?? 0) - before === 2;
      },
      60_000,
      500,
    );
  }, 180_000);

  afterAll(async () => {
    // A stopped agent must run again to be stopped cleanly.
    for (const p of requireState(C).processes) {
      try {
        process.kill(p.pid, "SIGCONT");
      } catch {}
    }
    await forceDown(C);
    rmSync(tmp, { recursive: true, force: true });
  });

  it("graph -o json: Bookinfo's edges, with exactly the requests sent, over mTLS", async () => {
    const before = await graph();
    const sent = 120;
    const r = await reviewsSplit(C, sent, 4);
    expect(Object.values(r.codes).reduce((a, b) => a + b, 0)).toBe(sent);
    // A call is counted when its upstream stream ends, which can be a frame after the caller
    // already holds the whole body: wait until every hop has counted, then check exact totals
    // (a count above `sent` still fails).
    const hops: [string, string][] = [
      ["traffic", "productpage-v1"],
      ["productpage-v1", "details-v1"],
      ["productpage-v1", "reviews-v1"],
      ["productpage-v1", "reviews-v2"],
      ["productpage-v1", "reviews-v3"],
    ];
    const counted = (g: Graph, from: string) =>
      hops.filter(([f]) => f === from).reduce((n, [f, t]) => n + (edge(g, f, t)?.total ?? 0) - (edge(before, f, t)?.total ?? 0), 0);
    let after = await graph();
    await waitFor(
      "every hop of the sent pages counted",
      async () => {
        after = await graph();
        return counted(after, "traffic") >= sent && counted(after, "productpage-v1") >= 2 * sent;
      },
      30_000,
      200,
    ).catch(() => undefined);
    // On a mismatch, say what the pages saw (x-weft-reviews-version "none": productpage's call
    // failed) and every edge out of productpage, so a lost or misfiled call can be told apart.
    const seen = JSON.stringify({
      reviewsVersions: r.byHeader,
      fromProductpage: after.edges.filter((e) => e.source.endsWith("/productpage-v1")).map((e) => [e.destination, e.total, e.errorRate]),
    });
    const front = edge(after, "traffic", "productpage-v1");
    expect(front, JSON.stringify(after.edges.map((e) => e.id))).toBeDefined();
    expect((front?.total ?? 0) - (edge(before, "traffic", "productpage-v1")?.total ?? 0)).toBe(sent);
    expect(front?.mtls).toBe("mutual_tls");
    expect(front?.protocol).toBe("http");
    // productpage calls details once per page, and reviews (one of three versions) once.
    const details = edge(after, "productpage-v1", "details-v1");
    expect((details?.total ?? 0) - (edge(before, "productpage-v1", "details-v1")?.total ?? 0), seen).toBe(sent);
    const reviews = ["reviews-v1", "reviews-v2", "reviews-v3"].map(
      (v) => (edge(after, "productpage-v1", v)?.total ?? 0) - (edge(before, "productpage-v1", v)?.total ?? 0),
    );
    expect(
      reviews.reduce((a, b) => a + b, 0),
      seen,
    ).toBe(sent);
    expect(after.edges.some((e) => e.source === `${NS}/reviews-v2` && e.destination === `${NS}/ratings-v1`)).toBe(true);
    for (const e of after.edges) expect(e.denied).toBe(false);

    const dot = await weftOk(["graph", "-o", "dot", "--window", "1s", ...agentFlags()]);
    expect(dot).toContain('"bookinfo/traffic" -> "bookinfo/productpage-v1"');
    const table = await weftOk(["graph", "--once", "--window", "1s", ...agentFlags()]);
    for (const line of table.split("\n")) expect(line.length).toBeLessThanOrEqual(80);
    expect(table).toMatch(/traffic\s+→ productpage-v1/);
  });

  it("a DENY policy shows as a denied edge", async () => {
    const file = join(tmp, "deny.yaml");
    writeFileSync(file, DENY_DETAILS);
    await applyIn(C, NS, file);
    await waitFor(
      "productpage → details denied in weft graph",
      async () => {
        await reviewsSplit(C, 8, 2);
        const g = await graph();
        const d = edge(g, "productpage-v1", "details-v1");
        if (!d?.denied) throw new Error(`edge: ${JSON.stringify(d)}`);
        return d;
      },
      30_000,
      500,
    );
    const dot = await weftOk(["graph", "-o", "dot", "--window", "1s", ...agentFlags()]);
    expect(dot).toMatch(/"bookinfo\/productpage-v1" -> "bookinfo\/details-v1" \[label="[^"]*DENIED", color=red/);
  });

  it("graph --serve in headless Chromium: Bookinfo's edges with the metrics' numbers, a screenshot, an edge click", async (ctx) => {
    if (!haveChromium()) {
      if (IN_CI) throw new Error("chromium is missing: the test set-up installs it (WEFT_EXTRA_APT=chromium, .ci/run)");
      ctx.skip();
    }
    const expected = await graph();
    // The browser and the page's server share a namespace with only loopback: nothing else is reachable.
    const netns = new LoopbackNetns(`${C}-chrome`);
    const server = spawn(
      "ip",
      [
        "netns",
        "exec",
        netns.name,
        process.execPath,
        WEFT_BIN,
        "graph",
        "--serve",
        "--port",
        "0",
        "--interval",
        "1s",
        "--window",
        "1s",
        ...agentFlags(),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let browser: Browser | undefined;
    try {
      let out = "";
      server.stdout?.on("data", (c: Buffer) => {
        out += c.toString();
      });
      const url = await waitFor(
        "weft graph --serve to print its URL",
        () => /serving (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)?.[1],
        15_000,
        50,
      );
      browser = new Browser(netns);
      await browser.open(url);
      const ids = await waitFor(
        "the page to draw Bookinfo's edges",
        async () => {
          const got = await (browser as Browser).evaluate<string[]>(
            `[...document.querySelectorAll("g.edge")].map((g) => g.getAttribute("data-edge-id"))`,
          );
          return got.length >= expected.edges.length ? got : undefined;
        },
        20_000,
        200,
      );
      expect(new Set(ids)).toEqual(new Set(expected.edges.map((e) => e.id)));
      const labels = await browser.evaluate<string[]>(`[...document.querySelectorAll("g.edge text")].map((t) => t.textContent)`);
      expect(labels.every((l) => / (rps|cps)/.test(l))).toBe(true);
      expect(labels.some((l) => l.includes("DENIED"))).toBe(true);
      const png = await browser.screenshot();
      mkdirSync(join(ROOT, "test-results"), { recursive: true });
      writeFileSync(join(ROOT, "test-results", "graph-page.png"), png);
      // A blank or text-only page compresses to a few KB; boxes, curves and labels do not.
      expect(png.length).toBeGreaterThan(20_000);

      // Click the denied edge's label: its numbers and the DENY policy that applies.
      const id = `${NS}/productpage-v1->${NS}/details-v1`;
      const box = await browser.evaluate<{ x: number; y: number }>(
        `(() => { const r = document.querySelector('[data-edge-id="${id}"] text').getBoundingClientRect(); return { x: r.x + r.width / 2, y: r.y + r.height / 2 }; })()`,
      );
      await browser.click(box.x, box.y);
      const details = await waitFor(
        "the edge's details",
        async () => {
          const t = await (browser as Browser).evaluate<string>(`document.getElementById("details").innerText`);
          return t.includes("policies") ? t : undefined;
        },
        5_000,
        100,
      );
      const sent = counterSum(await metrics(C, 1), "istio_requests_total", {
        reporter: "source",
        source_workload: "productpage-v1",
        destination_workload: "details-v1",
      });
      expect(details).toMatch(new RegExp(`total\\s+${sent}\\b`));
      expect(details).toMatch(/denied\s+yes/);
      expect(details).toContain("AuthorizationPolicy bookinfo/deny-details (DENY)");
      expect(details).toContain("DestinationRule bookinfo/details");
    } finally {
      await browser?.close();
      server.kill("SIGTERM");
      await new Promise((r) => (server.exitCode === null ? server.once("exit", r) : r(null)));
      netns.remove();
    }
  });

  it("analyze --cluster: no error on Bookinfo's live config; -f finds a seeded mistake with its code", async () => {
    const r = await weft(["analyze", "--cluster", "--admin-socket", controllerSocket(), "-o", "json"]);
    const messages = (JSON.parse(r.stdout) as { messages: AnalysisMessage[] }).messages;
    expect(messages.filter((m) => m.severity === "error")).toEqual([]);
    expect(r.code).toBe(0);
    const bad = await weft(["analyze", "-n", NS, "-f", join(ISTIO, "..", "analyze", "broken", "WFT0104-weights.yaml"), "-o", "json"]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain("WFT0104");
    const status = JSON.parse(await weftOk(["controller", "--admin-socket", controllerSocket(), "status"])) as {
      analysis: { errors: number };
    };
    expect(status.analysis.errors).toBe(0);
  });

  it("a real Prometheus scrapes both agents; every dashboard query returns series; graph --prometheus reads it", async () => {
    const topo = new Topology(requireState(C).spec);
    const cfg = join(tmp, "prometheus.yml");
    writeFileSync(
      cfg,
      [
        "global: {scrape_interval: 1s, evaluation_interval: 1s}",
        "scrape_configs:",
        "- job_name: weft-agent",
        "  metrics_path: /stats/prometheus",
        `  static_configs: [{targets: ["${topo.nodeIp(1)}:15020", "${topo.nodeIp(2)}:15020"]}]`,
        "",
      ].join("\n"),
    );
    // In the cluster's fabric netns (it reaches the nodes), on its loopback: recorded, so teardown stops it.
    await runDetached(
      C,
      "fabric",
      ["/usr/bin/prometheus", `--config.file=${cfg}`, `--storage.tsdb.path=${join(tmp, "prom")}`, "--web.listen-address=127.0.0.1:19090"],
      { what: "prometheus" },
    );
    await waitFor(
      "Prometheus scraping both agents",
      async () => {
        const up = await promQuery('up{job="weft-agent"}');
        if (up.length !== 2 || up.some((s) => s.value[1] !== "1")) throw new Error(JSON.stringify(up));
        return true;
      },
      30_000,
      500,
    );
    await reviewsSplit(C, 300, 4);
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThanOrEqual(30);
    for (const q of queries) {
      await waitFor(
        `${q.where} returning series`,
        async () => {
          const r = await promQuery(q.expr);
          if (r.length === 0) throw new Error(`no series for ${q.expr}`);
          return r;
        },
        20_000,
        500,
      );
    }
    const g = JSON.parse(
      await inFabric([process.execPath, WEFT_BIN, "graph", "-o", "json", "--prometheus", PROM, "--window", "60s"]),
    ) as Graph;
    expect(g.source).toBe("prometheus");
    expect(edge(g, "traffic", "productpage-v1")?.rps).toBeGreaterThan(0);
    expect(edge(g, "productpage-v1", "details-v1")?.denied).toBe(true);
  });

  it("status --all: both agents in step; one that stops answering pushes is flagged as lagging", async () => {
    const args = [
      "status",
      "--all",
      "--agents",
      agents().join(","),
      "--controller",
      controllerSocket(),
      "--timeout",
      "1s",
      "--lag-after",
      "1s",
    ];
    const report = JSON.parse(await weftOk([...args, "-o", "json"])) as DriftReport;
    expect(report.controller?.systemVersion).toBeTruthy();
    expect(report.agents.map((a) => a.verdict)).toEqual(["ok", "ok"]);
    for (const a of report.agents) {
      expect(a.configVersion).toBeTruthy();
      expect(a.lastAck).toBeTruthy();
      expect(a.certExpiry).toBeTruthy();
      expect(a.capture).toMatch(/pods/);
    }
    const table = await weftOk(args);
    expect(table).toContain(`${C}-node1`);
    expect(table).toContain(`${C}-node2`);

    const agent2 = requireState(C).processes.find((p) => p.what === `agent ${C}-node2`);
    expect(agent2).toBeDefined();
    process.kill(agent2?.pid as number, "SIGSTOP");
    try {
      // Any change the controller pushes to node2 now goes unanswered.
      await applyIn(C, NS, join(ISTIO, "virtual-service-all-v1.yaml"));
      const lagging = await waitFor(
        "node2 flagged as lagging",
        async () => {
          const r = await weft([...args, "-o", "json"]);
          const rep = JSON.parse(r.stdout) as DriftReport;
          const row = rep.agents.find((a) => a.node === `${C}-node2`);
          if (row?.verdict !== "LAGGING") throw new Error(JSON.stringify(row));
          expect(r.code).toBe(1);
          return rep;
        },
        20_000,
        500,
      );
      expect(lagging.agents.find((a) => a.node === `${C}-node1`)?.verdict).toBe("ok");
      expect(lagging.agents.find((a) => a.node === `${C}-node2`)?.why.join()).toMatch(/unanswered/);
    } finally {
      process.kill(agent2?.pid as number, "SIGCONT");
    }
    await waitFor(
      "node2 back in step",
      async () => {
        const rep = JSON.parse(await weftOk([...args, "-o", "json"])) as DriftReport;
        if (rep.agents.some((a) => a.verdict !== "ok")) throw new Error(JSON.stringify(rep.agents));
        return true;
      },
      20_000,
      500,
    );
  });
});
