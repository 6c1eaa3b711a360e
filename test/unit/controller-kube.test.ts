/**
 * The Kubernetes source against a fake API server with real list/watch semantics: resourceVersion
 * resumption, bookmarks, 410 Gone relists, label-selector DELETED transitions, CRD discovery.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { KubeSource } from "../../controller/sources/kube.js";
import { KubeClient, loadKubeConfig } from "../../controller/sources/kube-client.js";
import { ObjectStore } from "../../controller/sources/object-store.js";
import { captureLogger } from "../helpers/control-log.js";
import { FakeApiServer, parseSelector } from "../helpers/fake-apiserver.js";
import { waitFor } from "../helpers/wait.js";

const ns = (name: string, labels: Record<string, string> = {}) => ({ metadata: { name, labels } });
const pod = (name: string, namespace: string, labels: Record<string, string> = {}) => ({
  metadata: { name, namespace, labels },
  spec: { nodeName: "n1", serviceAccountName: "sa" },
  status: { podIP: "10.244.1.9", conditions: [{ type: "Ready", status: "True" }] },
});

describe("label selectors (fake API server)", () => {
  it("parses equality, set and existence requirements", () => {
    expect(parseSelector("a=b")({ a: "b" })).toBe(true);
    expect(parseSelector("a==b,c!=d")({ a: "b", c: "e" })).toBe(true);
    expect(parseSelector("a in (x, y)")({ a: "y" })).toBe(true);
    expect(parseSelector("a notin (x)")({ a: "x" })).toBe(false);
    expect(parseSelector("a,!b")({ a: "1" })).toBe(true);
    expect(parseSelector("!b")({ b: "1" })).toBe(false);
    expect(() => parseSelector("a=(")).toThrow(/unable to parse/);
  });
});

describe("Kubernetes source", () => {
  let api: FakeApiServer;
  let dir: string;
  let client: KubeClient;
  const sources: KubeSource[] = [];

  beforeAll(async () => {
    api = new FakeApiServer();
    await api.start();
    dir = mkdtempSync(join(tmpdir(), "weft-kube-"));
    client = new KubeClient(await loadKubeConfig({ kubeconfig: api.writeKubeconfig(join(dir, "kubeconfig")) }));
  });
  afterEach(async () => {
    for (const s of sources.splice(0)) await s.stop();
  });
  afterAll(async () => {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function startSource(opts: { namespaceSelector?: string; discoveryRetryMs?: number; agentNamespaces?: string[] } = {}) {
    const store = new ObjectStore();
    const cap = captureLogger("kube");
    const src = new KubeSource({ client, store, log: cap.log, rootNamespace: "weft-system", ...opts });
    sources.push(src);
    await src.start();
    return { store, src, cap };
  }

  it("lists and watches every kind, at the CRD version the cluster serves", async () => {
    api.registerGroup(
      "networking.istio.io",
      ["v1beta1"],
      [
        ["VirtualService", "virtualservices"],
        ["DestinationRule", "destinationrules"],
      ],
    );
    api.apply("", "namespaces", ns("shop", { "weft.dev/mesh": "enabled" }));
    api.apply("", "pods", pod("web", "shop", { app: "web" }));
    api.apply("networking.istio.io", "virtualservices", { metadata: { name: "vs", namespace: "shop" }, spec: { hosts: ["web"] } });
    const { store, src } = await startSource();
    expect(store.get("Namespace", undefined, "shop")?.metadata.labels).toMatchObject({ "weft.dev/mesh": "enabled" });
    expect(store.get("Pod", "shop", "web")?.kind).toBe("Pod"); // lists leave kind out; the informer restores it
    expect(store.get("VirtualService", "shop", "vs")?.apiVersion).toBe("networking.istio.io/v1beta1");
    expect(src.status().find((s) => s.kind === "VirtualService")?.path).toBe("/apis/networking.istio.io/v1beta1/virtualservices");
    // security.istio.io and gateway API are not installed: reported, not fatal.
    expect([...src.missing].sort()).toEqual([
      "AuthorizationPolicy",
      "HTTPRoute",
      "PeerAuthentication",
      "RateLimitPolicy",
      "RequestAuthentication",
      "Telemetry",
    ]);
    // Watches ask for bookmarks and are bounded in time.
    const watch = api.requests.find((r) => r.path === "/api/v1/pods" && r.query.get("watch") === "true");
    expect(watch?.query.get("allowWatchBookmarks")).toBe("true");
    expect(Number(watch?.query.get("timeoutSeconds"))).toBeGreaterThan(0);

    api.apply("", "pods", pod("db", "shop"));
    await waitFor("pod db in the store", () => store.get("Pod", "shop", "db"));
    api.delete("", "pods", "shop", "db");
    await waitFor("pod db gone", () => !store.get("Pod", "shop", "db"));
  });

  it("resumes a closed watch from its resourceVersion without relisting, and misses nothing", async () => {
    const { store, src } = await startSource();
    const pods = () => src.status().find((s) => s.kind === "Pod");
    expect(pods()?.lists).toBe(1);
    await waitFor("watches open", () => api.openWatches >= 5);
    const before = api.requests.length;
    api.closeWatches();
    // Changed while no watch is open: must arrive through the re-watch's history replay.
    api.apply("", "pods", pod("late", "shop"));
    await waitFor("pod made while disconnected", () => store.get("Pod", "shop", "late"), 15_000);
    const rewatch = api.requests.slice(before).find((r) => r.path === "/api/v1/pods" && r.query.get("watch") === "true");
    expect(Number(rewatch?.query.get("resourceVersion"))).toBeGreaterThan(0);
    expect(pods()?.lists).toBe(1);
  });

  it("moves its resourceVersion forward on bookmarks", async () => {
    const { src } = await startSource();
    await waitFor("watches open", () => api.openWatches >= 5);
    // Other kinds change: the pods watch sees nothing but a bookmark with the newer version.
    for (let i = 0; i < 3; i++) api.apply("", "namespaces", ns(`bump${i}`));
    await waitFor("bookmarks sent", () => api.bookmark() > 0);
    const bookmarkRv = api.resourceVersion;
    await waitFor(
      "the pods informer at the bookmark's version",
      () => src.status().find((s) => s.kind === "Pod")?.resourceVersion === String(bookmarkRv),
    );
    const before = api.requests.length;
    api.closeWatches();
    await waitFor(
      "pods re-watch",
      () => api.requests.slice(before).find((r) => r.path === "/api/v1/pods" && r.query.get("watch") === "true"),
      15_000,
    );
    const rewatch = api.requests.slice(before).find((r) => r.path === "/api/v1/pods" && r.query.get("watch") === "true");
    expect(Number(rewatch?.query.get("resourceVersion"))).toBe(bookmarkRv);
    expect(src.status().find((s) => s.kind === "Pod")?.lists).toBe(1);
  });

  it("relists after 410 Gone and drops objects deleted while it was away", async () => {
    api.apply("", "pods", pod("doomed", "shop"));
    const { store, src } = await startSource();
    expect(store.get("Pod", "shop", "doomed")).toBeDefined();
    await waitFor("watches open", () => api.openWatches >= 5);
    api.closeWatches();
    api.delete("", "pods", "shop", "doomed");
    api.apply("", "pods", pod("fresh", "shop"));
    api.compact(); // the history of both changes is gone: only a relist can find them
    await waitFor("relist after 410", () => src.status().find((s) => s.kind === "Pod")?.lists === 2, 15_000);
    await waitFor("deleted pod gone after the relist", () => !store.get("Pod", "shop", "doomed"));
    expect(store.get("Pod", "shop", "fresh")).toBeDefined();
  });

  it("takes a namespace out when it stops matching the selector (DELETED), and back when it matches again", async () => {
    api.apply("", "namespaces", ns("in-mesh", { env: "prod" }));
    api.apply("", "namespaces", ns("outside", { env: "dev" }));
    api.apply("", "pods", pod("a", "in-mesh"));
    api.apply("", "pods", pod("b", "outside"));
    const { store } = await startSource({ namespaceSelector: "env=prod" });
    expect(store.get("Namespace", undefined, "in-mesh")).toBeDefined();
    expect(store.get("Namespace", undefined, "outside")).toBeUndefined();
    expect(store.get("Pod", "in-mesh", "a")).toBeDefined();
    expect(store.get("Pod", "outside", "b")).toBeUndefined();
    const watch = api.requests.findLast((r) => r.path === "/api/v1/namespaces" && r.query.get("watch") === "true");
    expect(watch?.query.get("labelSelector")).toBe("env=prod");

    api.apply("", "namespaces", ns("in-mesh", { env: "staging" })); // label changed: the server sends DELETED
    await waitFor("namespace and its pods out", () => !store.get("Namespace", undefined, "in-mesh") && !store.get("Pod", "in-mesh", "a"));
    api.apply("", "pods", pod("a2", "in-mesh")); // created while out of scope: parked, not lost
    api.apply("", "namespaces", ns("in-mesh", { env: "prod" }));
    await waitFor("namespace and pods back", () => store.get("Pod", "in-mesh", "a") && store.get("Pod", "in-mesh", "a2"));
  });

  it("keeps the agents' own namespace visible whatever the selector says (their tokens name their pods)", async () => {
    api.apply("", "namespaces", ns("weft-agents", { env: "ops" }));
    api.apply("", "pods", pod("weft-agent-x", "weft-agents"));
    api.apply("", "pods", pod("c", "outside"));
    const { store } = await startSource({ namespaceSelector: "env=prod", agentNamespaces: ["weft-agents"] });
    expect(store.get("Pod", "weft-agents", "weft-agent-x")).toBeDefined();
    expect(store.get("Pod", "outside", "c")).toBeUndefined();
  });

  it("starts watching a CRD once it is installed", async () => {
    const { store, src } = await startSource({ discoveryRetryMs: 100 });
    expect(src.missing.has("AuthorizationPolicy")).toBe(true);
    api.registerGroup(
      "security.istio.io",
      ["v1", "v1beta1"],
      [
        ["AuthorizationPolicy", "authorizationpolicies"],
        ["PeerAuthentication", "peerauthentications"],
      ],
    );
    api.apply("security.istio.io", "authorizationpolicies", { metadata: { name: "deny", namespace: "shop" }, spec: { action: "DENY" } });
    await waitFor("policy from the new CRD", () => store.get("AuthorizationPolicy", "shop", "deny"), 10_000);
    expect(src.status().find((s) => s.kind === "AuthorizationPolicy")?.path).toBe("/apis/security.istio.io/v1/authorizationpolicies");
  });

  it("a CRD deleted while watched returns to not installed (objects gone, no error loop), and is watched again when reinstalled", async () => {
    api.registerGroup("security.istio.io", ["v1"], [["AuthorizationPolicy", "authorizationpolicies"]]);
    api.apply("security.istio.io", "authorizationpolicies", { metadata: { name: "allow-web", namespace: "shop" }, spec: {} });
    const { store, src, cap } = await startSource({ discoveryRetryMs: 100 });
    expect(store.get("AuthorizationPolicy", "shop", "allow-web")).toBeTruthy();
    // Quietly: the objects' DELETED events are lost (as by a controller that was away), so the
    // store must be emptied by the source itself once the kind is known to be gone.
    api.uninstall("security.istio.io", "authorizationpolicies", true);
    await waitFor("kind back to not installed", () => src.missing.has("AuthorizationPolicy"), 10_000);
    expect(store.list("AuthorizationPolicy")).toEqual([]);
    expect(src.unreadable().map((u) => u.kind)).not.toContain("AuthorizationPolicy");
    expect(cap.find(/no longer served \(CRD removed\?\)/)).toHaveLength(1);
    expect(cap.find(/watch failed/)).toHaveLength(0);

    api.registerGroup("security.istio.io", ["v1"], [["AuthorizationPolicy", "authorizationpolicies"]]);
    api.apply("security.istio.io", "authorizationpolicies", { metadata: { name: "again", namespace: "shop" }, spec: {} });
    await waitFor("policy from the reinstalled CRD", () => store.get("AuthorizationPolicy", "shop", "again"), 10_000);
    expect(src.missing.has("AuthorizationPolicy")).toBe(false);
  });

  it("fails to start with the API server's answer when it refuses the credential", async () => {
    const bad = new KubeClient(await loadKubeConfig({ kubeconfig: api.writeKubeconfig(join(dir, "bad"), "wrong-token") }));
    const cap = captureLogger("kube");
    const src = new KubeSource({ client: bad, store: new ObjectStore(), log: cap.log, rootNamespace: "weft-system" });
    sources.push(src);
    await expect(src.start()).rejects.toThrow(/401 Unauthorized/);
    expect(cap.find(/watch failed; restarting/).length).toBeGreaterThan(0);
  });

  it("reaches the API server in-cluster (service account files and environment)", async () => {
    const prefix = mkdtempSync(join(tmpdir(), "weft-sa-"));
    const saDir = join(prefix, "var/run/secrets/kubernetes.io/serviceaccount");
    const { mkdirSync, writeFileSync } = await import("node:fs");
    mkdirSync(saDir, { recursive: true });
    writeFileSync(join(saDir, "token"), api.token);
    writeFileSync(join(saDir, "ca.crt"), api.caPem);
    writeFileSync(join(saDir, "namespace"), "weft-system");
    const url = new URL(api.url);
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    process.env.KUBERNETES_SERVICE_HOST = url.hostname;
    process.env.KUBERNETES_SERVICE_PORT = url.port;
    try {
      const c = new KubeClient(await loadKubeConfig({ inCluster: true, pathPrefix: prefix }));
      const list = await c.request<{ items: unknown[] }>("GET", "/api/v1/namespaces");
      expect(list.items.length).toBeGreaterThan(0);
    } finally {
      process.env.KUBERNETES_SERVICE_HOST = saved.host;
      process.env.KUBERNETES_SERVICE_PORT = saved.port;
      if (saved.host === undefined) delete process.env.KUBERNETES_SERVICE_HOST;
      if (saved.port === undefined) delete process.env.KUBERNETES_SERVICE_PORT;
      rmSync(prefix, { recursive: true, force: true });
    }
  });
});
