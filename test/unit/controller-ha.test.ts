/**
 * Two controller replicas against one (fake) API server: one Lease holder writes Events, both
 * serve xDS and CSRs, and when the leader dies without releasing the Lease the other takes over
 * (the Lease's 1 s here; 10 s plus a 2 s retry by default, within 15 s) while an agent on the
 * survivor keeps its config and still gets certificates.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentApp } from "../../agent/app.js";
import { controllerConfig } from "../../controller/config.js";
import { Controller } from "../../controller/controller.js";
import { DEFAULT_LEASE_TIMING } from "../../controller/ha/lease.js";
import { captureLogger } from "../helpers/control-log.js";
import { FakeApiServer } from "../helpers/fake-apiserver.js";
import { seedShop, shopAgent } from "../helpers/fake-shop.js";
import { waitFor } from "../helpers/wait.js";

describe("controller replicas: Lease leader election, every replica serving", () => {
  const dir = mkdtempSync(join(tmpdir(), "weft-ha-"));
  const api = new FakeApiServer();
  const replicas: Controller[] = [];
  let agent: AgentApp | undefined;

  const replica = async (name: string): Promise<Controller> => {
    const c = new Controller(
      {
        ...controllerConfig({
          kubeconfig: api.writeKubeconfig(join(dir, "kubeconfig")),
          listen: "127.0.0.1:0",
          stateDir: join(dir, name),
          caSecret: "weft-system/cacerts",
          debounce: "20ms",
        }),
        leaderLease: { durationMs: 1000, retryMs: 100 },
      },
      captureLogger(name).log,
    );
    replicas.push(c);
    await c.start();
    return c;
  };

  beforeAll(async () => {
    await api.start();
    seedShop(api);
  });

  afterAll(async () => {
    await agent?.stop();
    for (const c of replicas) await c.stop().catch(() => undefined);
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("takes over within 15 s by default: a 10 s Lease and a 2 s retry", () => {
    expect(DEFAULT_LEASE_TIMING.durationMs + DEFAULT_LEASE_TIMING.retryMs).toBeLessThanOrEqual(15_000);
  });

  it("elects one leader; both share the CA and serve; only the leader writes Events", async () => {
    const a = await replica("a");
    expect(a.isLeader).toBe(true);
    const b = await replica("b");
    expect(b.isLeader).toBe(false);
    const lease = api.leases.get("weft-system/weft-controller") as unknown as { spec: { holderIdentity: string } };
    expect(lease.spec.holderIdentity).toMatch(/_[0-9a-f]{8}$/);

    // One Event for a bad policy, although both replicas translate it.
    api.apply("security.istio.io", "authorizationpolicies", { metadata: { name: "bad", namespace: "shop" }, spec: { action: "MAYBE" } });
    await waitFor("both replicas translated it", () =>
      replicas.every((c) => c.xds.resources?.model.authorizationPolicies.some((p) => p.name === "bad")),
    );
    await waitFor("the leader's Event", () => api.events.length >= 1);
    await new Promise((r) => setTimeout(r, 300)); // give a wrong second writer its chance to show
    expect(api.events.filter((e) => (e.involvedObject as { name: string }).name === "bad")).toHaveLength(1);

    // The follower serves an agent: xDS and certificates.
    const secret = api.secrets.get("weft-system/cacerts") as unknown as { data: Record<string, string> };
    agent = shopAgent(dir, b.port, Buffer.from(secret.data["root-cert.pem"] as string, "base64").toString(), captureLogger("agent").log);
    await agent.start();
    await agent.updater.state.when((s) => s.synced, 10_000);
    expect((await agent.identity.certificate("spiffe://cluster.local/ns/shop/sa/web")).certChainPem).toMatch(/BEGIN CERTIFICATE/);
  });

  it("the follower takes over when the leader dies holding the Lease; the agent keeps its config and certificates", async () => {
    const [a, b] = replicas as [Controller, Controller];
    const app = agent as AgentApp;
    const before = app.updater.state
      .get()
      .view.localWorkloads()
      .map((w) => w.name);
    await a.crash();
    await waitFor("the follower leads", () => b.isLeader === true, 15_000, 50);
    // The agent still has everything, and new work still flows: a new pod, a new certificate.
    expect(
      app.updater.state
        .get()
        .view.localWorkloads()
        .map((w) => w.name),
    ).toEqual(before);
    api.apply("", "pods", {
      metadata: { name: "db", namespace: "shop" },
      spec: { nodeName: "n1", serviceAccountName: "db" },
      status: { podIP: "10.244.1.3", hostIP: "10.250.0.11", conditions: [{ type: "Ready", status: "True" }] },
    });
    await app.updater.state.when((s) => s.view.localWorkloads().some((w) => w.name === "db"), 10_000);
    expect((await app.identity.certificate("spiffe://cluster.local/ns/shop/sa/db")).certChainPem).toMatch(/BEGIN CERTIFICATE/);
    // The new leader writes Events now.
    const events = api.events.length;
    api.apply("security.istio.io", "authorizationpolicies", { metadata: { name: "bad2", namespace: "shop" }, spec: { action: "NOPE" } });
    await waitFor("the new leader's Event", () => api.events.length > events, 5000);
  });

  it("a leader that stops cleanly hands the Lease over at the follower's next look", async () => {
    const c = await replica("c");
    const b = replicas[1] as Controller;
    expect(c.isLeader).toBe(false);
    await b.stop();
    await waitFor("c leads", () => c.isLeader === true, 5000, 20);
  });
});
