/**
 * The controller against the fake API server when objects are bad or kinds cannot be read:
 * one bad Node/Pod/Service/EndpointSlice is reported and skipped while later changes (a DENY-all)
 * still reach the agent (issue 13 item 3); an Istio kind refused by RBAC never counts as "no
 * policy": known policies stay, and with none known new workloads are held out of the mesh
 * (item 2).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentApp } from "../../agent/app.js";
import { controllerConfig } from "../../controller/config.js";
import { Controller } from "../../controller/controller.js";
import { captureLogger } from "../helpers/control-log.js";
import { FakeApiServer } from "../helpers/fake-apiserver.js";
import { seedShop, shopAgent } from "../helpers/fake-shop.js";
import { waitFor } from "../helpers/wait.js";

const SEC = "security.istio.io";

function cluster(api: FakeApiServer): { agentPodUid: string } {
  return seedShop(api, [["RequestAuthentication", "requestauthentications"]]);
}

function startController(api: FakeApiServer, dir: string, log: ReturnType<typeof captureLogger>["log"]): Controller {
  return new Controller(
    controllerConfig({
      kubeconfig: api.writeKubeconfig(join(dir, "kubeconfig")),
      listen: "127.0.0.1:0",
      stateDir: join(dir, "state"),
      caSecret: "weft-system/cacerts",
      debounce: "20ms",
    }),
    log,
  );
}

describe("one bad object never freezes the mesh", () => {
  const dir = mkdtempSync(join(tmpdir(), "weft-resilience-"));
  const api = new FakeApiServer();
  const cap = captureLogger("controller");
  let controller: Controller;
  let agent: AgentApp | undefined;

  beforeAll(async () => {
    await api.start();
    cluster(api);
    controller = startController(api, dir, cap.log);
    await controller.start();
  });
  afterAll(async () => {
    await agent?.stop();
    await controller.stop();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reports and skips a bad Node, Pod, Service and EndpointSlice; a DENY-all added afterwards reaches the agent", async () => {
    const secret = api.secrets.get("weft-system/cacerts") as unknown as { data: Record<string, string> };
    agent = shopAgent(
      dir,
      controller.port,
      Buffer.from(secret.data["root-cert.pem"] as string, "base64").toString(),
      captureLogger("agent").log,
    );
    await agent.start();
    const app = agent;
    await app.updater.state.when((s) => s.synced, 10_000);

    api.apply("", "nodes", { metadata: { name: "Bad_Node" }, status: { addresses: [{ type: "InternalIP", address: "10.250.0.99" }] } });
    api.apply("", "pods", {
      metadata: { name: "typed", namespace: "shop", labels: { version: 2 } as unknown as Record<string, string> },
      spec: { nodeName: "n1", serviceAccountName: "typed" },
      status: { podIP: "10.244.1.7", podIPs: "10.244.1.7", hostIP: "10.250.0.11" },
    });
    api.apply("", "services", { metadata: { name: "typed", namespace: "shop" }, spec: { clusterIP: 7, ports: "http" } });
    api.apply("discovery.k8s.io", "endpointslices", {
      metadata: { name: "web-x", namespace: "shop", labels: { "kubernetes.io/service-name": "typed" } },
      addressType: "IPv4",
      endpoints: 5,
    });
    await waitFor("the bad objects reported", () => {
      const names = new Set(controller.xds.resources?.model.diagnostics.filter((d) => d.severity === "error").map((d) => d.ref.name));
      return names.has("Bad_Node") && names.has("typed");
    });
    api.apply(SEC, "authorizationpolicies", { metadata: { name: "deny-all", namespace: "shop" }, spec: { action: "DENY", rules: [{}] } });
    await app.updater.state.when((s) => s.data.authorizationPolicies.some((p) => p.key === "shop/deny-all"), 10_000);
    const model = controller.xds.resources?.model;
    expect(model?.nodes).toEqual(["n1"]);
    expect(model?.workloads.map((w) => w.name)).toEqual(["web"]);
    const messages = model?.diagnostics.filter((d) => d.severity === "error").map((d) => `${d.ref.kind} ${d.ref.name}: ${d.message}`);
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^Node Bad_Node: invalid: metadata\.name: 'Bad_Node' is not a valid node name/),
        expect.stringMatching(/^Pod typed: .*pod skipped$/),
        expect.stringMatching(/^Service typed: .*service skipped$/),
      ]),
    );
    // And later changes still flow: removing the DENY-all reaches the agent too.
    api.delete(SEC, "authorizationpolicies", "shop", "deny-all");
    await app.updater.state.when((s) => s.data.authorizationPolicies.length === 0, 10_000);
  });
});

describe("policy kinds that cannot be read never mean no policy", () => {
  const dir = mkdtempSync(join(tmpdir(), "weft-rbac-"));
  const api = new FakeApiServer();
  const cap = captureLogger("controller");
  let controller: Controller | undefined;

  beforeAll(async () => {
    await api.start();
    cluster(api);
  });
  afterAll(async () => {
    await controller?.stop();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("with none known, serves promptly, holds enrolment of new workloads and says so; releases when readable", async () => {
    api.forbidden.add(`${SEC}/authorizationpolicies`);
    controller = startController(api, dir, cap.log);
    await controller.start();
    const c = controller;
    const status = () => c.status() as { conditions: { type: string; kinds: string[]; message: string }[] };
    await waitFor("the PolicyUnknown condition", () => status().conditions.some((x) => x.type === "PolicyUnknown"));
    expect(status().conditions).toEqual([
      expect.objectContaining({
        type: "PolicyUnknown",
        kinds: ["AuthorizationPolicy"],
        message: expect.stringMatching(/403.*not enrolled/),
      }),
    ]);
    const web = () => c.xds.resources?.model.workloads.find((w) => w.name === "web");
    expect(web()).toMatchObject({ enrolled: false, enrolmentReason: expect.stringMatching(/^held out of the mesh: policy is not known/) });
    expect(cap.find(/refuses to list\/watch AuthorizationPolicy \(403\)/).map((l) => l.level)).toEqual([50]);

    // RBAC fixed: the policy is read and the workload enrolled.
    api.apply(SEC, "authorizationpolicies", {
      metadata: { name: "deny-b", namespace: "shop" },
      spec: { action: "DENY", rules: [{ from: [{ source: { namespaces: ["b"] } }] }] },
    });
    api.forbidden.delete(`${SEC}/authorizationpolicies`);
    await waitFor("enrolled once policy is known", () => web()?.enrolled === true, 20_000);
    expect(c.xds.resources?.model.authorizationPolicies.map((p) => p.key)).toEqual(["shop/deny-b"]);
    expect(status().conditions).toEqual([]);

    // Refused again: the known policy stays (never an empty set), the enrolled workload stays enrolled.
    api.forbidden.add(`${SEC}/authorizationpolicies`);
    api.closeWatches();
    await waitFor("the PolicyStale condition", () => status().conditions.some((x) => x.type === "PolicyStale"), 20_000);
    api.apply("", "pods", {
      metadata: { name: "touch", namespace: "default" },
      spec: { nodeName: "n1" },
      status: { podIP: "10.244.1.30" },
    });
    await waitFor("a later translation", () => c.xds.resources?.model.workloads.some((w) => w.name === "touch"));
    expect(c.xds.resources?.model.authorizationPolicies.map((p) => p.key)).toEqual(["shop/deny-b"]);
    expect(web()?.enrolled).toBe(true);
  }, 60_000);
});
