/** Translation of pods: enrolment (with reasons), identity, addresses, node address, telemetry names. */
import { describe, expect, it } from "vitest";
import type { KubeObject } from "../../controller/api/kube-types.js";
import { TranslationMemo, translate } from "../../controller/translate/index.js";
import { namespace, node, objects, pod } from "../helpers/control-objects.js";

const n1 = node("n1", "10.250.0.11");

function one(p: KubeObject, ns: KubeObject = namespace("shop"), extra: KubeObject[] = []) {
  const m = translate(objects([ns, n1, p, ...extra]));
  return { w: m.workloads[0], m };
}

describe("translate: enrolment", () => {
  const base = { name: "web", ns: "shop", node: "n1", ip: "10.244.1.2" };
  it.each([
    ["namespace weft.dev/mesh=enabled", { "weft.dev/mesh": "enabled" }, {}, {}, true, "namespace shop has weft.dev/mesh=enabled"],
    [
      "namespace istio.io/dataplane-mode=ambient",
      { "istio.io/dataplane-mode": "ambient" },
      {},
      {},
      true,
      "namespace shop has istio.io/dataplane-mode=ambient",
    ],
    ["namespace not labelled", {}, {}, {}, false, "namespace shop is not enrolled (label it weft.dev/mesh=enabled)"],
    [
      "namespace weft.dev/mesh=disabled",
      { "weft.dev/mesh": "disabled" },
      {},
      {},
      false,
      "namespace shop is not enrolled (label it weft.dev/mesh=enabled)",
    ],
    [
      "pod opts out (weft.dev/mesh=disabled)",
      { "weft.dev/mesh": "enabled" },
      { "weft.dev/mesh": "disabled" },
      {},
      false,
      "pod has weft.dev/mesh=disabled",
    ],
    [
      "pod opts out (istio.io/dataplane-mode=none)",
      { "istio.io/dataplane-mode": "ambient" },
      { "istio.io/dataplane-mode": "none" },
      {},
      false,
      "pod has istio.io/dataplane-mode=none",
    ],
    ["pod opts in alone (weft.dev/mesh=enabled)", {}, { "weft.dev/mesh": "enabled" }, {}, true, "pod has weft.dev/mesh=enabled"],
    ["pod opts in alone (ambient)", {}, { "istio.io/dataplane-mode": "ambient" }, {}, true, "pod has istio.io/dataplane-mode=ambient"],
    [
      "pod with an Istio sidecar",
      { "weft.dev/mesh": "enabled" },
      {},
      { "sidecar.istio.io/status": "{}" },
      false,
      "pod has an Istio sidecar, which handles its traffic",
    ],
  ])("%s", (_name, nsLabels, podLabels, annotations, enrolled, reason) => {
    const p = pod({ ...base, labels: { app: "web", ...podLabels } });
    p.metadata.annotations = annotations;
    const { w } = one(p, namespace("shop", nsLabels));
    expect(w).toMatchObject({ enrolled, enrolmentReason: reason });
  });

  it("un-enrols when the namespace label goes (translation is a function of the current objects)", () => {
    const p = pod(base);
    expect(one(p, namespace("shop", { "weft.dev/mesh": "enabled" })).w?.enrolled).toBe(true);
    expect(one(p, namespace("shop", {})).w?.enrolled).toBe(false);
  });
});

