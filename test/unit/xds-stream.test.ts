/**
 * The control protocol end to end in one process: a real controller (file store, TLS gRPC, CA)
 * and real agents on loopback. Per-node selection, deltas on the wire, NACKs, resync after a
 * controller restart, authentication.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MeshSnapshotData, Workload } from "../../controller/api/model.js";
import { decodeResource, RESOURCE_KINDS, typeUrlOf } from "../../controller/api/resources.js";
import { rawStream } from "../helpers/control-client.js";
import { ControlFixture } from "../helpers/control-fixture.js";
import { custom, namespace, node, pod, service } from "../helpers/control-objects.js";
import { waitFor } from "../helpers/wait.js";

const web = pod({ name: "web", ns: "shop", node: "n1", ip: "10.244.1.2", labels: { app: "web" } });
const db = pod({ name: "db", ns: "shop", node: "n2", ip: "10.244.2.2", labels: { app: "db" } });
const legacy = pod({ name: "legacy", ns: "plain", node: "n2", ip: "10.244.2.3", labels: { app: "legacy" } });
const cache = pod({ name: "cache", ns: "plain", node: "n2", ip: "10.244.2.4", labels: { app: "cache" } });
const tool = pod({ name: "tool", ns: "plain", node: "n1", ip: "10.244.1.3", labels: { app: "tool" } });

const objects = [
  namespace("shop", { "weft.dev/mesh": "enabled" }),
  namespace("plain"),
  namespace("weft-system"),
  node("n1", "10.250.0.11"),
  node("n2", "10.250.0.12"),
  web,
  db,
  legacy,
  cache,
  tool,
  ...service("db", "shop", "10.96.0.10", [{ name: "tcp", port: 5432, targetPort: 5432 }], [db]),
  ...service("cache", "plain", "10.96.0.11", [{ name: "http", port: 80, targetPort: 8080 }], [cache]),
  custom("security.istio.io/v1", "AuthorizationPolicy", "db-only", "shop", { selector: { matchLabels: { app: "db" } }, rules: [{}] }),
  custom("security.istio.io/v1", "AuthorizationPolicy", "shop-wide", "shop", {
    action: "DENY",
    rules: [{ from: [{ source: { namespaces: ["evil"] } }] }],
  }),
  custom("security.istio.io/v1", "AuthorizationPolicy", "legacy-only", "plain", { selector: { matchLabels: { app: "legacy" } } }),
  custom("security.istio.io/v1", "AuthorizationPolicy", "mesh-wide", "weft-system", { action: "AUDIT", rules: [{}] }),
  custom("security.istio.io/v1", "PeerAuthentication", "strict", "shop", { mtls: { mode: "STRICT" } }),
  custom("networking.istio.io/v1", "VirtualService", "cache", "plain", {
    hosts: ["cache"],
    http: [{ timeout: "2s", route: [{ destination: { host: "cache" } }] }],
  }),
];

const names = (d: MeshSnapshotData) => ({
  workloads: d.workloads.map((w) => w.name).sort(),
  services: d.services.map((s) => s.key),
  authz: d.authorizationPolicies.map((p) => p.key),
  peer: d.peerAuthentications.map((p) => p.key),
  routes: (d.routes ?? []).map((r) => r.key),
});

/** What a state looks like minus the push versions (which differ between controllers). */
const content = (d: MeshSnapshotData) => ({ ...d, version: "" });

