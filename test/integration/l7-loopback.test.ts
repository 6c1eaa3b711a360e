import { once } from "node:events";
import { Agent, createServer as createHttpServer, type Server as HttpServer, type IncomingMessage, request } from "node:http";
import { createServer as createH2Server, type Http2Server, connect as h2connect } from "node:http2";
import { connect, createServer, type Server, type Socket } from "node:net";
import pino from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_PROXY_TUNING } from "../../agent/proxy/context.js";
import { BalancerRegistry } from "../../agent/proxy/l7/balancer.js";
import { UpstreamClients } from "../../agent/proxy/l7/clients.js";
import { HttpProxy } from "../../agent/proxy/l7/http-proxy.js";
import { LimiterRegistry } from "../../agent/proxy/l7/limiter.js";
import { OutlierRegistry } from "../../agent/proxy/l7/outlier.js";
import { sniff } from "../../agent/proxy/l7/protocol.js";
import { DEFAULT_POOL_OPTIONS } from "../../agent/proxy/pool.js";
import { NodeProxy } from "../../agent/proxy/proxy.js";
import { MeshView } from "../../agent/state/view.js";
import { ProxyMetrics } from "../../agent/telemetry/metrics.js";
import type { KubeObject } from "../../controller/api/kube-types.js";
import type { MeshSnapshotData, Workload } from "../../controller/api/model.js";
import { custom, namespace, node, pod, service } from "../helpers/control-objects.js";
import { translatedSnapshot } from "../helpers/l7-world.js";
import { StaticIdentities, TestPki } from "../helpers/test-pki.js";
import { waitFor } from "../helpers/wait.js";

// The source proxy's L7 path on loopback: requests from a "captured" connection are routed,
// retried, timed out, limited and balanced over real HTTP servers. The endpoints are outside
// the mesh (plain TCP upstream), so HBONE is not involved; the netns e2e tests cover the tunnel.
const VIP = "10.96.50.10";
const H2_VIP = "10.96.50.20";
const UPSTREAM_PORT = 18_080;
const H2_PORT = 18_081;
const hosts = { v1: "127.0.50.11", v2: "127.0.50.12", v3: "127.0.50.13" } as const;
type Version = keyof typeof hosts;

/** What each upstream does; tests change it. */
const behaviour: Record<
  Version,
  { status: number; failFirst: number; delayMs: number; seen: number; paths: string[]; headers: IncomingMessage["headers"][] }
> = {
  v1: { status: 200, failFirst: 0, delayMs: 0, seen: 0, paths: [], headers: [] },
  v2: { status: 200, failFirst: 0, delayMs: 0, seen: 0, paths: [], headers: [] },
  v3: { status: 200, failFirst: 0, delayMs: 0, seen: 0, paths: [], headers: [] },
};

const pods = (Object.keys(hosts) as Version[]).map((v) =>
  pod({ name: `web-${v}`, ns: "shop", node: "n1", ip: hosts[v], labels: { app: "web", version: v } }),
);
const grpcPod = pod({ name: "h2-v1", ns: "shop", node: "n1", ip: "127.0.50.21", labels: { app: "h2" } });
const clientPod = pod({ name: "client", ns: "client", node: "n1", ip: "127.0.50.2", labels: { app: "client" } });
const base: KubeObject[] = [
  namespace("shop"),
  namespace("client"),
  node("n1", "127.0.0.1"),
  ...pods,
  grpcPod,
  clientPod,
  ...service("web", "shop", VIP, [{ name: "http", port: 80, targetPort: UPSTREAM_PORT }], pods),
  ...service("h2", "shop", H2_VIP, [{ name: "grpc", port: 80, targetPort: H2_PORT }], [grpcPod]),
];
/** What an upstream that declined an upgrade received after the request, then "<closed>" at its end. */
const afterDecline: string[] = [];
const subsets = custom("networking.istio.io/v1", "DestinationRule", "web", "shop", {
  host: "web",
  subsets: (Object.keys(hosts) as Version[]).map((v) => ({ name: v, labels: { version: v } })),
});
const vs = (spec: Record<string, unknown>) =>
  custom("networking.istio.io/v1", "VirtualService", "web", "shop", { hosts: ["web"], ...spec });

function snapshotOf(...extra: KubeObject[]): MeshSnapshotData {
  return translatedSnapshot([...base, ...extra], String(Math.random()));
}

