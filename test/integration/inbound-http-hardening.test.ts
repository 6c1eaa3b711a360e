/**
 * The destination's HTTP server against what a security review found (real HBONE listener on
 * loopback, mTLS CONNECT streams, node:http pods): HTTP behind leading empty lines is read as
 * HTTP; bytes that are not HTTP never pass token or rate-limit checks; a tunnel spliced as TCP is
 * re-checked when policy changes; a client leaving mid-body does not take the proxy down.
 */
import { once } from "node:events";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { type ClientHttp2Session, type ClientHttp2Stream, connect as h2connect } from "node:http2";
import { connect as netConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { exportJWK, generateKeyPair } from "jose";
import pino from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_PROXY_TUNING } from "../../agent/proxy/context.js";
import { DEFAULT_POOL_OPTIONS } from "../../agent/proxy/pool.js";
import { NodeProxy } from "../../agent/proxy/proxy.js";
import { identitySni } from "../../agent/proxy/tls.js";
import { MeshView } from "../../agent/state/view.js";
import { ProxyMetrics } from "../../agent/telemetry/metrics.js";
import type { AuthorizationPolicy, MeshSnapshotData, RequestAuthentication, Service } from "../../controller/api/model.js";
import { snapshot, workload } from "../helpers/mesh-fixture.js";
import { StaticIdentities, TestPki } from "../helpers/test-pki.js";
import { waitFor } from "../helpers/wait.js";

const NODE_B = "127.0.63.1";
const client = workload({ name: "client", ns: "a", ip: "127.0.63.10", node: "A", nodeAddress: "127.0.63.2" });
const web = workload({ name: "web", ns: "b", ip: "127.0.63.20", node: "B", nodeAddress: NODE_B });
const HTTP_PORT = 18_480;
const AUTO_PORT = 18_481;
const webSvc: Service = {
  key: "b/web",
  name: "web",
  namespace: "b",
  hostname: "web.b.svc.cluster.local",
  vips: ["10.96.63.10"],
  ports: [
    { name: "http", port: 80, targetPort: HTTP_PORT, appProtocol: "http" },
    { name: "other", port: 81, targetPort: AUTO_PORT, appProtocol: "auto" },
  ],
  endpoints: [{ workloadUid: web.uid, address: web.addresses[0] as string, ready: true }],
};
const sel = { kind: "workload" as const, selector: { app: "web" } };
const denyAdmin: AuthorizationPolicy = {
  key: "b/deny-admin",
  name: "deny-admin",
  namespace: "b",
  scope: sel,
  action: "DENY",
  rules: [{ from: [], to: [{ paths: ["/admin*"] }], when: [] }],
};
const audit: AuthorizationPolicy = {
  key: "b/audit",
  name: "audit",
  namespace: "b",
  scope: sel,
  action: "AUDIT",
  rules: [{ from: [], to: [{ paths: ["/x*"] }], when: [] }],
};

