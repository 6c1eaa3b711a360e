import { type AddressInfo, createServer, type Server } from "node:net";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_PROXY_TUNING } from "../../agent/proxy/context.js";
import { DEFAULT_POOL_OPTIONS } from "../../agent/proxy/pool.js";
import { NodeProxy } from "../../agent/proxy/proxy.js";
import { MeshView } from "../../agent/state/view.js";
import { ProxyMetrics } from "../../agent/telemetry/metrics.js";
import type { AuthorizationPolicy, MeshSnapshotData } from "../../controller/api/model.js";
import { readAll } from "../helpers/h2.js";
import { snapshot, workload } from "../helpers/mesh-fixture.js";
import { StaticIdentities, TestPki } from "../helpers/test-pki.js";
import { waitFor } from "../helpers/wait.js";

// Two proxies on loopback: "A" dials HBONE, "B" terminates it and delivers to an echo server.
// Tests the tunnel itself (mTLS, CONNECT, pool, authz, half-close); capture is tested on netns.
const client = workload({ name: "client", ns: "a", ip: "127.0.0.2", node: "A", nodeAddress: "127.0.0.1" });
const server = workload({ name: "server", ns: "b", ip: "127.0.0.3", node: "B", nodeAddress: "127.0.0.1" });
const outsider = workload({ name: "outsider", ns: "c", ip: "127.0.0.4", node: "A", nodeAddress: "127.0.0.1" });

class Holder {
  view: MeshView;
  listeners = new Set<(v: MeshView) => void>();
  constructor(data: MeshSnapshotData) {
    this.view = new MeshView(data);
  }
  set(data: MeshSnapshotData) {
    this.view = new MeshView(data);
    for (const l of this.listeners) l(this.view);
  }
}

function proxy(holder: Holder, ids: StaticIdentities, metrics = new ProxyMetrics()) {
  return new NodeProxy({
    config: {
      outbound: { ip: "127.0.0.1", port: 0 },
      hbone: { ip: "127.0.0.1", port: 0 },
      pool: DEFAULT_POOL_OPTIONS,
      ...DEFAULT_PROXY_TUNING,
      connectTimeoutMs: 2000,
    },
    view: () => holder.view,
    onViewChange: (l) => {
      holder.listeners.add(l);
      return () => holder.listeners.delete(l);
    },
    identity: ids,
    metrics,
    log: pino({ level: "silent" }),
  });
}

