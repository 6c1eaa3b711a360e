/**
 * The controller in Kubernetes mode against the fake API server: its CA in a Secret, Events for
 * invalid and partly unsupported objects, and agents authenticated by TokenReview (the node is the
 * one the token's pod runs on).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentApp } from "../../agent/app.js";
import { controllerConfig } from "../../controller/config.js";
import { Controller } from "../../controller/controller.js";
import { rawStream } from "../helpers/control-client.js";
import { captureLogger } from "../helpers/control-log.js";
import { FakeApiServer } from "../helpers/fake-apiserver.js";
import { agentUser, seedShop, shopAgent } from "../helpers/fake-shop.js";
import { waitFor } from "../helpers/wait.js";

describe("controller in Kubernetes mode", () => {
  const dir = mkdtempSync(join(tmpdir(), "weft-kmode-"));
  const api = new FakeApiServer();
  let controller: Controller;
  let caPem: string;
  const cap = captureLogger("controller");
  const agents: AgentApp[] = [];

  beforeAll(async () => {
    await api.start();
    const { agentPodUid } = seedShop(api, [["RequestAuthentication", "requestauthentications"]]);
    api.registerGroup("weft.dev", ["v1alpha1"], [["RateLimitPolicy", "ratelimitpolicies"]]);
    api.apply("weft.dev", "ratelimitpolicies", {
      metadata: { name: "ok", namespace: "shop" },
      spec: { total: { requestsPerSecond: 10 } },
    });
    api.apply("weft.dev", "ratelimitpolicies", {
      metadata: { name: "broken", namespace: "shop" },
      spec: { total: { requestsPerSecond: -1 } },
    });
    api.apply("", "pods", {
      metadata: { name: "db", namespace: "shop" },
      spec: { nodeName: "n2", serviceAccountName: "db" },
      status: { podIP: "10.244.2.2", hostIP: "10.250.0.12", conditions: [{ type: "Ready", status: "True" }] },
    });
    api.apply("security.istio.io", "authorizationpolicies", { metadata: { name: "bad", namespace: "shop" }, spec: { action: "MAYBE" } });
    api.apply("security.istio.io", "authorizationpolicies", {
      metadata: { name: "jwt", namespace: "shop" },
      spec: { rules: [{ from: [{ source: { remoteIpBlocks: ["10.0.0.0/8"] } }] }] },
    });
    api.tokenReviews.set("intruder-token", { authenticated: true, user: { username: "system:serviceaccount:shop:web", extra: {} } });
    api.tokenReviews.set("other-audience-token", agentUser("weft-agent-x1", agentPodUid, []));
    controller = new Controller(
      controllerConfig({
        kubeconfig: api.writeKubeconfig(join(dir, "kubeconfig")),
        listen: "127.0.0.1:0",
        stateDir: join(dir, "state"),
        caSecret: "weft-system/cacerts",
        debounce: "20ms",
      }),
      cap.log,
    );
    await controller.start();
    const secret = api.secrets.get("weft-system/cacerts") as unknown as { data: Record<string, string> };
    caPem = Buffer.from(secret.data["root-cert.pem"] as string, "base64").toString();
  });
  afterAll(async () => {
    for (const a of agents) await a.stop();
    await controller.stop();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("creates its CA in a Secret on first start (Istio's cacerts layout)", () => {
    const secret = api.secrets.get("weft-system/cacerts") as unknown as { data: Record<string, string> };
    expect(Object.keys(secret.data).sort()).toEqual(["ca-cert.pem", "ca-key.pem", "root-cert.pem"]);
    expect(caPem).toMatch(/BEGIN CERTIFICATE/);
  });

  it("refuses a bootstrap token in Kubernetes mode, saying what to present instead", async () => {
    const { randomBytes } = await import("node:crypto");
    const before = api.requests.filter((r) => r.path.endsWith("/tokenreviews")).length;
    const auth = (controller as unknown as { auth: { authenticate(t: string): Promise<unknown> } }).auth;
    await expect(auth.authenticate(randomBytes(32).toString("base64url"))).rejects.toThrow(
      /not a Kubernetes service-account token \(bootstrap tokens are for a controller reading a file store\).*audience 'weft'/,
    );
    expect(api.requests.filter((r) => r.path.endsWith("/tokenreviews")).length).toBe(before);
  });

  it("publishes the roots, and not the key, as the agents' ConfigMap weft-root-cert", () => {
    const cm = api.configMaps.get("weft-system/weft-root-cert") as unknown as { data: Record<string, string> };
    expect(Object.keys(cm.data)).toEqual(["root-cert.pem"]);
    expect(cm.data["root-cert.pem"]?.trim()).toBe(caPem.trim());
  });

  it("writes the Accepted condition of its own RateLimitPolicies through the status subresource, once per change", async () => {
    const accepted = (name: string) => {
      const o = api.objects("weft.dev", "ratelimitpolicies").find((x) => x.metadata.name === name);
      return (o?.status as { conditions?: Record<string, unknown>[] } | undefined)?.conditions?.[0];
    };
    await waitFor("both conditions written", () => accepted("ok") && accepted("broken"));
    expect(accepted("ok")).toMatchObject({ type: "Accepted", status: "True", reason: "Accepted", observedGeneration: 1 });
    expect(accepted("broken")).toMatchObject({ type: "Accepted", status: "False", reason: "Invalid", observedGeneration: 1 });
    expect(String(accepted("broken")?.message)).toContain("requestsPerSecond");
    expect(api.statusPatches.every((p) => p.contentType === "application/merge-patch+json")).toBe(true);
    // Its own write comes back as a MODIFIED event and a new translation: what is written again
    // is only ever a changed condition, never a repeat of the last one for that object.
    const before = (controller as unknown as { translations: number }).translations;
    api.apply("", "namespaces", { metadata: { name: "unrelated" } });
    await waitFor("another translation", () => (controller as unknown as { translations: number }).translations > before + 0);
    api.apply("", "namespaces", { metadata: { name: "unrelated-2" } });
    await waitFor("one more", () => (controller as unknown as { translations: number }).translations > before + 1);
    const last = new Map<string, string>();
    for (const p of api.statusPatches) {
      const { lastTransitionTime: _t, ...c } = (p.patch.status as { conditions: Record<string, unknown>[] }).conditions[0] ?? {};
      const text = JSON.stringify(c);
      expect(last.get(p.key), `${p.key} patched twice with ${text}`).not.toBe(text);
      last.set(p.key, text);
    }
    // A fix flips the condition, keeping one condition, with a new transition time.
    const was = accepted("broken")?.lastTransitionTime;
    api.apply("weft.dev", "ratelimitpolicies", {
      metadata: { name: "broken", namespace: "shop" },
      spec: { total: { requestsPerSecond: 5 } },
    });
    await waitFor("fixed policy accepted", () => accepted("broken")?.status === "True");
    // The fake API server counts generations per apply, as the real one does per spec change.
    expect(accepted("broken")).toMatchObject({ reason: "Accepted", observedGeneration: 2 });
    expect(accepted("broken")?.lastTransitionTime).not.toBe(was);
  });

  it("records Warning Events for an invalid policy and for an unsupported field, once each", async () => {
    const policyEvents = () => api.events.filter((e) => (e.involvedObject as { kind: string }).kind === "AuthorizationPolicy");
    await waitFor("two events", () => policyEvents().length >= 2);
    const ev = (name: string) =>
      api.events.find((e) => (e.involvedObject as { name: string }).name === name) as Record<string, unknown> | undefined;
    expect(ev("bad")).toMatchObject({
      type: "Warning",
      reason: "InvalidConfig",
      involvedObject: { kind: "AuthorizationPolicy", name: "bad", namespace: "shop", apiVersion: "security.istio.io/v1" },
      message:
        "invalid: spec.action: 'MAYBE' is not ALLOW, DENY, AUDIT or CUSTOM; the policy denies every request in its scope (fail closed)",
      source: { component: "weft-controller" },
    });
    expect(ev("jwt")).toMatchObject({ reason: "UnsupportedConfig", message: expect.stringMatching(/remoteIpBlocks.*fail closed/) });
    // Another translation (a pod changes) does not repeat them.
    api.apply("", "pods", { metadata: { name: "extra", namespace: "shop" }, spec: { nodeName: "n1" }, status: { podIP: "10.244.1.9" } });
    await waitFor("the pod translated", () => controller.xds.resources?.model.workloads.some((w) => w.name === "extra"));
    expect(policyEvents()).toHaveLength(2);
  });

  it("authenticates an agent by TokenReview and serves the node its pod runs on", async () => {
    const app = shopAgent(dir, controller.port, caPem, captureLogger("agent").log);
    agents.push(app);
    await app.start();
    await app.updater.state.when((s) => s.synced, 10_000);
    expect(
      app.updater.state
        .get()
        .view.localWorkloads()
        .map((w) => w.name)
        .sort(),
    ).toEqual(["extra", "web"]);
    const cert = await app.identity.certificate("spiffe://cluster.local/ns/shop/sa/web");
    expect(cert.certChainPem).toMatch(/BEGIN CERTIFICATE/);
    const review = api.requests.find((r) => r.path === "/apis/authentication.k8s.io/v1/tokenreviews");
    expect(review?.method).toBe("POST");
    expect(readFileSync(join(dir, "token"), "utf8")).toBe("agent-n1-token\n");
  });

  it("an agent the controller refuses logs a refusal with the reason, not an outage, and waits before asking again", async () => {
    const log = captureLogger("agent");
    const app = shopAgent(dir, controller.port, caPem, log.log, "intruder-token", join(dir, "intruder"));
    agents.push(app);
    await app.start();
    await waitFor("the refusal logged", () => log.find(/the controller refused this agent/).length > 0, 10_000);
    const line = log.find(/the controller refused this agent/)[0] as unknown as { level: number; reason: string; retryInMs: number };
    expect(line.level).toBe(50);
    expect(line.reason).toMatch(/is not an agent service account/);
    expect(line.retryInMs).toBeGreaterThanOrEqual(30_000);
    expect(log.find(/controller unavailable/)).toHaveLength(0);
    expect(app.xds?.connection.get().lastError).toMatch(/^refused: /);
  });

  it("refuses a token of another service account, and one the API server does not accept", async () => {
    const intruder = rawStream(`127.0.0.1:${controller.port}`, caPem, "intruder-token");
    intruder.subscribeAll("n1");
    expect(await intruder.ended).toMatchObject({
      code: status.PERMISSION_DENIED,
      details: "'system:serviceaccount:shop:web' is not an agent service account (weft-system/weft-agent)",
    });
    const forged = rawStream(`127.0.0.1:${controller.port}`, caPem, "forged");
    forged.subscribeAll("n1");
    expect(await forged.ended).toMatchObject({
      code: status.UNAUTHENTICATED,
      details: "service-account token rejected by the API server: invalid bearer token",
    });
    // A valid agent token minted for another audience (the API server answers no audience of ours).
    const elsewhere = rawStream(`127.0.0.1:${controller.port}`, caPem, "other-audience-token");
    elsewhere.subscribeAll("n1");
    expect(await elsewhere.ended).toMatchObject({ code: status.UNAUTHENTICATED });
    expect((await elsewhere.ended)?.details).toMatch(/not for this controller: audiences \[\], expected one of/);
    intruder.close();
    forged.close();
    elsewhere.close();
  });
});