describe("the destination's HTTP server: what the review found", () => {
  const pki = new TestPki();
  const clientCert = pki.issue(client.identity);
  let view: MeshView;
  const listeners: ((v: MeshView) => void)[] = [];
  let b: NodeProxy;
  const apps: HttpServer[] = [];
  const sessions: ClientHttp2Session[] = [];
  const seen: string[] = [];
  let ra: RequestAuthentication;
  let version = 1;

  function setPolicies(p: { authz?: AuthorizationPolicy[]; ra?: RequestAuthentication[] }): void {
    const data = {
      ...snapshot("B", [client, web], [webSvc], p.authz ?? [], String(++version)),
      routes: [],
      destinationPolicies: [],
      requestAuthentications: p.ra ?? [],
    } as MeshSnapshotData;
    view = new MeshView(data);
    for (const l of listeners) l(view);
  }

  beforeAll(async () => {
    const { publicKey } = await generateKeyPair("ES256");
    const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" };
    ra = {
      key: "b/ra",
      name: "ra",
      namespace: "b",
      scope: sel,
      jwtRules: [
        { issuer: "https://issuer", jwks: JSON.stringify({ keys: [jwk] }), outputClaimToHeaders: [{ header: "x-user", claim: "sub" }] },
      ],
    } as RequestAuthentication;
    setPolicies({});
    b = new NodeProxy({
      config: {
        outbound: { ip: NODE_B, port: 0 },
        hbone: { ip: NODE_B, port: 0 },
        pool: DEFAULT_POOL_OPTIONS,
        ...DEFAULT_PROXY_TUNING,
        connectTimeoutMs: 2000,
      },
      view: () => view,
      onViewChange: (l) => {
        listeners.push(l);
        return () => undefined;
      },
      identity: new StaticIdentities([pki.rootPem], [pki.issue(web.identity)]),
      metrics: new ProxyMetrics(new Registry()),
      log: pino({ level: "silent" }),
    });
    await b.start();
    for (const port of [HTTP_PORT, AUTO_PORT]) {
      const app = createHttpServer((req, res) => {
        seen.push(`${port} ${req.method} ${req.url} x-user=${req.headers["x-user"] ?? "-"}`);
        req.resume();
        req.on("end", () => res.end("app-ok\n"));
      });
      app.listen(port, web.addresses[0]);
      await once(app, "listening");
      apps.push(app);
    }
  });

  afterAll(async () => {
    for (const s of sessions) s.destroy();
    for (const a of apps) {
      a.closeAllConnections();
      a.close();
    }
    await b?.stop(200);
    pki.dispose();
  });

  /** A CONNECT stream to the pod port through node B's HBONE listener, as node A's proxy opens one. */
  async function tunnel(port: number): Promise<{ st: ClientHttp2Stream; out: () => string; closed: () => boolean }> {
    const hbone = b.hboneAddress();
    if (!hbone) throw new Error("no HBONE listener");
    const s = h2connect(`https://${NODE_B}:${hbone.port}`, {
      createConnection: () =>
        tlsConnect({
          // From the client pod's own address.
          socket: netConnect({ host: NODE_B, port: hbone.port, localAddress: client.addresses[0] }),
          servername: identitySni(web.identity),
          cert: clientCert.certChainPem,
          key: clientCert.keyPem,
          ca: [pki.rootPem],
          minVersion: "TLSv1.3",
          ALPNProtocols: ["h2"],
          checkServerIdentity: () => undefined,
        }),
    });
    s.on("error", () => undefined);
    sessions.push(s);
    const st = s.request({ ":method": "CONNECT", ":authority": `${web.addresses[0]}:${port}` }, { endStream: false });
    let out = "";
    let closed = false;
    st.on("data", (d: Buffer) => {
      out += d.toString("latin1");
    });
    st.on("error", () => undefined);
    st.once("close", () => {
      closed = true;
    });
    const [h] = (await once(st, "response")) as [Record<string, unknown>];
    expect(h[":status"]).toBe(200);
    return { st, out: () => out, closed: () => closed };
  }

  it("reads HTTP behind leading empty lines as HTTP: a bad token gets 401 and a forged claim header never reaches the app", async () => {
    setPolicies({ ra: [ra] });
    const t = await tunnel(AUTO_PORT);
    t.st.write("\r\n\r\nGET /c HTTP/1.1\r\nhost: web\r\nx-user: admin\r\nauthorization: Bearer garbage.token.x\r\n\r\n");
    await waitFor("the answer", () => t.out().includes("\r\n\r\n"));
    expect(t.out()).toMatch(/^HTTP\/1\.1 401 /);
    t.st.write("GET /d HTTP/1.1\r\nhost: web\r\nx-user: admin\r\n\r\n");
    await waitFor("the app's answer", () => t.out().includes("app-ok"));
    expect(seen.splice(0)).toEqual([`${AUTO_PORT} GET /d x-user=-`]);
    t.st.close();
  });

  it("closes bytes it cannot read as HTTP where tokens must be checked (HTTP/0.9 never reaches the app)", async () => {
    setPolicies({ ra: [ra] });
    const t = await tunnel(AUTO_PORT);
    t.st.write("GET /f\r\n\r\n");
    await waitFor("the tunnel closed", t.closed);
    expect(seen.splice(0)).toEqual([]);
  });

  it("re-checks a tunnel spliced as TCP when policy changes: a DENY with HTTP parts now closes it", async () => {
    setPolicies({ authz: [audit] });
    const t = await tunnel(AUTO_PORT);
    // Not HTTP: spliced to the app (node:http answers 400 and keeps nothing).
    t.st.write("\x00\x01binary\r\n\r\n");
    await waitFor("the app's refusal through the splice", () => t.out().includes("400"));
    expect(t.closed()).toBe(false);
    setPolicies({ authz: [audit, denyAdmin] });
    await waitFor("the spliced tunnel closed by the re-check", t.closed);
  });

  it("survives a client that leaves in the middle of a request body, and serves the next request", async () => {
    setPolicies({ authz: [denyAdmin] });
    for (const bytes of [
      "POST /ok HTTP/1.1\r\nhost: web\r\ncontent-length: 100\r\n\r\n0123456789",
      "POST /ok HTTP/1.1\r\nhost: web\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
    ]) {
      const t = await tunnel(HTTP_PORT);
      t.st.write(bytes);
      await waitFor("the app saw the request", () => seen.length > 0);
      seen.splice(0);
      t.st.close();
      await waitFor("the tunnel closed", t.closed);
    }
    const t = await tunnel(HTTP_PORT);
    t.st.write("GET /after HTTP/1.1\r\nhost: web\r\n\r\n");
    await waitFor("the next request answered", () => t.out().includes("app-ok"));
    expect(seen.splice(0)).toEqual([`${HTTP_PORT} GET /after x-user=-`]);
    t.st.close();
  });
});