describe("control plane over gRPC (in-process, loopback)", () => {
  let f: ControlFixture;
  let caPem: string;
  const token = (n: string) => readFileSync(join(f.stateDir, "tokens", `${n}.token`), "utf8").trim();

  beforeAll(async () => {
    f = await ControlFixture.start(objects);
    caPem = readFileSync(join(f.stateDir, "ca", "root-cert.pem"), "utf8");
  });
  afterAll(async () => {
    await f?.stop();
  });

  it("sends each node exactly what it needs", async () => {
    const n1 = (await f.agent("n1")).app;
    const n2 = (await f.agent("n2")).app;
    const d1 = n1.updater.state.get().data;
    const d2 = n2.updater.state.get().data;
    // Local pods in full; remote ones only when enrolled (db, web) or a service endpoint (cache).
    expect(names(d1)).toEqual({
      workloads: ["cache", "db", "tool", "web"],
      services: ["plain/cache", "shop/db"],
      authz: ["shop/shop-wide", "weft-system/mesh-wide"],
      peer: ["shop/strict"],
      routes: ["VirtualService/plain/cache"],
    });
    expect(names(d2)).toEqual({
      workloads: ["cache", "db", "legacy", "web"],
      services: ["plain/cache", "shop/db"],
      authz: ["plain/legacy-only", "shop/db-only", "shop/shop-wide", "weft-system/mesh-wide"],
      peer: ["shop/strict"],
      routes: ["VirtualService/plain/cache"],
    });
    expect(d1.workloads.find((w) => w.name === "web")).toMatchObject({
      node: "n1",
      enrolled: true,
      identity: "spiffe://cluster.local/ns/shop/sa/web",
    });
    expect(n1.updater.state.get().trustBundle?.rootsPem).toEqual([caPem]);
    await n1.stop();
    await n2.stop();
    f.agents.splice(0);
  });

  it("pushes only what changed, as deltas, and removals by name", async () => {
    const s = rawStream(f.target, caPem, token("n1"));
    s.subscribeAll("n1");
    // Every kind answered once: a count would pass before the last kinds' first answers, which a
    // loaded machine then delivers after the mark below, as if the new pod had changed them.
    await waitFor("an initial response for every kind", () =>
      RESOURCE_KINDS.every((k) => s.responses.some((r) => r.typeUrl === typeUrlOf(k))),
    );
    expect(s.responses.length).toBe(RESOURCE_KINDS.length);
    for (const r of s.responses) s.answer(r);
    const initial = s.responses.find((r) => r.typeUrl === typeUrlOf("Workload"));
    expect(initial?.resources.map((r) => r.name).sort()).toEqual([cache, db, tool, web].map((p) => p.metadata.uid).sort());
    const seen = s.responses.length;

    const extra = pod({ name: "extra", ns: "shop", node: "n1", ip: "10.244.1.9" });
    f.write(extra);
    await waitFor("a Workload delta", () => s.responses.slice(seen).find((r) => r.typeUrl === typeUrlOf("Workload")));
    const added = s.responses.slice(seen);
    expect(added.map((r) => r.typeUrl)).toEqual([typeUrlOf("Workload")]);
    expect(added[0]?.resources.map((r) => r.name)).toEqual([extra.metadata.uid]);
    expect(added[0]?.removedResources).toEqual([]);
    const w = decodeResource("Workload", extra.metadata.uid as string, added[0]?.resources[0]?.body as Uint8Array) as Workload;
    expect(w).toMatchObject({ name: "extra", addresses: ["10.244.1.9"], enrolled: true });
    s.answer(added[0] as (typeof added)[0]);

    const before = s.responses.length;
    f.remove(extra);
    await waitFor("a removal", () => s.responses.slice(before).find((r) => r.removedResources.length > 0));
    const removal = s.responses.slice(before);
    expect(removal).toHaveLength(1);
    expect(removal[0]).toMatchObject({ typeUrl: typeUrlOf("Workload"), resources: [], removedResources: [extra.metadata.uid] });
    s.close();
  });

  it("NACKs a resource the agent rejects, names it and why, keeps the previous version, and the controller logs it", async () => {
    const { app, log } = await f.agent("n1");
    const set = f.controller.xds.resources;
    if (!set) throw new Error("no state");
    const good = app.updater.state.get().data.workloads.find((w) => w.name === "web") as Workload;
    // A controller bug (or a newer controller) sends a workload the agent cannot use, plus a good change.
    const model = structuredClone(set.model);
    const bad = model.workloads.find((w) => w.name === "web") as Workload;
    bad.addresses = ["10.244.1.999"];
    bad.labels = { app: "web", broken: "yes" };
    const tool2 = model.workloads.find((w) => w.name === "tool") as Workload;
    tool2.labels = { app: "tool", touched: "yes" };
    f.controller.xds.update(model, set.bundle);

    await waitFor("the NACK in the controller's log", () => f.controllerLog.find(/rejected Workload resources \(NACK\)/)[0]);
    const line = f.controllerLog.find(/rejected Workload resources \(NACK\)/)[0] as unknown as {
      rejected: { name: string; reason: string }[];
      node: string;
    };
    expect(line.node).toBe("n1");
    expect(line.rejected).toEqual([{ name: bad.uid, reason: "addresses[0]: '10.244.1.999' is not an IP address" }]);
    expect(log.find(/Workload resources rejected/)).toHaveLength(1);
    await waitFor(
      "the good change applied",
      () => app.updater.state.get().data.workloads.find((w) => w.name === "tool")?.labels.touched === "yes",
    );
    // The agent keeps serving the previous version of the rejected one.
    expect(app.updater.state.get().data.workloads.find((w) => w.name === "web")).toEqual(good);
    const agentStatus = f.controller.xds.agents.find((a) => a.node === "n1")?.status();
    expect(agentStatus?.nacks.at(-1)?.resources[0]?.name).toBe(bad.uid);

    // The same bad version is not sent again on the next push; a fixed one is.
    const nacksBefore = f.controller.xds.stats.nacks;
    f.controller.xds.update(structuredClone(model), set.bundle);
    const fixed = structuredClone(model);
    (fixed.workloads.find((w) => w.name === "web") as Workload).addresses = ["10.244.1.2"];
    f.controller.xds.update(fixed, set.bundle);
    await waitFor(
      "the fixed version applied",
      () => app.updater.state.get().data.workloads.find((w) => w.name === "web")?.labels.broken === "yes",
    );
    expect(f.controller.xds.stats.nacks).toBe(nacksBefore);
    f.controller.xds.update(set.model, set.bundle); // back to what the store says
    await app.stop();
    f.agents.splice(0);
  });

  it("keeps state and certificates while the controller is down, then resyncs to exactly a fresh agent's state", async () => {
    const { app } = await f.agent("n1");
    await waitFor("a certificate for web", () => app.identity.cached("spiffe://cluster.local/ns/shop/sa/web"));
    const cert = app.identity.cached("spiffe://cluster.local/ns/shop/sa/web");
    const before = app.updater.state.get().data;
    await f.killController();
    await waitFor("the agent notices", () => app.xds?.connection.get().state === "disconnected");
    // Down: still serving the same state and the same certificate.
    expect(app.updater.state.get().data).toBe(before);
    expect(app.identity.cached("spiffe://cluster.local/ns/shop/sa/web")).toBe(cert);
    // The cluster changes meanwhile.
    const added = pod({ name: "newcomer", ns: "shop", node: "n1", ip: "10.244.1.20" });
    f.write(added, { ...tool, metadata: { ...tool.metadata, labels: { app: "tool", v: "2" } } });
    f.remove(legacy);
    const applied: { kind: string; upserts: number; removed: string[] }[] = [];
    const orig = app.updater.apply.bind(app.updater);
    app.updater.apply = (kind, v, upserts, removed) => {
      applied.push({ kind, upserts: upserts.length, removed: [...removed] });
      return orig(kind, v, upserts, removed);
    };
    await f.restartController();
    await waitFor("reconnected and in sync", () => app.xds?.connection.get().state === "connected", 10_000);
    await waitFor("newcomer arrived", () => app.updater.state.get().data.workloads.some((w) => w.name === "newcomer"));
    // The resync carried only the differences: the new pod and the relabelled one.
    const wl = applied.filter((a) => a.kind === "Workload");
    expect(wl.reduce((n, a) => n + a.upserts, 0)).toBe(2);
    expect(applied.filter((a) => a.kind !== "Workload").every((a) => a.upserts === 0 && a.removed.length === 0)).toBe(true);
    const fresh = (await f.agent("n1", { adminSocket: "off" })).app;
    await waitFor(
      "both agree",
      () => JSON.stringify(content(fresh.updater.state.get().data)) === JSON.stringify(content(app.updater.state.get().data)),
    );
    expect(content(app.updater.state.get().data)).toEqual(content(fresh.updater.state.get().data));
    expect(new Set(app.updater.state.get().data.workloads.map((w) => w.uid)).size).toBe(app.updater.state.get().data.workloads.length);
    f.write(legacy);
    f.remove(added);
    for (const a of f.agents.splice(0)) await a.stop();
  });

  it("answers a subscription by name only with what the node's selection allows", async () => {
    const s = rawStream(f.target, caPem, token("n1"));
    // plain/legacy-only selects a pod on n2 only; shop/shop-wide applies to n1 as well.
    s.send({
      node: { name: "n1", agentVersion: "test" },
      typeUrl: typeUrlOf("AuthorizationPolicy"),
      subscribe: ["plain/legacy-only", "shop/shop-wide"],
    });
    await waitFor("a response", () => s.responses.length >= 1);
    expect(s.responses[0]?.resources.map((r) => r.name)).toEqual(["shop/shop-wide"]);
    s.close();
  });

  it("refuses an unauthenticated caller, an unknown token and a token used for another node", async () => {
    const none = rawStream(f.target, caPem, undefined);
    none.subscribeAll("n1");
    expect(await none.ended).toMatchObject({ code: status.UNAUTHENTICATED, details: expect.stringMatching(/no credential/) });
    const wrong = rawStream(f.target, caPem, "not-a-token");
    wrong.subscribeAll("n1");
    expect(await wrong.ended).toMatchObject({ code: status.UNAUTHENTICATED, details: expect.stringMatching(/unknown bootstrap token/) });
    const other = rawStream(f.target, caPem, token("n1"));
    other.subscribeAll("n2");
    expect(await other.ended).toMatchObject({ code: status.PERMISSION_DENIED, details: expect.stringMatching(/belongs to node n1.*n2/) });
    expect(f.controllerLog.find(/agent stream refused/).length).toBeGreaterThanOrEqual(3);
    for (const s of [none, wrong, other]) s.close();
  });

  it("propagates a namespace label to every agent well under a second", async () => {
    const a1 = (await f.agent("n1")).app;
    const a2 = (await f.agent("n2")).app;
    const start = Date.now();
    f.write(namespace("plain", { "istio.io/dataplane-mode": "ambient" }));
    const enrolled = (a: typeof a1) => a.updater.state.get().data.workloads.find((w) => w.name === "cache")?.enrolled === true;
    await waitFor("cache enrolled on both agents", () => enrolled(a1) && enrolled(a2), 2000, 5);
    const ms = Date.now() - start;
    expect(ms).toBeLessThan(1000);
    f.write(namespace("plain"));
    for (const a of f.agents.splice(0)) await a.stop();
  });
});