describe("translate: workloads", () => {
  it("derives identity, addresses (IPv4 first), node address and readiness", () => {
    const p = pod({ name: "web", ns: "shop", node: "n1", ip: "10.244.1.2", sa: "frontend", hostIP: "10.250.0.11" });
    (p.status as { podIPs: { ip: string }[] }).podIPs = [{ ip: "fd00::2" }, { ip: "10.244.1.2" }];
    const { w } = one(p);
    expect(w).toMatchObject({
      uid: "uid-shop-web",
      serviceAccount: "frontend",
      identity: "spiffe://cluster.local/ns/shop/sa/frontend",
      addresses: ["10.244.1.2", "fd00::2"],
      node: "n1",
      nodeAddress: "10.250.0.11",
      ready: true,
    });
  });

  it("uses the Node's InternalIP when the pod has no hostIP, and the default service account", () => {
    const p = pod({ name: "web", ns: "shop", node: "n1", ip: "10.244.1.2" });
    delete (p.spec as { serviceAccountName?: string }).serviceAccountName;
    expect(one(p).w).toMatchObject({
      nodeAddress: "10.250.0.11",
      serviceAccount: "default",
      identity: "spiffe://cluster.local/ns/shop/sa/default",
    });
  });

  it("warns when an enrolled pod's node address is unknown", () => {
    const p = pod({ name: "web", ns: "shop", node: "ghost", ip: "10.244.1.2" });
    const { w, m } = one(p, namespace("shop", { "weft.dev/mesh": "enabled" }));
    expect(w?.nodeAddress).toBe("");
    expect(m.diagnostics).toEqual([
      expect.objectContaining({ severity: "warning", message: expect.stringMatching(/no node address for ghost/) }),
    ]);
  });

  it.each([
    [
      "a Deployment's pod (ReplicaSet minus its hash)",
      [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-7d9f8", controller: true }],
      { "pod-template-hash": "7d9f8" },
      "web",
    ],
    ["a StatefulSet's pod", [{ apiVersion: "apps/v1", kind: "StatefulSet", name: "db", controller: true }], {}, "db"],
    ["a CronJob's pod", [{ apiVersion: "batch/v1", kind: "Job", name: "backup-28012345", controller: true }], {}, "backup"],
    ["a bare pod", undefined, {}, "web-abc"],
  ])("names the workload of %s", (_name, owners, labels, expected) => {
    const p = pod({ name: "web-abc", ns: "shop", node: "n1", ip: "10.244.1.2", labels });
    if (owners) p.metadata.ownerReferences = owners;
    expect(one(p).w?.workloadName).toBe(expected);
  });

  it.each([
    [{ "service.istio.io/canonical-name": "c", "service.istio.io/canonical-revision": "r", app: "a", version: "v" }, "c", "r"],
    [{ "app.kubernetes.io/name": "k", "app.kubernetes.io/version": "kv", app: "a" }, "k", "kv"],
    [{ app: "a", version: "v" }, "a", "v"],
    [{}, "web", "latest"],
  ])("canonical name/revision from %j", (labels, name, revision) => {
    expect(one(pod({ name: "web", ns: "shop", node: "n1", ip: "10.244.1.2", labels })).w).toMatchObject({
      canonicalName: name,
      canonicalRevision: revision,
    });
  });

  it("leaves out pods that are pending, finished or on the host network, and reports a pod without uid", () => {
    const pending = pod({ name: "p", ns: "shop", node: "n1", ip: "10.244.1.3" });
    delete (pending.status as { podIP?: string }).podIP;
    delete (pending.status as { podIPs?: unknown }).podIPs;
    const unscheduled = pod({ name: "u", ns: "shop", node: "n1", ip: "10.244.1.4" });
    delete (unscheduled.spec as { nodeName?: string }).nodeName;
    const done = pod({ name: "d", ns: "shop", node: "n1", ip: "10.244.1.5" });
    (done.status as { phase: string }).phase = "Succeeded";
    const host = pod({ name: "h", ns: "shop", node: "n1", ip: "10.250.0.11" });
    (host.spec as { hostNetwork?: boolean }).hostNetwork = true;
    const noUid = pod({ name: "x", ns: "shop", node: "n1", ip: "10.244.1.6" });
    delete noUid.metadata.uid;
    const ok = pod({ name: "ok", ns: "shop", node: "n1", ip: "10.244.1.7" });
    const m = translate(objects([namespace("shop"), n1, pending, unscheduled, done, host, noUid, ok]));
    expect(m.workloads.map((w) => w.name)).toEqual(["ok"]);
    expect(m.diagnostics).toEqual([
      expect.objectContaining({
        severity: "error",
        ref: expect.objectContaining({ name: "x" }),
        message: "pod has no metadata.uid; skipped",
      }),
    ]);
  });

  it("gives a mirror (static) pod no identity: its node, not the API server, chose its namespace, and its service account is empty", () => {
    // What NodeRestriction lets a kubelet create: any namespace, any labels, no service account.
    const mirror = pod({ name: "m", ns: "payments", node: "n1", ip: "10.244.1.66", labels: { app: "m" } });
    mirror.metadata.annotations = { "kubernetes.io/config.mirror": "abc" };
    delete (mirror.spec as { serviceAccountName?: string }).serviceAccountName;
    const ok = pod({ name: "ok", ns: "payments", node: "n1", ip: "10.244.1.7" });
    const m = translate(objects([namespace("payments", { "weft.dev/mesh": "enabled" }), n1, mirror, ok]));
    expect(m.workloads.map((w) => w.name)).toEqual(["ok"]);
    expect(m.workloads.some((w) => w.identity.endsWith("/ns/payments/sa/default"))).toBe(false);
    expect(m.diagnostics).toEqual([
      expect.objectContaining({
        severity: "warning",
        ref: expect.objectContaining({ name: "m" }),
        message: expect.stringContaining("mirror (static) pod"),
      }),
    ]);
  });

  it("marks a terminating or unready pod not ready", () => {
    const t = pod({ name: "t", ns: "shop", node: "n1", ip: "10.244.1.2" });
    t.metadata.deletionTimestamp = "2026-01-01T00:00:00Z";
    const u = pod({ name: "u", ns: "shop", node: "n1", ip: "10.244.1.3" });
    (u.status as { conditions: unknown[] }).conditions = [{ type: "Ready", status: "False" }];
    expect(translate(objects([namespace("shop"), n1, t, u])).workloads.map((w) => w.ready)).toEqual([false, false]);
  });

  it("is deterministic: the same objects in another order give the same model", () => {
    const list = [
      namespace("shop"),
      n1,
      pod({ name: "a", ns: "shop", node: "n1", ip: "10.244.1.2" }),
      pod({ name: "b", ns: "shop", node: "n1", ip: "10.244.1.3" }),
    ];
    expect(translate(objects(list))).toEqual(translate(objects([...list].reverse())));
  });

  it("gives the same model with a memo, reusing what did not change (pods, their namespace and node, services)", () => {
    const a = pod({ name: "a", ns: "shop", node: "n1", ip: "10.244.1.2" });
    const b = pod({ name: "b", ns: "shop", node: "n1", ip: "10.244.1.3" });
    const ns = namespace("shop");
    const memo = new TranslationMemo();
    const first = translate(objects([ns, n1, a, b]), undefined, memo);
    expect(first).toEqual(translate(objects([ns, n1, a, b])));
    const b2 = { ...b, metadata: { ...b.metadata, labels: { app: "b", v: "2" } } };
    const second = translate(objects([ns, n1, a, b2]), undefined, memo);
    expect(second).toEqual(translate(objects([ns, n1, a, b2])));
    expect(second.workloads[0]).toBe(first.workloads[0]); // a: unchanged, the same object
    expect(second.workloads[1]).not.toBe(first.workloads[1]);
    // The namespace's label changes enrolment: every pod in it is translated again.
    const ns2 = namespace("shop", { "weft.dev/mesh": "enabled" });
    const third = translate(objects([ns2, n1, a, b2]), undefined, memo);
    expect(third.workloads.map((w) => w.enrolled)).toEqual([true, true]);
    expect(third).toEqual(translate(objects([ns2, n1, a, b2])));
  });
});
