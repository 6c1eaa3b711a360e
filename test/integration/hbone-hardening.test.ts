import { type ClientHttp2Session, type ClientHttp2Stream, connect as h2connect } from "node:http2";
import { type AddressInfo, createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_PROXY_TUNING } from "../../agent/proxy/context.js";
import type { ProxyLimits } from "../../agent/proxy/limits.js";
import { DEFAULT_POOL_OPTIONS } from "../../agent/proxy/pool.js";
import { NodeProxy } from "../../agent/proxy/proxy.js";
import { identitySni } from "../../agent/proxy/tls.js";
import { MeshView } from "../../agent/state/view.js";
import { ProxyMetrics } from "../../agent/telemetry/metrics.js";
import type { MeshSnapshotData } from "../../controller/api/model.js";
import { readAll } from "../helpers/h2.js";
import { snapshot, workload } from "../helpers/mesh-fixture.js";
import { StaticIdentities, TestPki } from "../helpers/test-pki.js";
import { waitFor } from "../helpers/wait.js";

// Node "B" terminates HBONE on loopback; "A" and hand-made clients play peers (honest and not).
const client = workload({ name: "client", ns: "a", ip: "127.0.0.2", node: "A", nodeAddress: "127.0.0.1" });
const server = workload({ name: "server", ns: "b", ip: "127.0.0.3", node: "B", nodeAddress: "127.0.0.1" });

class Holder {
  view: MeshView;
  constructor(data: MeshSnapshotData) {
    this.view = new MeshView(data);
  }
}

function proxy(data: MeshSnapshotData, ids: StaticIdentities, metrics = new ProxyMetrics(), limits: Partial<ProxyLimits> = {}) {
  const holder = new Holder(data);
  return new NodeProxy({
    config: {
      outbound: { ip: "127.0.0.1", port: 0 },
      hbone: { ip: "127.0.0.1", port: 0 },
      pool: DEFAULT_POOL_OPTIONS,
      ...DEFAULT_PROXY_TUNING,
      connectTimeoutMs: 2000,
      limits,
    },
    view: () => holder.view,
    onViewChange: () => () => undefined,
    identity: ids,
    metrics,
    log: pino({ level: "silent" }),
  });
}

async function limitHits(m: ProxyMetrics, limit: string): Promise<number> {
  const json = await m.registry.getSingleMetric("weft_limit_hits_total")?.get();
  return json?.values.find((v) => v.labels.limit === limit)?.value ?? 0;
}

