/**
 * Restarts without loss (issue 14 item 4) on a real 2-node test bed: a new agent takes over from
 * the running one (SO_REUSEPORT listeners, tcp_migrate_req, SIGTERM drain) under keep-alive and
 * new-connection load with no failed request, a long-lived connection outlives five handovers, the
 * controller can die under load, and a cold start with the controller down serves from the
 * agent's persisted config and certificates.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { isSameProcess, signal, waitGone } from "../../native/proc.js";
import { requireState } from "../../scripts/cluster/cluster.js";
import { agentStateDir, restartAgent, startAgent, startController, waitAgentReady } from "../../scripts/cluster/mesh.js";
import { execArgv, resolvePlace } from "../../scripts/cluster/processes.js";
import { Topology } from "../../scripts/cluster/topology.js";
import { forceDown, PROBE } from "../helpers/cluster.js";
import { applyIn, fqdn, type LoadResult, loadClient, startHttpbin } from "../helpers/l7.js";
import { admin, meshUp, probe, probeServer, vip } from "../helpers/mesh.js";
import { describePrivileged } from "../helpers/privileged.js";
import { waitFor } from "../helpers/wait.js";
import { testClusterName } from "../helpers/weft.js";

const C = testClusterName("rs");

interface Status {
  pid: number;
  ready: { ready: boolean; reasons: string[] };
  components: { xds: { state: string }; handover: { predecessor: number | null; restored: { config?: string; certificates?: number } } };
}

/** A long-lived echo connection from a pod, held until `stopFile` exists. */
function holdConnection(
  from: string,
  host: string,
  port: number,
  stopFile: string,
): { opened: Promise<void>; result: Promise<{ ok: boolean; rounds: number; code?: string }> } {
  const state = requireState(C);
  const [cmd, ...args] = execArgv(state, resolvePlace(state, from), [
    process.execPath,
    PROBE,
    "hold-until",
    host,
    String(port),
    stopFile,
    "10000",
  ]);
  const child = spawn(cmd as string, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let onOpen: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => {
    onOpen = resolve;
  });
  child.stdout.on("data", (d) => {
    out += d;
    if (out.includes("open\n")) onOpen();
  });
  const result = new Promise<{ ok: boolean; rounds: number; code?: string }>((resolve, reject) =>
    child.on("exit", () => {
      const line = out.trim().split("\n").pop() ?? "";
      try {
        resolve(JSON.parse(line));
      } catch {
        reject(new Error(`hold-until printed no result: ${out}`));
      }
    }),
  );
  return { opened, result };
}

/**
 * Load from the client pod until `stopFile` exists: keep-alive and a new connection per request
 * (~500 rps together) to an L4 service, and keep-alive to the same pods through the L7 path (its
 * HTTP/1.1 connections are told Connection: close by a draining agent and move to the successor).
 */
function load(url: string, l7Url: string, stopFile: string): Promise<LoadResult>[] {
  const common = ["-n", "1000000", "--timeout-ms", "10000", "--max-ms", "600000", "--until-file", stopFile];
  return [
    loadClient(C, "app/client", ["--url", url, ...common, "-c", "8", "--rps", "250"], 700_000),
    loadClient(C, "app/client", ["--url", url, ...common, "-c", "32", "--rps", "250", "--no-keepalive"], 700_000),
    loadClient(C, "app/client", ["--url", l7Url, ...common, "-c", "4", "--rps", "50"], 700_000),
  ];
}

/** Load for a fixed number of requests (the window is counted in requests, not seconds). */
function burst(url: string, perConnection: number): Promise<LoadResult>[] {
  const common = ["--url", url, "-n", String(perConnection), "--timeout-ms", "10000", "--max-ms", "600000"];
  return [
    loadClient(C, "app/client", [...common, "-c", "8", "--rps", "250"], 700_000),
    loadClient(C, "app/client", [...common, "-c", "32", "--rps", "250", "--no-keepalive"], 700_000),
  ];
}

