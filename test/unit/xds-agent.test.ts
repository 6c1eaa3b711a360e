/** The agent process skeleton: admin endpoints over the unix socket, and local-file mode (no controller). */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { AgentApp } from "../../agent/app.js";
import { agentConfig } from "../../agent/config.js";
import { adminGet } from "../../common/admin-server.js";
import type { MeshSnapshotData } from "../../controller/api/model.js";
import { ControlFixture } from "../helpers/control-fixture.js";
import { captureLogger } from "../helpers/control-log.js";
import { custom, namespace, node, pod } from "../helpers/control-objects.js";
import { waitFor } from "../helpers/wait.js";

const objs = [
  namespace("shop", { "weft.dev/mesh": "enabled" }),
  node("n1", "10.250.0.11"),
  pod({ name: "web", ns: "shop", node: "n1", ip: "10.244.1.2", sa: "web" }),
  pod({ name: "db", ns: "shop", node: "n2", ip: "10.244.2.2", sa: "db" }),
];

describe("agent admin API", () => {
  let f: ControlFixture;
  afterAll(async () => f?.stop());

  it("serves /config_dump, /certs, /status, /healthz and /ready on its unix socket", async () => {
    f = await ControlFixture.start(objs);
    const { app } = await f.agent("n1");
    const sock = app.config.adminSocket as string;
    await waitFor("a certificate", () => app.identity.cached("spiffe://cluster.local/ns/shop/sa/web"));
    const get = async (p: string) => JSON.parse((await adminGet(sock, p)).body);

    const dump = (await get("/config_dump")) as MeshSnapshotData;
    expect(dump).toEqual(JSON.parse(JSON.stringify(app.updater.state.get().data)));
    expect(dump.nodeName).toBe("n1");
    expect(dump.workloads.map((w) => w.name).sort()).toEqual(["db", "web"]);

    const certs = await get("/certs");
    expect(certs.certificates).toEqual([
      expect.objectContaining({
        identity: "spiffe://cluster.local/ns/shop/sa/web",
        state: "valid",
        serial: expect.stringMatching(/^[0-9A-F]+$/),
        notAfter: expect.any(String),
        secondsToRenewal: expect.any(Number),
        issued: 1,
      }),
    ]);
    expect(certs.trustBundle).toEqual([
      expect.objectContaining({
        signing: true,
        sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        subject: expect.stringMatching(/weft root CA/),
      }),
    ]);

    const st = await get("/status");
    expect(st).toMatchObject({
      node: "n1",
      source: "controller",
      synced: true,
      counts: { workloads: 2, localWorkloads: 1, certificates: 1 },
    });
    expect(st.components.xds).toMatchObject({ state: "connected", target: f.target, streamsOpened: 1 });
    expect(Object.keys(st.appliedVersions)).toHaveLength(10);
    expect((await adminGet(sock, "/healthz")).body).toBe("ok\n");
    expect((await adminGet(sock, "/synced")).status).toBe(200);
    // /ready is the 15021 readiness: the same answer as the agent's readiness(), reasons included.
    const ready = await adminGet(sock, "/ready");
    expect(ready.status).toBe(app.readiness().ready ? 200 : 503);
  });
});

describe("agent's check of the controller's certificate", () => {
  let f: ControlFixture;
  afterAll(async () => f?.stop());

  it("connects only to an address or name the controller's certificate carries", async () => {
    f = await ControlFixture.start(objs, { listen: "0.0.0.0:0" });
    const port = f.controller.port;
    const log = captureLogger("agent");
    const wrongIp = new AgentApp(agentConfig(f.agentFlags("n1", { controller: `127.0.0.2:${port}`, adminSocket: "off" }), {}), log.log);
    const wrongName = new AgentApp(
      agentConfig(f.agentFlags("n1", { controller: `127.0.0.1:${port}`, serverName: "evil.example", adminSocket: "off" }), {}),
      log.log,
    );
    f.agents.push(wrongIp, wrongName);
    await wrongIp.start();
    await wrongName.start();
    await waitFor("both refused", () => log.find(/controller unavailable/).length >= 2, 10_000);
    expect(wrongIp.xds?.connection.get()).toMatchObject({
      state: "disconnected",
      lastError: expect.stringMatching(/IP: 127.0.0.2 is not in the cert's list/),
    });
    expect(wrongName.xds?.connection.get()).toMatchObject({ state: "disconnected", lastError: expect.stringMatching(/evil.example/) });
    expect(wrongIp.updater.state.get().synced).toBe(false);
    const { app } = await f.agent("n1", { controller: `127.0.0.1:${port}`, adminSocket: "off" });
    expect(app.updater.state.get().synced).toBe(true);
  });
});

describe("agent in local-file mode (no controller)", () => {
  const dir = mkdtempSync(join(tmpdir(), "weft-local-"));
  const file = join(dir, "mesh.yaml");
  let app: AgentApp | undefined;
  afterAll(async () => {
    await app?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs from Kubernetes YAML: the node's state, certificates from a local CA, and follows edits", async () => {
    const write = (extra: object[] = []) => writeFileSync(file, [...objs, ...extra].map((o) => stringify(o)).join("---\n"));
    write([custom("security.istio.io/v1", "AuthorizationPolicy", "bad", "shop", { action: "MAYBE" })]);
    const cap = captureLogger("local");
    app = new AgentApp(
      agentConfig(
        { node: "n1", localConfig: file, localCaDir: join(dir, "ca"), adminAddress: "off", adminSocket: join(dir, "a.sock") },
        {},
      ),
      cap.log,
    );
    await app.start();
    const a = app;
    await a.updater.state.when((s) => s.synced, 5000);
    expect(
      a.updater.state
        .get()
        .data.workloads.map((w) => w.name)
        .sort(),
    ).toEqual(["db", "web"]);
    // The invalid policy is reported the way the controller reports it, and skipped.
    expect(cap.find(/AuthorizationPolicy shop\/bad: invalid: spec.action: 'MAYBE'/)).toHaveLength(1);
    const cert = await a.identity.certificate("spiffe://cluster.local/ns/shop/sa/web");
    expect(cert.certChainPem).toMatch(/BEGIN CERTIFICATE/);
    expect(a.identity.trustBundle()).toHaveLength(1);
    write([custom("security.istio.io/v1", "PeerAuthentication", "strict", "shop", { mtls: { mode: "STRICT" } })]);
    await waitFor("the edit applied", () => a.updater.state.get().data.peerAuthentications.length === 1);
    expect(a.updater.state.get().view.mtlsModeFor(a.updater.state.get().data.workloads.find((w) => w.name === "web") as never, 80)).toEqual(
      { mode: "STRICT", source: "shop/strict" },
    );
  });
});
