/**
 * The agent's persisted state (config and certificates in --state-dir): written root-only and
 * atomically, restored on a cold start while the controller is down (synced at once, the same
 * certificate served), replaced when the controller answers; a file that cannot be trusted is
 * discarded as a whole (config) or per certificate, never half-used.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { AgentApp } from "../../agent/app.js";
import { agentConfig } from "../../agent/config.js";
import { CERTS_FILE, parseCerts } from "../../agent/lifecycle/persisted-certs.js";
import { CONFIG_FILE, parseConfig } from "../../agent/lifecycle/persisted-config.js";
import { ControlFixture } from "../helpers/control-fixture.js";
import { namespace, node, pod } from "../helpers/control-objects.js";
import { waitFor } from "../helpers/wait.js";

const web = `spiffe://cluster.local/ns/shop/sa/web`;
const objects = [
  namespace("shop", { "weft.dev/mesh": "enabled" }),
  node("n1", "10.250.0.11"),
  pod({ name: "web", ns: "shop", node: "n1", ip: "10.244.1.2", sa: "web" }),
];

interface SavedConfig {
  node: string;
  kinds: Record<string, { resources: { name: string; body: string }[] }>;
}

describe("agent state directory", () => {
  let f: ControlFixture | undefined;
  const dirs: string[] = [];
  const tempDir = () => {
    const d = mkdtempSync(join(tmpdir(), "weft-agent-state-"));
    dirs.push(d);
    return join(d, "state");
  };
  afterEach(async () => {
    await f?.stop();
    f = undefined;
  });
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** An agent of n1 that has persisted its config and web's certificate. */
  async function persisted(dir: string): Promise<AgentApp> {
    f = await ControlFixture.start(objects);
    const { app } = await f.agent("n1", { stateDir: dir });
    const cert = await waitFor("web's certificate", () => app.identity.cached(web));
    await waitFor("the certificate persisted", () => {
      try {
        return parseCerts(readFileSync(join(dir, CERTS_FILE), "utf8"), "n1").certificates[0]?.cert.serial === cert.serial;
      } catch {
        return false;
      }
    });
    await waitFor("the config persisted", () => readdirSync(dir).includes(CONFIG_FILE));
    return app;
  }

  it("writes the config and certificates root-only; a cold start with the controller down serves them, then follows the controller", async () => {
    const dir = tempDir();
    const first = await persisted(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, CONFIG_FILE)).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, CERTS_FILE)).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir).filter((n) => n.endsWith(".tmp"))).toEqual([]);
    const serial = first.identity.cached(web)?.serial;
    const data = first.updater.state.get().data;
    const fx = f as ControlFixture;
    await fx.killController();
    await first.stop();

    const cold = new AgentApp(agentConfig(fx.agentFlags("n1", { stateDir: dir })), first.log);
    fx.agents.push(cold);
    await cold.start();
    // Synced and holding the same certificate before any controller answered.
    expect(cold.updater.state.get().synced).toBe(true);
    expect(cold.updater.state.get().data).toEqual(data);
    expect(cold.identity.cached(web)?.serial).toBe(serial);
    expect(cold.readiness()).toEqual({ ready: true, reasons: [] });
    expect(cold.xds?.connection.get().state).not.toBe("connected");

    await fx.restartController();
    await waitFor("the cold-started agent reconnects", () => cold.xds?.connection.get().state === "connected", 15_000);
    fx.write(pod({ name: "api", ns: "shop", node: "n1", ip: "10.244.1.7", sa: "api" }));
    await cold.updater.state.when((s) => s.view.localWorkloads().some((w) => w.name === "api"), 10_000);
    await waitFor(
      "the new state persisted",
      () =>
        parseConfig(readFileSync(join(dir, CONFIG_FILE), "utf8"), "n1")
          .kinds.find((k) => k.kind === "Workload")
          ?.resources.some((r) => (r.value as { name: string }).name === "api"),
      5000,
    );
  }, 60_000);

  it("discards a config that does not decode, or is another node's, naming what is wrong", async () => {
    const dir = tempDir();
    const first = await persisted(dir);
    const text = readFileSync(join(dir, CONFIG_FILE), "utf8");
    expect(parseConfig(text, "n1").kinds.find((k) => k.kind === "Workload")?.resources).toHaveLength(1);
    expect(() => parseConfig(text, "n2")).toThrow(/saved for node 'n1', not 'n2'/);

    const saved = JSON.parse(text) as SavedConfig;
    const w = saved.kinds.Workload?.resources[0] as { name: string; body: string };
    w.body = Buffer.from("not a workload").toString("base64");
    expect(() => parseConfig(JSON.stringify(saved), "n1")).toThrow(new RegExp(`Workload '${w.name.replace(/[/.]/g, ".")}'`));
    delete saved.kinds.AuthorizationPolicy;
    expect(() => parseConfig(JSON.stringify({ ...saved, kinds: { ...saved.kinds } }), "n1")).toThrow(/Workload|AuthorizationPolicy/);
    expect(() => parseConfig("{", "n1")).toThrow(/not JSON/);

    // A cold start with a broken file is not synced: it waits for the controller (fail closed).
    writeFileSync(join(dir, CONFIG_FILE), JSON.stringify(saved));
    const fx = f as ControlFixture;
    await fx.killController();
    await first.stop();
    const cold = new AgentApp(agentConfig(fx.agentFlags("n1", { stateDir: dir })), first.log);
    fx.agents.push(cold);
    await cold.start();
    expect(cold.updater.state.get().synced).toBe(false);
  }, 60_000);

  it("leaves out certificates that expired, are for another identity or whose key does not match", async () => {
    const dir = tempDir();
    await persisted(dir);
    const text = readFileSync(join(dir, CERTS_FILE), "utf8");
    const ok = parseCerts(text, "n1");
    expect(ok.certificates.map((c) => c.cert.identity)).toEqual([web]);
    expect(ok.skipped).toEqual([]);

    const later = parseCerts(text, "n1", Date.now() + 400 * 24 * 3600_000);
    expect(later.certificates).toEqual([]);
    expect(later.skipped[0]).toMatch(/expired/);

    const saved = JSON.parse(text) as { certificates: { identity: string; keyPem: string }[] };
    const other = { ...saved, certificates: saved.certificates.map((c) => ({ ...c, identity: "spiffe://cluster.local/ns/shop/sa/db" })) };
    expect(parseCerts(JSON.stringify(other), "n1").skipped[0]).toMatch(/not for spiffe:\/\/cluster.local\/ns\/shop\/sa\/db/);
    const key = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    const swapped = { ...saved, certificates: saved.certificates.map((c) => ({ ...c, keyPem: key })) };
    expect(parseCerts(JSON.stringify(swapped), "n1").skipped[0]).toMatch(/key does not match/);
    expect(() => parseCerts(text, "n9")).toThrow(/saved for node 'n1'/);
  }, 60_000);
});