function expectNoFailure(results: LoadResult[], atLeast: number): void {
  for (const r of results) {
    expect(r.errors).toEqual({});
    expect(Object.keys(r.codes)).toEqual(["200"]);
    expect(r.requests).toBeGreaterThanOrEqual(atLeast);
  }
}

const status = (n: number) => admin<Status>(C, n, "/status");

/** How long the controller stays down under load (issue 14's acceptance: 5 minutes). */
const OUTAGE_MS = 5 * 60_000;

describePrivileged("agent restarts without loss (handover, drain, persisted state)", () => {
  let tmp = "";
  let webUrl = "";
  let l7Url = "";
  let echoVip = "";

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "weft-restart-"));
    await meshUp(
      C,
      [
        { ns: "app", name: "client", node: 1 },
        { ns: "app", name: "server", node: 2, labels: { app: "server" } },
      ],
      ["app"],
      [
        { ns: "app", name: "web", port: 80, targetPort: 8080, selector: { app: "server" } },
        { ns: "app", name: "echo", port: 7000, targetPort: 7000, selector: { app: "server" } },
        { ns: "app", name: "web-http", port: 80, targetPort: 8080, selector: { app: "server" }, appProtocol: "http" },
      ],
    );
    await startHttpbin(C, "app/server", 8080);
    await probeServer(C, "app/server", "echo-server", 7000);
    // A DestinationRule puts web-http on the source proxy's L7 path (per-request balancing).
    const rule = join(tmp, "web-http-rule.yaml");
    writeFileSync(
      rule,
      `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: web-http\nspec:\n  host: ${fqdn("app", "web-http")}\n  trafficPolicy:\n    loadBalancer:\n      simple: ROUND_ROBIN\n`,
    );
    await applyIn(C, "app", rule);
    webUrl = `http://${vip(C, "app", "web")}/`;
    l7Url = `http://${vip(C, "app", "web-http")}/`;
    echoVip = vip(C, "app", "echo");
    await waitFor(
      "the service answers through the mesh",
      async () => (await probe(C, "app/client", ["connect", echoVip, "7000", "hi", "3000"])).ok,
      20_000,
    );
  }, 180_000);

  afterAll(async () => {
    await forceDown(C);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it.each([
    [1, "the client's node (outbound 15001), in-thread proxy", 0],
    [2, "the server's node (HBONE 15008), successors with 2 proxy workers", 2],
  ])(
    "5 agent restarts in a row on node %i, %s, under load: 0 failed requests; a connection opened before the first is still open after the last",
    async (node, _what, proxyWorkers) => {
      const stop = join(tmp, `stop-restarts-${node}`);
      const hold = holdConnection("app/client", echoVip, 7000, stop);
      await hold.opened;
      const running = load(webUrl, l7Url, stop);
      // Load is flowing through the node's agent before the first handover.
      await waitFor(
        `load through node ${node}'s agent`,
        async () => {
          const { connections } = await admin<{ connections: { mode: string }[] }>(C, node, "/connections");
          // On the client's node, the web-http load goes through the L7 path.
          return connections.length >= 3 && (node !== 1 || connections.some((c) => c.mode === "http"));
        },
        20_000,
      );
      const pids: number[] = [(await status(node)).pid];
      for (let i = 0; i < 5; i++) {
        await restartAgent(C, node, { proxyWorkers }, 90_000);
        const s = await status(node);
        expect(s.components.handover.predecessor).toBe(pids[pids.length - 1]);
        pids.push(s.pid);
        // The new agent carries new connections itself (the load opens one per request).
        await waitFor(
          `restart ${i + 1}: new connections through the new agent`,
          async () => (await admin<{ connections: unknown[] }>(C, node, "/connections")).connections.length > 0,
          20_000,
        );
      }
      expect(new Set(pids).size).toBe(6);
      // The first agent still drains: it holds the long-lived connection (and the keep-alive ones).
      const first = pids[0] as number;
      expect(existsSync(`/proc/${first}`)).toBe(true);
      writeFileSync(stop, "");
      const results = await Promise.all(running);
      console.log(`node ${node}: 5 handovers under ${results.map((r) => `${r.requests} requests in ${r.ms} ms`).join(" + ")}`);
      expectNoFailure(results, 100);
      const held = await hold.result;
      expect(held).toMatchObject({ ok: true });
      expect(held.rounds).toBeGreaterThan(1);
    },
    600_000,
  );

  it(
    "the controller killed under load: 0 failed requests while it is down, and the agents resync when it is back",
    async () => {
      const state = requireState(C);
      const controller = state.processes.filter((p) => p.what === "controller" && isSameProcess(p.pid, p.startTime));
      expect(controller).toHaveLength(1);
      // The issue's outage: the controller killed under the restart test's load (L4 keep-alive and
      // new connections, and the L7 path) and kept down 5 minutes. The length is the scenario's,
      // not a wait for something to happen: nothing is expected to change while it lasts.
      const stop = join(tmp, "stop-controller-outage");
      const running = load(webUrl, l7Url, stop);
      await waitFor(
        "load through node 1's agent",
        async () => (await admin<{ connections: unknown[] }>(C, 1, "/connections")).connections.length >= 3,
        20_000,
      );
      signal((controller[0] as { pid: number }).pid, "SIGKILL");
      for (const n of [1, 2])
        await waitFor(
          `agent ${n} notices the controller is gone`,
          async () => (await status(n)).components.xds.state !== "connected",
          20_000,
        );
      await new Promise((r) => setTimeout(r, OUTAGE_MS));
      writeFileSync(stop, "");
      const results = await Promise.all(running);
      console.log(`controller down ${OUTAGE_MS / 1000} s: ${results.map((r) => `${r.requests} requests in ${r.ms} ms`).join(" + ")}`);
      expectNoFailure(results, 1000);
      for (const n of [1, 2]) expect((await status(n)).ready.ready).toBe(true);
      await startController(C, { debounce: "20ms" });
      for (const n of [1, 2])
        await waitFor(`agent ${n} reconnects`, async () => (await status(n)).components.xds.state === "connected", 30_000);
    },
    OUTAGE_MS + 300_000,
  );

  it("a cold start with the controller down serves from the persisted config and certificates, then follows the controller again", async () => {
    const node1 = new Topology(requireState(C).spec).nodeName(1);
    const dir = agentStateDir(C, node1);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "certificates.json")).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "config.json")).mode & 0o777).toBe(0o600);

    const state = requireState(C);
    for (const p of state.processes.filter((x) => x.what === "controller" && isSameProcess(x.pid, x.startTime))) signal(p.pid, "SIGKILL");
    // Stop node 1's agents (the one serving and any still draining): SIGTERM drains, and nothing is left open.
    const agents = state.processes.filter((p) => p.what === `agent ${node1}` && isSameProcess(p.pid, p.startTime)).map((p) => p.pid);
    for (const pid of agents) signal(pid, "SIGTERM");
    expect(await waitGone(agents, 30_000)).toEqual([]);

    await startAgent(C, 1);
    await waitAgentReady(C, 1, 30_000);
    const s = await status(1);
    expect(s.components.xds.state).not.toBe("connected");
    expect(s.components.handover.restored.config).toBeTruthy();
    expect(s.components.handover.restored.certificates).toBeGreaterThan(0);
    const results = await Promise.all(burst(webUrl, 25));
    expectNoFailure(results, 200);

    await startController(C, { debounce: "20ms" });
    await waitFor("the cold-started agent reconnects", async () => (await status(1)).components.xds.state === "connected", 30_000);
    expect((await status(1)).ready.ready).toBe(true);
  }, 300_000);
});