describe("HBONE tunnel on loopback", () => {
  const pki = new TestPki();
  const other = new TestPki("another-ca");
  let echo: Server;
  let echoPort = 0;
  let a: NodeProxy;
  let b: NodeProxy;
  let bHolder: Holder;
  let bMetrics: ProxyMetrics;
  let hbonePort = 0;
  const deny: AuthorizationPolicy = {
    key: "b/deny-outsider",
    name: "deny-outsider",
    namespace: "b",
    scope: { kind: "namespace" },
    action: "DENY",
    rules: [{ from: [{ principals: ["cluster.local/ns/c/sa/outsider"] }], to: [], when: [] }],
  };

  beforeAll(async () => {
    echo = createServer({ allowHalfOpen: true }, (s) => {
      s.on("error", () => undefined);
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, "127.0.0.3", r));
    echoPort = (echo.address() as AddressInfo).port;
    const aIds = new StaticIdentities([pki.rootPem], [pki.issue(client.identity), pki.issue(outsider.identity)]);
    const bIds = new StaticIdentities([pki.rootPem], [pki.issue(server.identity)]);
    bHolder = new Holder(snapshot("B", [client, server, outsider], [], [deny]));
    bMetrics = new ProxyMetrics();
    a = proxy(new Holder(snapshot("A", [client, server, outsider])), aIds);
    b = proxy(bHolder, bIds, bMetrics);
    await b.start();
    await a.start();
    hbonePort = b.hboneAddress()?.port as number;
  });

  afterAll(async () => {
    await a?.stop(500);
    await b?.stop(500);
    echo?.close();
    pki.dispose();
    other.dispose();
  });

  const open = (src = client, authority = `127.0.0.3:${echoPort}`, dstIdentity = server.identity) =>
    a.ctx.pool.stream(
      { srcIdentity: src.identity, dstIdentity, address: { ip: "127.0.0.1", port: hbonePort } },
      { ":method": "CONNECT", ":authority": authority, forwarded: `for=${src.addresses[0]}` },
    );

  it("carries bytes both ways and propagates half-close", async () => {
    const s = await open();
    const done = readAll(s);
    s.write("hello ");
    s.end("world");
    expect(await done).toEqual({ status: 200, body: "hello world" });
  });

  it("multiplexes 200 concurrent tunnels over a handful of sessions", async () => {
    const before = a.ctx.pool.sessionsOpened;
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const s = await open();
        const p = readAll(s);
        s.end(`msg-${i}`);
        return p;
      }),
    );
    expect(results.every((r, i) => r.status === 200 && r.body === `msg-${i}`)).toBe(true);
    // 200 streams at <=100 per session: a couple of sessions at most, never one per tunnel.
    expect(a.ctx.pool.sessionsOpened - before).toBeLessThanOrEqual(2);
  });

  it("refuses a principal denied by policy with 403 and counts it", async () => {
    const s = await open(outsider);
    const r = await readAll(s);
    expect(r.status).toBe(403);
    const text = await bMetrics.registry.metrics();
    expect(text).toMatch(
      /istio_tcp_connections_closed_total\{[^}]*source_principal="spiffe:\/\/cluster.local\/ns\/c\/sa\/outsider"[^}]*response_flags="DENY"[^}]*\} 1/,
    );
  });

  it("rejects an authority that is not a mesh pod on the node", async () => {
    expect((await readAll(await open(client, "127.0.0.9:80"))).status).toBe(400);
    expect((await readAll(await open(client, "not-an-address"))).status).toBe(400);
  });

  it("closes a live tunnel when a policy change denies it", async () => {
    const s = await open();
    const done = new Promise<number | undefined>((resolve) => s.on("close", () => resolve(s.rstCode)));
    s.resume();
    s.write("x");
    await waitFor("tunnel registered", () => b.connections().some((c) => c.srcIdentity === client.identity));
    const denyClient: AuthorizationPolicy = { ...deny, key: "b/deny-client", rules: [{ from: [{ namespaces: ["a"] }], to: [], when: [] }] };
    bHolder.set(snapshot("B", [client, server, outsider], [], [denyClient], "2"));
    expect(await done).not.toBe(0);
    bHolder.set(snapshot("B", [client, server, outsider], [], [deny], "3"));
  });

  it("refuses the handshake when the server presents an identity other than expected", async () => {
    // Ask for the client identity at B: B holds no such identity, so no certificate matches.
    await expect(open(client, `127.0.0.3:${echoPort}`, client.identity)).rejects.toThrow(/HBONE connection/);
  });

  it("refuses a client certificate from another CA", async () => {
    const rogue = other.issue(client.identity);
    const ids = new StaticIdentities([pki.rootPem], [rogue]);
    const c = proxy(new Holder(snapshot("A", [client, server])), ids);
    try {
      const before = b.connections().length;
      // TLS 1.3: the server's refusal of the client certificate arrives after the client's
      // handshake, so it shows as a tunnel that dies unanswered (or a failed connect), never a 200.
      const outcome = await c.ctx.pool
        .stream(
          { srcIdentity: client.identity, dstIdentity: server.identity, address: { ip: "127.0.0.1", port: hbonePort } },
          { ":method": "CONNECT", ":authority": `127.0.0.3:${echoPort}` },
        )
        .then(readAll)
        .catch((e: Error) => ({ status: -1, body: e.message }));
      expect(outcome.status).not.toBe(200);
      expect(b.connections().length).toBe(before);
    } finally {
      await c.stop(100);
    }
  });
});
