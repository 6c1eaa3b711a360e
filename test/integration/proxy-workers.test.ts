import { type AddressInfo, createServer, type Server } from "node:net";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_PROXY_TUNING } from "../../agent/proxy/context.js";
import { NodeProxy } from "../../agent/proxy/proxy.js";
import type { WorkerProxyHandle as WorkerHandleType } from "../../agent/proxy/worker-pool.js";
import { MeshView } from "../../agent/state/view.js";
import { ProxyMetrics } from "../../agent/telemetry/metrics.js";
import type { AuthorizationPolicy, MeshSnapshotData } from "../../controller/api/model.js";
import { freePort, readAll } from "../helpers/h2.js";
import { snapshot, workload } from "../helpers/mesh-fixture.js";
import { StaticIdentities, TestPki } from "../helpers/test-pki.js";
import { waitFor } from "../helpers/wait.js";
import { ROOT } from "../helpers/weft.js";

// Workers load their entry from dist/ (compiled JS), as the agent does.
const { WorkerProxyHandle } = (await import(`${ROOT}/dist/agent/proxy/worker-pool.js`)) as { WorkerProxyHandle: typeof WorkerHandleType };

const client = workload({ name: "client", ns: "a", ip: "127.0.0.2", node: "A", nodeAddress: "127.0.0.1" });
const server = workload({ name: "server", ns: "b", ip: "127.0.0.3", node: "B", nodeAddress: "127.0.0.1" });

describe("proxy as worker threads sharing ports (SO_REUSEPORT)", () => {
  const pki = new TestPki();
  let echo: Server;
  let echoPort = 0;
  let hbonePort = 0;
  let a: NodeProxy;
  let b: WorkerHandleType;
  let bView: MeshView;
  const listeners = new Set<(v: MeshView) => void>();
  const setB = (data: MeshSnapshotData) => {
    bView = new MeshView(data);
    for (const l of listeners) l(bView);
  };

  beforeAll(async () => {
    echo = createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.3", r));
    echoPort = (echo.address() as AddressInfo).port;
    hbonePort = await freePort();
    bView = new MeshView(snapshot("B", [client, server]));
    const bIds = new StaticIdentities([pki.rootPem], [pki.issue(server.identity)]);
    b = new WorkerProxyHandle({
      count: 2,
      config: {
        outbound: { ip: "127.0.0.1", port: await freePort() },
        hbone: { ip: "127.0.0.1", port: hbonePort },
        pool: { maxStreamsPerSession: 4, idleTimeoutMs: 30_000, keepaliveMs: 10_000 },
        ...DEFAULT_PROXY_TUNING,
      },
      view: () => bView,
      onViewChange: (l) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
      identity: bIds,
      log: pino({ level: "silent" }),
    });
    await b.start();
    const aView = new MeshView(snapshot("A", [client, server]));
    a = new NodeProxy({
      config: {
        outbound: { ip: "127.0.0.1", port: 0 },
        hbone: { ip: "127.0.0.1", port: 0 },
        pool: { maxStreamsPerSession: 4, idleTimeoutMs: 30_000, keepaliveMs: 10_000 },
        ...DEFAULT_PROXY_TUNING,
      },
      view: () => aView,
      onViewChange: () => () => undefined,
      identity: new StaticIdentities([pki.rootPem], [pki.issue(client.identity)]),
      metrics: new ProxyMetrics(),
      log: pino({ level: "silent" }),
    });
    await a.start();
  });

  afterAll(async () => {
    await a?.stop(200);
    await b?.stop(200);
    echo?.close();
    pki.dispose();
  });

  const open = () =>
    a.ctx.pool.stream(
      { srcIdentity: client.identity, dstIdentity: server.identity, address: { ip: "127.0.0.1", port: hbonePort } },
      { ":method": "CONNECT", ":authority": `127.0.0.3:${echoPort}`, forwarded: "for=127.0.0.2" },
    );

  it("serves tunnels from both workers, with certificates fetched from the main thread", async () => {
    // 4 streams per session: 60 concurrent tunnels need ~15 sessions, which the kernel spreads over both workers.
    const results = await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        const s = await open();
        const p = readAll(s);
        s.end(`m${i}`);
        return p;
      }),
    );
    expect(results.every((r, i) => r.status === 200 && r.body === `m${i}`)).toBe(true);
    const perWorker = await b.metrics();
    expect(perWorker).toHaveLength(2);
    const opened = perWorker.map((m) =>
      (m.find((x) => x.name === "istio_tcp_connections_opened_total")?.values ?? []).reduce((n, v) => n + v.value, 0),
    );
    expect(opened.every((n) => n > 0)).toBe(true);
    expect(opened.reduce((x, y) => x + y, 0)).toBe(60);
  });

  it("applies a new snapshot in every worker", async () => {
    const deny: AuthorizationPolicy = {
      key: "b/deny-a",
      name: "deny-a",
      namespace: "b",
      scope: { kind: "namespace" },
      action: "DENY",
      rules: [{ from: [{ namespaces: ["a"] }], to: [], when: [] }],
    };
    setB(snapshot("B", [client, server], [], [deny], "2"));
    await waitFor("deny in all workers", async () => {
      const rs = await Promise.all(Array.from({ length: 12 }, async () => readAll(await open())));
      return rs.every((r) => r.status === 403);
    });
  });

  it("lists live connections across workers and streams tap events", async () => {
    setB(snapshot("B", [client, server], [], [], "3"));
    const events: string[] = [];
    const off = b.onConnectionEvent((e) => events.push(e.type));
    await waitFor("allowed again", async () => {
      const probe = await open();
      probe.end("x");
      return (await readAll(probe)).status === 200;
    });
    const s = await open();
    s.write("hold");
    s.resume();
    await waitFor("listed", async () => (await b.connections()).length === 1);
    s.end();
    await waitFor("tap saw open and close", () => events.includes("open") && events.includes("close"));
    off();
  });
});
