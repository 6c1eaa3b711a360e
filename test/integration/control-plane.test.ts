/**
 * The control plane on the local cluster: the controller in the fabric netns (10.250.0.1:15012),
 * one agent per node netns, talking over the cluster bridge with TLS; admin APIs read from the
 * host through their unix sockets. Propagation is timed from the store file's change (inotify).
 */
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync, statSync, watch } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { adminGet } from "../../common/admin-server.js";
import type { MeshSnapshotData } from "../../controller/api/model.js";
import { signal } from "../../native/proc.js";
import { forceDown, leftovers, readState } from "../helpers/cluster.js";
import { describePrivileged } from "../helpers/privileged.js";
import { waitFor } from "../helpers/wait.js";
import { ROOT, testClusterName, WEFT_BIN, weftOk } from "../helpers/weft.js";

const PROBE = join(ROOT, "test", "helpers", "control-probe.mjs");

describePrivileged("control plane on the local cluster: controller + 2 agents", () => {
  const name = testClusterName("cp");
  const runDir = join(process.env.WEFT_RUN_DIR ?? "/run/weft", name);
  const stateDir = join(runDir, "controller");
  const node = (n: number) => `${name}-node${n}`;
  const sock = (n: number, tag = "") => join(runDir, `agent-node${n}${tag}.sock`);
  let storeDir = "";
  let controllerPid = 0;

  const dump = async (s: string) => JSON.parse((await adminGet(s, "/config_dump")).body) as MeshSnapshotData;
  const status = async (s: string) => JSON.parse((await adminGet(s, "/status")).body);
  const certs = async (s: string) => JSON.parse((await adminGet(s, "/certs")).body);

  async function startController(): Promise<number> {
    const out = await weftOk([
      "cluster",
      "exec",
      "--name",
      name,
      "--detach",
      "fabric",
      "--",
      process.execPath,
      WEFT_BIN,
      "controller",
      "--store",
      storeDir,
      "--listen",
      "10.250.0.1:15012",
      "--state-dir",
      stateDir,
      "--cert-ttl",
      "10s",
      "--debounce",
      "30ms",
    ]);
    return Number(out.trim());
  }

  async function startAgent(n: number, extra: string[] = []): Promise<number> {
    const out = await weftOk([
      "cluster",
      "exec",
      "--name",
      name,
      "--detach",
      `node${n}`,
      "--",
      process.execPath,
      WEFT_BIN,
      "agent",
      "--node",
      node(n),
      "--controller",
      "10.250.0.1:15012",
      "--token-file",
      join(stateDir, "tokens", `${node(n)}.token`),
      "--ca-file",
      join(stateDir, "ca", "root-cert.pem"),
      "--admin-socket",
      sock(n),
      "--reconnect-max",
      "500ms",
      "--state-dir",
      join(runDir, "agent-state", node(n)),
      ...extra,
    ]);
    return Number(out.trim());
  }

  /** Resolves with when a store file next changes (inotify in this process). */
  function storeChange(file: string): Promise<number> {
    return new Promise((resolve) => {
      const w = watch(storeDir, (_ev, f) => {
        if (f === file) {
          w.close();
          resolve(performance.now());
        }
      });
    });
  }

  beforeAll(async () => {
    await forceDown(name);
    await weftOk(["cluster", "up", "--name", name, "--nodes", "2", "--pods-per-node", "1"]);
    storeDir = readState(name).storeDir;
    await weftOk(["cluster", "add-pod", "web", "--name", name, "-n", "shop", "--node", "1", "-l", "app=web", "--service-account", "web"]);
    await weftOk(["cluster", "add-pod", "db", "--name", name, "-n", "shop", "--node", "2", "-l", "app=db", "--service-account", "db"]);
    await weftOk(["cluster", "add-pod", "cache", "--name", name, "-n", "plain", "--node", "2", "-l", "app=cache"]);
    await weftOk(["cluster", "add-service", "cache", "--name", name, "-n", "plain", "-p", "80:8080/http", "-s", "app=cache"]);
    await weftOk(["cluster", "label", "--name", name, "namespace", "shop", "weft.dev/mesh=enabled"]);
    controllerPid = await startController();
    await waitFor(
      "tokens and root",
      () => existsSync(join(stateDir, "tokens", `${node(2)}.token`)) && existsSync(join(stateDir, "ca", "root-cert.pem")),
      20_000,
    );
    await startAgent(1);
    await startAgent(2);
    for (const n of [1, 2]) await waitFor(`agent ${n} synced`, async () => (await adminGet(sock(n), "/synced")).status === 200, 20_000);
  });

  afterAll(async () => {
    await forceDown(name);
    expect(leftovers(name)).toEqual([]);
  });

  it("gives every agent exactly what its node needs", async () => {
    const state = readState(name);
    const enrolledNs = new Set(["shop"]);
    const endpoints = new Set(
      state.pods
        .filter((p) =>
          state.services.some((s) => s.namespace === p.namespace && Object.entries(s.selector).every(([k, v]) => p.labels[k] === v)),
        )
        .map((p) => p.uid),
    );
    for (const n of [1, 2]) {
      const d = await dump(sock(n));
      expect(d.nodeName).toBe(node(n));
      const expected = state.pods
        .filter((p) => p.node === n || enrolledNs.has(p.namespace) || endpoints.has(p.uid))
        .map((p) => `${p.namespace}/${p.name}`);
      expect(d.workloads.map((w) => `${w.namespace}/${w.name}`).sort()).toEqual(expected.sort());
      expect(d.services.map((s) => s.key)).toEqual(["plain/cache"]);
      const web = d.workloads.find((w) => w.name === "web");
      expect(web).toMatchObject({
        node: node(1),
        nodeAddress: "10.250.0.11",
        enrolled: true,
        identity: "spiffe://cluster.local/ns/shop/sa/web",
      });
      expect((await status(sock(n))).components.xds.state).toBe("connected");
    }
    // Node 1's default pod is neither enrolled nor an endpoint: node 2 does not get it.
    expect((await dump(sock(2))).workloads.some((w) => w.name === "n1-p1")).toBe(false);
    const c1 = await certs(sock(1));
    expect(c1.certificates.map((c: { identity: string }) => c.identity)).toEqual(["spiffe://cluster.local/ns/shop/sa/web"]);
  });

  it("carries a namespace label to both agents in under a second", async () => {
    const changed = storeChange("namespace.default.yaml");
    await weftOk(["cluster", "label", "--name", name, "namespace", "default", "istio.io/dataplane-mode=ambient"]);
    const t0 = await changed;
    const enrolledEverywhere = async () => {
      for (const n of [1, 2]) if (!(await dump(sock(n))).workloads.find((w) => w.name === "n1-p1")?.enrolled) return false;
      return true;
    };
    await waitFor("n1-p1 enrolled on both agents", enrolledEverywhere, 5000, 10);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("carries a new pod and a removed pod to both agents in under a second", async () => {
    const added = storeChange("pod.default.late.yaml");
    await weftOk(["cluster", "add-pod", "late", "--name", name, "--node", "2", "-l", "app=late"]);
    const tAdd = await added;
    const seenBoth = async (present: boolean) => {
      for (const n of [1, 2]) if ((await dump(sock(n))).workloads.some((w) => w.name === "late") !== present) return false;
      return true;
    };
    await waitFor("late on both agents", () => seenBoth(true), 5000, 10);
    expect(performance.now() - tAdd).toBeLessThan(1000);
    const removed = storeChange("pod.default.late.yaml");
    const cli = weftOk(["cluster", "remove-pod", "late", "--name", name]);
    const tRemove = await removed;
    await waitFor("late gone from both agents", () => seenBoth(false), 5000, 10);
    expect(performance.now() - tRemove).toBeLessThan(1000);
    await cli;
  });

  it("refuses node 1's agent a certificate for an identity that runs only on node 2; signs node 2's", async () => {
    const probe = async (n: number, identity: string) => {
      const out = await weftOk([
        "cluster",
        "exec",
        "--name",
        name,
        `node${n}`,
        "--",
        process.execPath,
        PROBE,
        "csr",
        "10.250.0.1:15012",
        join(stateDir, "ca", "root-cert.pem"),
        join(stateDir, "tokens", `${node(n)}.token`),
        identity,
      ]);
      return JSON.parse(out.trim().split("\n").pop() as string);
    };
    const refused = await probe(1, "spiffe://cluster.local/ns/shop/sa/db");
    expect(refused).toEqual({
      ok: false,
      error: `node ${node(1)} has no pod running as spiffe://cluster.local/ns/shop/sa/db: a node's agent gets certificates only for identities with a pod on that node`,
    });
    const ok = await probe(2, "spiffe://cluster.local/ns/shop/sa/db");
    expect(ok.ok).toBe(true);
    const leaf = new X509Certificate(ok.chain[0]);
    expect(leaf.subjectAltName).toBe("URI:spiffe://cluster.local/ns/shop/sa/db");
    expect(leaf.verify(new X509Certificate(ok.roots[0]).publicKey)).toBe(true);
  });

  it("renews certificates before they expire (10 s TTL)", async () => {
    const first = (await certs(sock(1))).certificates[0];
    const renewed = await waitFor(
      "a new serial",
      async () => {
        const c = (await certs(sock(1))).certificates[0];
        return c.serial !== first.serial ? { c, at: Date.now() } : null;
      },
      15_000,
      50,
    );
    expect(renewed.at).toBeLessThan(new Date(first.notAfter).getTime());
    expect(new Date(renewed.c.notAfter).getTime()).toBeGreaterThan(new Date(first.notAfter).getTime());
  });

  it("survives a controller crash with state and certificates, then resyncs to exactly a fresh agent's state", async () => {
    const before = await dump(sock(1));
    const cert = (await certs(sock(1))).certificates[0];
    expect(signal(controllerPid, "SIGKILL")).toBe(true);
    await waitFor(
      "agents notice",
      async () =>
        (await status(sock(1))).components.xds.state === "disconnected" && (await status(sock(2))).components.xds.state === "disconnected",
      10_000,
    );
    // While it is down: the same state, and the cached certificate still served.
    expect(await dump(sock(1))).toEqual(before);
    const during = (await certs(sock(1))).certificates[0];
    expect(new Date(during.notAfter).getTime()).toBeGreaterThan(Date.now());
    expect(during.serial === cert.serial || during.issued > cert.issued).toBe(true);
    // The cluster changes while the controller is away.
    await weftOk(["cluster", "add-pod", "meanwhile", "--name", name, "-n", "shop", "--node", "1", "-l", "app=m", "--service-account", "m"]);
    controllerPid = await startController();
    for (const n of [1, 2]) {
      await waitFor(`agent ${n} back in sync`, async () => (await dump(sock(n))).workloads.some((w) => w.name === "meanwhile"), 15_000);
    }
    // A fresh agent on node 1 (its own socket, no TCP admin) gets the same state: nothing duplicated, nothing lost.
    await startAgent(1, ["--admin-address", "off", "--admin-socket", sock(1, "-fresh"), "--state-dir", "off"]);
    await waitFor("fresh agent synced", async () => (await adminGet(sock(1, "-fresh"), "/synced")).status === 200, 20_000);
    const a = await dump(sock(1));
    const b = await dump(sock(1, "-fresh"));
    expect({ ...a, version: "" }).toEqual({ ...b, version: "" });
    expect(new Set(a.workloads.map((w) => w.uid)).size).toBe(a.workloads.length);
    // The restarted controller kept its root: certificates issued before verify against the bundle pushed now.
    const bundle = (await certs(sock(1))).trustBundle;
    expect(bundle).toHaveLength(1);
    expect(statSync(join(stateDir, "ca", "root-key.pem")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(stateDir, "ca", "root-cert.pem"), "utf8")).toMatch(/BEGIN CERTIFICATE/);
  });
});
