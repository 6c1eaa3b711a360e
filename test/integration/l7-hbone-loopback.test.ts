import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { Agent, createServer as createHttpServer, type Server as HttpServer, type IncomingMessage, request } from "node:http";
import { connect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import pino from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
import type { AuthorizationPolicy, MeshSnapshotData, Service, Workload } from "../../controller/api/model.js";
import { snapshot, workload } from "../helpers/mesh-fixture.js";
import { StaticIdentities, TestPki } from "../helpers/test-pki.js";
import { waitFor } from "../helpers/wait.js";

// The source proxy's L7 path through a real HBONE tunnel on loopback: node A's proxy routes
// each request and sends it inside a CONNECT stream to node B's proxy (mTLS, port 15008 on its
// own loopback address), which delivers it to the pod. gRPC retries over the tunnel included.
const NODE_B = "127.0.61.1";
const client = workload({ name: "client", ns: "a", ip: "127.0.61.10", node: "A", nodeAddress: "127.0.61.2" });
const web = workload({ name: "web", ns: "b", ip: "127.0.61.20", node: "B", nodeAddress: NODE_B });
const grpcPod = workload({ name: "grpc", ns: "b", ip: "127.0.61.21", node: "B", nodeAddress: NODE_B });
const ws = workload({ name: "ws", ns: "b", ip: "127.0.61.22", node: "B", nodeAddress: NODE_B, labels: { app: "ws" } });
const WEB_PORT = 18_180;
const GRPC_PORT = 18_181;
const WS_PORT = 18_182;

function svc(name: string, vip: string, port: number, target: number, protocol: "http" | "grpc", backend: Workload): Service {
  return {
    key: `b/${name}`,
    name,
    namespace: "b",
    hostname: `${name}.b.svc.cluster.local`,
    vips: [vip],
    ports: [{ name: protocol, port, targetPort: target, appProtocol: protocol }],
    endpoints: [{ workloadUid: backend.uid, address: backend.addresses[0] as string, ready: true }],
  };
}
const webSvc = svc("web", "10.96.61.10", 80, WEB_PORT, "http", web);
const grpcSvc = svc("grpc", "10.96.61.11", 50051, GRPC_PORT, "grpc", grpcPod);
const wsSvc = svc("ws", "10.96.61.12", 80, WS_PORT, "http", ws);
/** Only GET /chat/* to ws: a rule with HTTP attributes, so its node's HTTP server takes each tunnel. */
const wsChatOnly: AuthorizationPolicy = {
  key: "b/chat-only",
  name: "chat-only",
  namespace: "b",
  scope: { kind: "workload", selector: { app: "ws" } },
  action: "ALLOW",
  rules: [{ from: [], to: [{ methods: ["GET"], paths: ["/chat/*"] }], when: [] }],
};

function data(node: string): MeshSnapshotData {
  return { ...snapshot(node, [client, web, grpcPod, ws], [webSvc, grpcSvc, wsSvc], [wsChatOnly]), routes: [], destinationPolicies: [] };
}

function proxy(node: string, ids: StaticIdentities, hbone: string): NodeProxy {
  const view = new MeshView(data(node));
  return new NodeProxy({
    config: {
      outbound: { ip: hbone, port: 0 },
      hbone: { ip: hbone, port: node === "B" ? 15008 : 0 },
      pool: DEFAULT_POOL_OPTIONS,
      ...DEFAULT_PROXY_TUNING,
      connectTimeoutMs: 2000,
    },
    view: () => view,
    onViewChange: () => () => undefined,
    identity: ids,
    metrics: new ProxyMetrics(new Registry()),
    log: pino({ level: "silent" }),
  });
}

describe("L7 over HBONE on loopback", () => {
  const pki = new TestPki();
  let a: NodeProxy;
  let b: NodeProxy;
  let http: HttpProxy;
  let front: Server;
  let upstream: HttpServer;
  let grpcServer: ChildProcess;
  let wsDoor: Server;
  let wsFront = 0;
  const seen: string[] = [];
  let wsApp: HttpServer;
  const wsSeen: string[] = [];
  const agent = new Agent({ keepAlive: true });

  beforeAll(async () => {
    a = proxy("A", new StaticIdentities([pki.rootPem], [pki.issue(client.identity)]), "127.0.61.2");
    b = proxy(
      "B",
      new StaticIdentities([pki.rootPem], [pki.issue(web.identity), pki.issue(grpcPod.identity), pki.issue(ws.identity)]),
      NODE_B,
    );
    await b.start();
    await a.start();
    http = new HttpProxy({
      ctx: a.ctx,
      clients: new UpstreamClients(a.ctx),
      balancers: new BalancerRegistry(),
      outliers: new OutlierRegistry(),
      limiters: new LimiterRegistry(),
    });
    upstream = createHttpServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers["x-request-id"] ? "id" : "no-id"}`);
      req.resume();
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("hello from web");
    });
    upstream.listen(WEB_PORT, "127.0.61.20");
    await once(upstream, "listening");
    // A WebSocket-like app: 101 to an "echo" upgrade, then every byte back; a plain request gets 426.
    wsApp = createHttpServer((req, res) => {
      req.resume();
      res.writeHead(426).end();
    });
    wsApp.on("upgrade", (req: IncomingMessage, sock: Socket) => {
      wsSeen.push(`${req.url} ${req.headers.upgrade}`);
      sock.write("HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n");
      sock.pipe(sock);
    });
    wsApp.listen(WS_PORT, "127.0.61.22");
    await once(wsApp, "listening");
    grpcServer = spawn(
      process.execPath,
      [join(import.meta.dirname, "../helpers/grpc-app.mjs"), "server", "--port", String(GRPC_PORT), "--version", "v1"],
      {
        stdio: "ignore",
      },
    );
    front = createServer({ allowHalfOpen: true }, (sock: Socket) => {
      void sniff(sock, 1000).then((p) => {
        // One front door for both services: h2 clients here are gRPC, HTTP/1.1 ones call web.
        const wanted = p === "http2" ? grpcSvc : sock.localPort === wsFront ? wsSvc : webSvc;
        const view = a.ctx.view();
        const service = view.serviceByAddress(wanted.vips[0] as string, wanted.ports[0]?.port as number);
        if (p === "closed" || p === "tcp" || !service) {
          sock.destroy();
          return;
        }
        http.accept(sock, p, {
          source: client,
          src: { ip: client.addresses[0] as string, port: sock.remotePort ?? 0 },
          dst: { ip: wanted.vips[0] as string, port: 80 },
          service,
        });
      });
    });
    front.listen(0, "127.0.61.2");
    await once(front, "listening");
    // A second door to the same front, taken as calls to ws.
    wsDoor = createServer((sock) => front.emit("connection", sock));
    wsDoor.listen(0, "127.0.61.2");
    await once(wsDoor, "listening");
    wsFront = (wsDoor.address() as { port: number }).port;
  });

  afterAll(async () => {
    agent.destroy();
    grpcServer?.kill();
    http?.close();
    front?.close();
    upstream?.close();
    wsApp?.closeAllConnections();
    wsApp?.close();
    wsDoor?.close();
    await a?.stop(200);
    await b?.stop(200);
    pki.dispose();
  });

  function get(path: string): Promise<{ status: number; body: string }> {
    const port = (front.address() as { port: number }).port;
    return new Promise((resolve, reject) => {
      const r = request({ host: "127.0.61.2", port, path, agent, headers: { host: "web" } }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      r.on("error", reject);
      r.end();
    });
  }

  it("carries keep-alive HTTP/1.1 requests through pooled tunnels", async () => {
    for (let i = 0; i < 20; i++) expect(await get(`/r${i}`)).toEqual({ status: 200, body: "hello from web" });
    expect(seen).toHaveLength(20);
    expect(seen.every((s) => s.endsWith(" id"))).toBe(true);
    expect(a.ctx.pool.sessionsOpened).toBe(1);
  });

  it("answers a gRPC error status after Istio's default retries, in gRPC's own form", async () => {
    const port = (front.address() as { port: number }).port;
    const run = (args: string[]) =>
      new Promise<{ statuses: Record<string, number> }>((resolve, reject) => {
        const c = spawn(process.execPath, [
          join(import.meta.dirname, "../helpers/grpc-app.mjs"),
          "client",
          "--target",
          `127.0.61.2:${port}`,
          ...args,
        ]);
        let out = "";
        c.stdout.on("data", (d: Buffer) => {
          out += d.toString();
        });
        c.once("exit", () => {
          try {
            resolve(JSON.parse(out.trim().split("\n").pop() as string));
          } catch (e) {
            reject(e);
          }
        });
      });
    await waitFor("gRPC server answering through the mesh", async () => {
      const r = await run(["-c", "1", "-n", "1", "--deadline-ms", "2000"]);
      if (r.statuses["0"] !== 1) throw new Error(JSON.stringify(r));
      return true;
    });
    expect((await run(["-c", "2", "-n", "3", "--status", "14"])).statuses).toEqual({ 14: 6 });
    expect((await run(["-c", "1", "-n", "2", "--status", "5"])).statuses).toEqual({ 5: 2 });
  });

  /** Sends raw bytes through the ws door; after an answer head, sends `echo` and ends once it came back. Resolves with all it got once closed. */
  async function wsExchange(bytes: string, echo?: string): Promise<string> {
    const sock = connect(wsFront, "127.0.61.2");
    await once(sock, "connect");
    let got = "";
    let sent = false;
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => {
      got += d;
      if (echo && !sent && got.includes("\r\n\r\n")) {
        sent = true;
        sock.write(echo);
      }
      if (echo && sent && got.endsWith(echo)) sock.end();
    });
    sock.write(bytes);
    await once(sock, "close");
    return got;
  }

  it("carries a WebSocket upgrade to a pod whose policy needs HTTP attributes: authorized by path at the destination, then a tunnel, counted as a 101", async () => {
    const upgrade = (path: string) => `GET ${path} HTTP/1.1\r\nhost: ws\r\nconnection: Upgrade\r\nupgrade: echo\r\n\r\n`;
    const ok = await wsExchange(upgrade("/chat/room1"), "hello-over-the-tunnel");
    expect(ok).toMatch(/^HTTP\/1.1 101 /);
    expect(ok.endsWith("hello-over-the-tunnel")).toBe(true);
    expect(wsSeen).toEqual(["/chat/room1 echo"]);
    // A path the policy does not allow never reaches the app: the destination answers 403.
    const denied = await wsExchange(upgrade("/admin"));
    expect(denied).toMatch(/^HTTP\/1.1 403 /);
    expect(denied).toContain("RBAC: access denied");
    expect(wsSeen).toHaveLength(1);
    // Both proxies count each upgrade as a request once it is over, with its status.
    const count = async (proxy: NodeProxy, reporter: string, code: string) => {
      const m = (await proxy.ctx.metrics.registry.getMetricsAsJSON()).find((x) => x.name === "istio_requests_total");
      return (m?.values ?? [])
        .filter(
          (v) => v.labels.reporter === reporter && String(v.labels.response_code) === code && v.labels.destination_service_name === "ws",
        )
        .reduce((n, v) => n + v.value, 0);
    };
    await waitFor(
      "the source's count of the 101 and the 403",
      async () => (await count(a, "source", "101")) === 1 && (await count(a, "source", "403")) === 1,
    );
    await waitFor(
      "the destination's count of the 101 and the 403",
      async () => (await count(b, "destination", "101")) === 1 && (await count(b, "destination", "403")) === 1,
    );
  });
});