describe("HBONE listener hardening", () => {
  const pki = new TestPki();
  const otherRoot = new TestPki("retired-or-foreign-root");
  const clientCert = pki.issue(client.identity);
  let echo: Server;
  let sink: Server;
  const sinkSockets = new Set<Socket>();
  let echoPort = 0;
  let sinkPort = 0;
  let a: NodeProxy;
  let b: NodeProxy;
  let bIds: StaticIdentities;
  const bMetrics = new ProxyMetrics();
  let hbonePort = 0;

  beforeAll(async () => {
    echo = createServer({ allowHalfOpen: true }, (s) => {
      s.on("error", () => undefined);
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, "127.0.0.3", r));
    echoPort = (echo.address() as AddressInfo).port;
    // A pod that accepts and never reads.
    sink = createServer((s) => {
      s.pause();
      s.on("error", () => undefined);
      sinkSockets.add(s);
      s.once("close", () => sinkSockets.delete(s));
    });
    await new Promise<void>((r) => sink.listen(0, "127.0.0.3", r));
    sinkPort = (sink.address() as AddressInfo).port;
    bIds = new StaticIdentities([pki.rootPem], [pki.issue(server.identity)]);
    b = proxy(snapshot("B", [client, server]), bIds, bMetrics, {
      handshakeTimeoutMs: 300,
      maxHandshakesPerPeer: 50,
      maxPendingDialsPerPod: 64,
    });
    a = proxy(snapshot("A", [client, server]), new StaticIdentities([pki.rootPem], [clientCert]));
    await b.start();
    await a.start();
    hbonePort = b.hboneAddress()?.port as number;
  });

  afterAll(async () => {
    await a?.stop(200);
    await b?.stop(200);
    for (const s of sinkSockets) s.destroy();
    echo?.close();
    sink?.close();
    pki.dispose();
    otherRoot.dispose();
  });

  const tunnel = async (p = a) => {
    const s = await p.ctx.pool.stream(
      { srcIdentity: client.identity, dstIdentity: server.identity, address: { ip: "127.0.0.1", port: hbonePort } },
      { ":method": "CONNECT", ":authority": `127.0.0.3:${echoPort}`, forwarded: "for=127.0.0.2" },
    );
    const done = readAll(s);
    s.end("ping");
    return done;
  };

  /** A TLS 1.2-only peer with a valid mesh certificate and the right SNI: what does it get? */
  const tls12 = () =>
    new Promise<string>((resolve) => {
      const sock = tlsConnect({
        host: "127.0.0.1",
        port: hbonePort,
        servername: identitySni(server.identity),
        cert: clientCert.certChainPem,
        key: clientCert.keyPem,
        ca: [pki.rootPem],
        minVersion: "TLSv1.2",
        maxVersion: "TLSv1.2",
        ALPNProtocols: ["h2"],
        rejectUnauthorized: false,
      });
      sock.once("secureConnect", () => {
        resolve(`connected with ${sock.getProtocol()}`);
        sock.destroy();
      });
      sock.once("error", (e: NodeJS.ErrnoException) => resolve(`refused: ${e.code ?? e.message}`));
    });

  it("refuses TLS 1.2 from a peer with a valid certificate, before and after a certificate rotation", async () => {
    expect((await tunnel()).status).toBe(200);
    expect(await tls12()).toMatch(/^refused/);
    bIds.put(pki.issue(server.identity)); // rotation: the listener rebuilds its contexts
    expect(await tls12()).toMatch(/^refused/);
    expect((await tunnel()).status).toBe(200);
  });

  it("accepts only its own trust domain, even from a trusted root", async () => {
    const foreign = "spiffe://evil.example/ns/a/sa/client";
    const peer = proxy(
      snapshot("A", [client, server]),
      new StaticIdentities([pki.rootPem], [pki.issue(client.identity, { uris: [foreign] })]),
    );
    try {
      const outcome = await tunnel(peer).catch((e: Error) => ({ status: -1, body: e.message }));
      expect(outcome.status).not.toBe(200);
    } finally {
      await peer.stop(100);
    }
  });

  it("drains a session whose root leaves the bundle", async () => {
    const peer = proxy(snapshot("A", [client, server]), new StaticIdentities([pki.rootPem], [clientCert]));
    try {
      expect((await tunnel(peer)).status).toBe(200);
      expect(b.poolStats().inboundSessions).toBeGreaterThan(0);
      const before = b.poolStats().inboundSessions;
      bIds.setBundle([pki.rootPem, otherRoot.rootPem]); // a rotation adds a root: sessions stay
      expect(b.poolStats().inboundSessions).toBe(before);
      bIds.setBundle([otherRoot.rootPem]); // the root that vouched for them is retired
      await waitFor("inbound sessions drained", () => b.poolStats().inboundSessions === 0);
    } finally {
      bIds.setBundle([pki.rootPem]);
      await peer.stop(100);
    }
  });

  it("survives 500 silent TCP connections: handshakes time out, per-peer limits are counted, tunnels still work", async () => {
    const rssBefore = process.memoryUsage().rss;
    const silent: Socket[] = [];
    const closed: Promise<void>[] = [];
    try {
      for (let i = 0; i < 500; i++) {
        const s = tcpConnect({ host: "127.0.0.1", port: hbonePort, localAddress: "127.0.0.5" });
        s.on("error", () => undefined);
        closed.push(new Promise((r) => s.once("close", () => r())));
        silent.push(s);
      }
      await waitFor("per-peer handshake limit hit", async () => (await limitHits(bMetrics, "handshakes_per_peer")) > 0);
      expect((await tunnel()).status).toBe(200);
      // Every silent connection is cut: by the limit at once, or by the handshake timeout.
      await Promise.all(closed);
      expect(await limitHits(bMetrics, "handshake_timeout")).toBeGreaterThan(0);
      expect((await limitHits(bMetrics, "handshakes_per_peer")) + (await limitHits(bMetrics, "handshake_timeout"))).toBeGreaterThanOrEqual(
        500,
      );
      expect((await tunnel()).status).toBe(200);
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(256 * 1024 * 1024);
    } finally {
      for (const s of silent) s.destroy();
    }
  });

  it("survives 5,000 streams to a pod that never reads: each is delivered or refused and counted", async () => {
    const rssBefore = process.memoryUsage().rss;
    const session: ClientHttp2Session = h2connect(`https://127.0.0.1:${hbonePort}`, {
      createConnection: () =>
        tlsConnect({
          host: "127.0.0.1",
          port: hbonePort,
          servername: identitySni(server.identity),
          cert: clientCert.certChainPem,
          key: clientCert.keyPem,
          ca: [pki.rootPem],
          minVersion: "TLSv1.3",
          ALPNProtocols: ["h2"],
          checkServerIdentity: () => undefined,
        }),
    });
    const dialsRefusedBefore = await limitHits(bMetrics, "pending_dials_per_pod");
    let statuses: number[] = [];
    try {
      // A peer that honours the server's SETTINGS (as the pool does) before opening streams.
      await new Promise<void>((r, j) => {
        session.once("remoteSettings", () => r());
        session.once("error", j);
      });
      statuses = await Promise.all(
        Array.from(
          { length: 5000 },
          () =>
            new Promise<number>((resolve) => {
              let st: ClientHttp2Stream;
              try {
                st = session.request(
                  { ":method": "CONNECT", ":authority": `127.0.0.3:${sinkPort}`, forwarded: "for=127.0.0.2" },
                  { endStream: false },
                );
              } catch {
                resolve(-1);
                return;
              }
              st.on("error", () => resolve(-1));
              st.once("close", () => resolve(-1));
              st.once("response", (h) => {
                const code = Number(h[":status"]);
                if (code === 200) st.write(Buffer.alloc(1024));
                resolve(code);
              });
            }),
        ),
      );
      const refused = statuses.filter((s) => s === 503).length;
      // Streams past the session's stream limit are refused by HTTP/2 itself (-1), dials past the
      // per-pod limit get 503, counted; nothing else happens to them.
      expect(statuses.every((s) => s === 200 || s === 503 || s === -1)).toBe(true);
      expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
      expect((await limitHits(bMetrics, "pending_dials_per_pod")) - dialsRefusedBefore).toBe(refused);
      expect((await tunnel()).status).toBe(200);
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(512 * 1024 * 1024);
    } finally {
      session.destroy();
    }
    await waitFor("streams to the sink released", () => b.connections().length === 0);
  });
});