describe("L7 source proxy on loopback", () => {
  let view = new MeshView(snapshotOf());
  const metrics = new ProxyMetrics(new Registry());
  let node1: NodeProxy;
  let http: HttpProxy;
  let front: Server;
  let frontH2: Server;
  const upstreams: HttpServer[] = [];
  let h2up: Http2Server;
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  let client: Workload;

  const apply = (...extra: KubeObject[]) => {
    view = new MeshView(snapshotOf(...extra));
  };

  async function listenFront(vip: string): Promise<Server> {
    const srv = createServer({ allowHalfOpen: true }, (sock: Socket) => {
      void sniff(sock, 1000).then((p) => {
        const svc = view.serviceByAddress(vip, 80);
        if (p === "closed" || p === "tcp" || !svc) {
          sock.destroy();
          return;
        }
        http.accept(sock, p, {
          source: client,
          src: { ip: "127.0.50.2", port: sock.remotePort ?? 0 },
          dst: { ip: vip, port: 80 },
          service: svc,
        });
      });
    });
    srv.listen(0, "127.0.50.1");
    await once(srv, "listening");
    return srv;
  }

  beforeAll(async () => {
    const pki = new TestPki();
    node1 = new NodeProxy({
      config: {
        outbound: { ip: "127.0.50.1", port: 0 },
        hbone: { ip: "127.0.50.1", port: 0 },
        pool: DEFAULT_POOL_OPTIONS,
        ...DEFAULT_PROXY_TUNING,
        connectTimeoutMs: 1000,
      },
      view: () => view,
      onViewChange: () => () => undefined,
      identity: new StaticIdentities([pki.rootPem], []),
      metrics,
      log: pino({ level: "silent" }),
    });
    http = new HttpProxy({
      ctx: node1.ctx,
      clients: new UpstreamClients(node1.ctx),
      balancers: new BalancerRegistry(),
      outliers: new OutlierRegistry(),
      limiters: new LimiterRegistry(),
    });
    client = view.workloadByAddress("127.0.50.2") as Workload;
    for (const v of Object.keys(hosts) as Version[]) {
      const srv = createHttpServer((req, res) => {
        const b = behaviour[v];
        b.seen++;
        b.paths.push(req.url ?? "");
        b.headers.push(req.headers);
        req.resume();
        let status = b.status;
        if (b.failFirst > 0) {
          b.failFirst--;
          status = 503;
        }
        setTimeout(() => {
          res.writeHead(status, { "content-type": "application/json", "x-version": v });
          res.end(JSON.stringify({ version: v, path: req.url, host: req.headers.host }));
        }, b.delayMs);
      });
      srv.on("upgrade", (req: IncomingMessage, sock: Socket, head: Buffer) => {
        const b = behaviour[v];
        b.paths.push(req.url ?? "");
        b.headers.push(req.headers);
        if (req.url === "/declines") {
          // An app that answers the request and does not switch: every later byte on this
          // connection would be a request of its own.
          sock.write("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nplain");
          afterDecline.length = 0;
          if (head.length > 0) afterDecline.push(head.toString("latin1"));
          sock.on("data", (d: Buffer) => afterDecline.push(d.toString("latin1")));
          // node:http's sockets are half-open: the proxy's close shows as the end of the stream.
          sock.once("end", () => {
            afterDecline.push("<closed>");
            sock.destroy();
          });
          return;
        }
        const protocol = req.url === "/other-protocol" ? "something-else" : "echo";
        sock.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${protocol}\r\nconnection: Upgrade\r\nx-version: ${v}\r\n\r\n`);
        if (head.length > 0) sock.write(head);
        sock.pipe(sock);
      });
      srv.listen(UPSTREAM_PORT, hosts[v]);
      await once(srv, "listening");
      upstreams.push(srv);
    }
    h2up = createH2Server();
    h2up.on("stream", (stream, headers) => {
      if (headers[":path"] === "/pkg.Svc/Missing") {
        // gRPC's trailers-only error: the status in a HEADERS frame that ends the stream.
        stream.respond(
          { ":status": 200, "content-type": "application/grpc", "grpc-status": "5", "grpc-message": "no such thing" },
          { endStream: true },
        );
        return;
      }
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "x-echo-path": String(headers[":path"]) }));
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    });
    h2up.listen(H2_PORT, "127.0.50.21");
    await once(h2up, "listening");
    front = await listenFront(VIP);
    frontH2 = await listenFront(H2_VIP);
  });

  afterAll(async () => {
    agent.destroy();
    http?.close();
    for (const s of [...upstreams, front, frontH2, h2up]) s?.close();
    await node1?.stop(100);
  });

  beforeEach(() => {
    for (const b of Object.values(behaviour)) Object.assign(b, { status: 200, failFirst: 0, delayMs: 0, seen: 0, paths: [], headers: [] });
    apply();
  });

  function get(
    path: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: string; headers: IncomingMessage["headers"] }> {
    const port = (front.address() as { port: number }).port;
    return new Promise((resolve, reject) => {
      const r = request({ host: "127.0.50.1", port, path, agent, headers: { host: "web", ...headers } }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      });
      r.on("error", reject);
      r.end();
    });
  }

  async function metricValue(name: string, labels: Record<string, string>): Promise<number> {
    const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
    let sum = 0;
    for (const v of m?.values ?? []) {
      if (Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val)) sum += v.value;
    }
    return sum;
  }

  it("balances requests over every endpoint per request, keeps headers and adds x-request-id", async () => {
    for (let i = 0; i < 30; i++) expect((await get("/hello")).status).toBe(200);
    expect(behaviour.v1.seen + behaviour.v2.seen + behaviour.v3.seen).toBe(30);
    for (const v of Object.values(behaviour)) expect(v.seen).toBeGreaterThan(0);
    const seen = [...behaviour.v1.headers, ...behaviour.v2.headers, ...behaviour.v3.headers];
    for (const h of seen) expect(h["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(seen.map((h) => h["x-request-id"])).size).toBe(30);
    expect(
      await metricValue("istio_requests_total", { response_code: "200", reporter: "source", destination_service_name: "web" }),
    ).toBeGreaterThanOrEqual(30);
  });

  it("routes by header to a subset and by weight between subsets", async () => {
    apply(
      subsets,
      vs({
        http: [
          { match: [{ headers: { "end-user": { exact: "jason" } } }], route: [{ destination: { host: "web", subset: "v2" } }] },
          {
            route: [
              { destination: { host: "web", subset: "v1" }, weight: 80 },
              { destination: { host: "web", subset: "v3" }, weight: 20 },
            ],
          },
        ],
      }),
    );
    for (let i = 0; i < 10; i++) expect(JSON.parse((await get("/", { "end-user": "jason" })).body).version).toBe("v2");
    expect(behaviour.v2.seen).toBe(10);
    const counts = { v1: 0, v2: 0, v3: 0 };
    for (let i = 0; i < 400; i++) counts[JSON.parse((await get("/")).body).version as Version]++;
    expect(counts.v2).toBe(0);
    // 80/20 over 400 draws: ±7.5 points is beyond 3.7 standard deviations.
    expect(counts.v1 / 400).toBeGreaterThan(0.725);
    expect(counts.v1 / 400).toBeLessThan(0.875);
  });

  it("retries a 503 on another attempt, so the client sees 200", async () => {
    apply(subsets, vs({ http: [{ route: [{ destination: { host: "web", subset: "v1" } }], retries: { attempts: 3, retryOn: "5xx" } }] }));
    behaviour.v1.failFirst = 2;
    const r = await get("/retry");
    expect(r.status).toBe(200);
    expect(behaviour.v1.seen).toBe(3);
  });

  it("answers 504 UT when the route timeout passes, and counts it", async () => {
    apply(subsets, vs({ http: [{ route: [{ destination: { host: "web", subset: "v3" } }], timeout: "0.2s", retries: { attempts: 0 } }] }));
    behaviour.v3.delayMs = 1500;
    const r = await get("/slow");
    expect(r.status).toBe(504);
    expect(await metricValue("istio_requests_total", { response_code: "504", response_flags: "UT" })).toBeGreaterThanOrEqual(1);
  });

  it("injects an abort for matching requests only (FI)", async () => {
    apply(
      subsets,
      vs({
        http: [
          {
            match: [{ headers: { "end-user": { exact: "jason" } } }],
            fault: { abort: { httpStatus: 418, percentage: { value: 100 } } },
            route: [{ destination: { host: "web", subset: "v1" } }],
          },
          { route: [{ destination: { host: "web", subset: "v1" } }] },
        ],
      }),
    );
    expect((await get("/", { "end-user": "jason" })).status).toBe(418);
    expect((await get("/")).status).toBe(200);
    expect(behaviour.v1.seen).toBe(1);
    expect(await metricValue("istio_requests_total", { response_code: "418", response_flags: "FI" })).toBe(1);
  });

  it("rewrites the path and authority and edits request and response headers", async () => {
    apply(
      subsets,
      vs({
        http: [
          {
            match: [{ uri: { prefix: "/old" } }],
            rewrite: { uri: "/new", authority: "internal.web" },
            headers: { request: { set: { "x-added": "yes" }, remove: ["x-drop"] }, response: { add: { "x-served-by": "weft" } } },
            route: [{ destination: { host: "web", subset: "v1" } }],
          },
        ],
      }),
    );
    const r = await get("/old/thing?q=1", { "x-drop": "1" });
    expect(r.status).toBe(200);
    expect(r.headers["x-served-by"]).toBe("weft");
    expect(behaviour.v1.paths).toEqual(["/new/thing?q=1"]);
    expect(behaviour.v1.headers[0]?.host).toBe("internal.web");
    expect(behaviour.v1.headers[0]?.["x-added"]).toBe("yes");
    expect(behaviour.v1.headers[0]?.["x-drop"]).toBeUndefined();
  });

  it("answers 404 NR when a VirtualService has no rule for the request", async () => {
    apply(subsets, vs({ http: [{ match: [{ uri: { exact: "/only" } }], route: [{ destination: { host: "web", subset: "v1" } }] }] }));
    expect((await get("/other")).status).toBe(404);
    expect(await metricValue("istio_requests_total", { response_code: "404", response_flags: "NR" })).toBeGreaterThanOrEqual(1);
    expect(behaviour.v1.seen).toBe(0);
  });

  it("overflows the circuit breaker with 503 UO under concurrency", async () => {
    apply(
      custom("networking.istio.io/v1", "DestinationRule", "web", "shop", {
        host: "web",
        trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } } },
      }),
    );
    for (const b of Object.values(behaviour)) b.delayMs = 150;
    const results = await Promise.all(Array.from({ length: 8 }, () => get("/cb")));
    const codes = results.map((r) => r.status);
    expect(codes.filter((c) => c === 503).length).toBeGreaterThan(0);
    expect(codes.filter((c) => c === 200).length).toBeGreaterThanOrEqual(2);
    expect(await metricValue("istio_requests_total", { response_code: "503", response_flags: "UO" })).toBeGreaterThan(0);
  });

  it("ejects an endpoint that keeps failing (outlier detection)", async () => {
    apply(
      custom("networking.istio.io/v1", "DestinationRule", "web", "shop", {
        host: "web",
        trafficPolicy: {
          loadBalancer: { simple: "ROUND_ROBIN" },
          outlierDetection: { consecutive5xxErrors: 2, interval: "1s", baseEjectionTime: "60s", maxEjectionPercent: 100 },
        },
      }),
      vs({ http: [{ route: [{ destination: { host: "web" } }], retries: { attempts: 0 } }] }),
    );
    behaviour.v2.status = 500;
    for (let i = 0; i < 30; i++) await get("/od");
    const v2Before = behaviour.v2.seen;
    expect(v2Before).toBeGreaterThanOrEqual(2);
    for (let i = 0; i < 30; i++) expect((await get("/od")).status).toBe(200);
    expect(behaviour.v2.seen).toBe(v2Before);
  });

  it("carries h2c with trailers (gRPC-shaped) end to end", async () => {
    const port = (frontH2.address() as { port: number }).port;
    const session = h2connect(`http://127.0.50.1:${port}`);
    try {
      const stream = session.request({ ":method": "POST", ":path": "/pkg.Svc/Call", "content-type": "application/grpc", te: "trailers" });
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
      const [headers] = (await once(stream, "response")) as [Record<string, string>];
      const trailers = new Promise<Record<string, string>>((r) => stream.once("trailers", r));
      stream.resume();
      expect(headers[":status"]).toBe(200);
      const t = await trailers;
      expect(t["grpc-status"]).toBe("0");
      expect(t["x-echo-path"]).toBe("/pkg.Svc/Call");
      await once(stream, "close");
      expect(await metricValue("istio_requests_total", { grpc_response_status: "0", destination_service_name: "h2" })).toBe(1);
    } finally {
      session.close();
    }
  });

  it("passes a gRPC trailers-only error on in the same form, and counts its grpc-status", async () => {
    const port = (frontH2.address() as { port: number }).port;
    const session = h2connect(`http://127.0.50.1:${port}`);
    try {
      const stream = session.request({
        ":method": "POST",
        ":path": "/pkg.Svc/Missing",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
      const [headers, flags] = (await once(stream, "response")) as [Record<string, string>, number];
      expect(headers["grpc-status"]).toBe("5");
      expect(stream.endAfterHeaders || (flags & 1) === 1).toBe(true);
      stream.resume();
      await once(stream, "close");
      expect(stream.rstCode).toBe(0);
      expect(await metricValue("istio_requests_total", { grpc_response_status: "5", destination_service_name: "h2" })).toBe(1);
    } finally {
      session.close();
    }
  });

  it("routes an HTTP/1.1 Upgrade like a request, then carries the bytes both ways", async () => {
    apply(subsets, vs({ http: [{ route: [{ destination: { host: "web", subset: "v3" } }] }] }));
    const port = (front.address() as { port: number }).port;
    const sock = connect(port, "127.0.50.1");
    await once(sock, "connect");
    sock.write("GET /ws HTTP/1.1\r\nhost: web\r\nconnection: Upgrade\r\nupgrade: echo\r\n\r\n");
    let got = "";
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => {
      got += d;
    });
    await waitFor("the upgrade answer", () => got.includes("\r\n\r\n"));
    expect(got).toMatch(/^HTTP\/1.1 101/);
    expect(got).toContain("x-version: v3");
    sock.write("ping-through-the-tunnel");
    await waitFor("the echo", () => got.includes("ping-through-the-tunnel"));
    sock.destroy();
  });

  /** Sends raw bytes on a new connection to the front; resolves with all it got once closed. */
  async function rawExchange(bytes: string): Promise<string> {
    const port = (front.address() as { port: number }).port;
    const sock = connect(port, "127.0.50.1");
    await once(sock, "connect");
    let got = "";
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => {
      got += d;
    });
    sock.write(bytes);
    await once(sock, "close");
    return got;
  }

  it("tunnels an Upgrade only on a 101: an answer that declines is relayed, and what the client sent after it never reaches the app", async () => {
    apply(
      subsets,
      vs({
        http: [
          {
            headers: { request: { remove: ["x-internal"], set: { "x-routed": "yes" } } },
            route: [{ destination: { host: "web", subset: "v2" } }],
          },
        ],
      }),
    );
    const got = await rawExchange(
      "GET /declines HTTP/1.1\r\nhost: web\r\nconnection: Upgrade, x-drop-me\r\nupgrade: websocket\r\nx-internal: yes\r\nx-drop-me: 1\r\n\r\n" +
        "GET /secret HTTP/1.1\r\nhost: web\r\nx-internal: yes\r\n\r\n",
    );
    expect(got).toMatch(/^HTTP\/1.1 200 OK\r\n/);
    expect(got).toMatch(/\r\nconnection: close\r\n/i);
    expect(got.endsWith("\r\n\r\nplain")).toBe(true);
    await waitFor("the declined upstream connection closed", () => afterDecline.includes("<closed>"));
    expect(afterDecline).toEqual(["<closed>"]);
    // The upgrade request went as routed: the route's header edits, hop-by-hop fields dropped.
    const h = behaviour.v2.headers[0];
    expect(behaviour.v2.paths).toEqual(["/declines"]);
    expect(h?.["x-internal"]).toBeUndefined();
    expect(h?.["x-drop-me"]).toBeUndefined();
    expect(h?.["x-routed"]).toBe("yes");
    expect(h?.upgrade).toBe("websocket");
  });

  it("refuses a 101 to a protocol the client did not ask for, an Upgrade with a body, and declines h2c by answering in HTTP/1.1", async () => {
    apply(subsets, vs({ http: [{ route: [{ destination: { host: "web", subset: "v1" } }] }] }));
    const other = await rawExchange("GET /other-protocol HTTP/1.1\r\nhost: web\r\nconnection: Upgrade\r\nupgrade: echo\r\n\r\n");
    expect(other).toMatch(/^HTTP\/1.1 502 /);
    const body = await rawExchange(
      "POST /ws HTTP/1.1\r\nhost: web\r\nconnection: Upgrade\r\nupgrade: echo\r\ncontent-length: 4\r\n\r\nbody",
    );
    expect(body).toMatch(/^HTTP\/1.1 400 .*\r\n[\s\S]*an Upgrade request with a body/);
    const port = (front.address() as { port: number }).port;
    const sock = connect(port, "127.0.50.1");
    await once(sock, "connect");
    let got = "";
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => {
      got += d;
    });
    sock.write(
      "GET /h2c HTTP/1.1\r\nhost: web\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    );
    // Chunked (the app gave no length): the JSON sits between the chunk size and the last chunk.
    await waitFor("the HTTP/1.1 answer", () => got.endsWith("\r\n0\r\n\r\n"));
    sock.destroy();
    expect(got).toMatch(/^HTTP\/1.1 200 OK\r\n/);
    const json = /\r\n\r\n[0-9a-f]+\r\n(\{.*\})\r\n0\r\n\r\n$/.exec(got)?.[1];
    expect(JSON.parse(json ?? "null")).toMatchObject({ version: "v1", path: "/h2c" });
    const seen = behaviour.v1.headers.at(-1);
    expect(seen?.upgrade).toBeUndefined();
    expect(seen?.["http2-settings"]).toBeUndefined();
  });
});
