import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { parse } from "yaml";
import { runInNetns } from "../../native/netns.js";
import { isSameProcess } from "../../native/proc.js";
import { forceDown, leftovers, probeConnect, readState, startEcho } from "../helpers/cluster.js";
import { describePrivileged } from "../helpers/privileged.js";
import { waitFor } from "../helpers/wait.js";
import { testClusterName, weft, weftOk, weftSpawn } from "../helpers/weft.js";

const OUTSIDE = "203.0.113.1"; // TEST-NET-3: never routed; the cluster has no route to it anyway

describePrivileged("local cluster: 2 nodes x 2 pods", () => {
  const name = testClusterName("c");
  beforeAll(async () => {
    await forceDown(name);
    await weftOk(["cluster", "up", "--name", name, "--nodes", "2", "--pods-per-node", "2"]);
  });
  afterAll(async () => {
    await forceDown(name);
  });

  it("carries a TCP echo from a pod on node 1 to a pod on node 2, directly", async () => {
    const state = readState(name);
    const server = state.pods.find((p) => p.name === "n2-p1");
    const client = state.pods.find((p) => p.name === "n1-p1");
    expect(server?.node).toBe(2);
    await startEcho(name, "n2-p1", 7000);
    const r = await waitFor("echo reply", async () => {
      const res = await probeConnect(name, "n1-p1", server?.ip as string, 7000, "hello across nodes");
      return res.ok ? res : null;
    });
    expect(r.reply).toBe("hello across nodes");
    // No NAT in between: the client's own address is its pod IP.
    expect(r.localAddress).toBe(client?.ip);
  });

  it("fails at once to reach an address outside the cluster from pods, nodes and the fabric", async () => {
    for (const from of ["n1-p1", "n2-p2", "node1", "node2"]) {
      const r = await probeConnect(name, from, OUTSIDE, 80, "x", 3000);
      expect(r, from).toMatchObject({ ok: false, code: "ENETUNREACH" });
      expect(r.ms, from).toBeLessThan(1000);
    }
    const fabric = await probeConnect(name, "fabric", OUTSIDE, 80, "x", 3000);
    expect(fabric).toMatchObject({ ok: false, code: "ENETUNREACH" });
  });

  it("gives no netns a default route or a link outside the cluster", async () => {
    const state = readState(name);
    const all = [`${name}-fabric`, ...state.nodes.map((n) => `${name}-node${n}`), ...state.pods.map((p) => p.netns)];
    for (const ns of all) {
      const { stdout } = await runInNetns(ns, ["ip", "-4", "route", "show", "default"]);
      expect(stdout.trim(), ns).toBe("");
    }
    const { stdout: rootLinks } = await import("../../native/exec.js").then((m) => m.run("ip", ["-o", "link"]));
    expect(rootLinks).not.toMatch(/weft/);
  });

  it("refuses a second up of the same cluster and leaves it intact", async () => {
    const before = readState(name);
    const r = await weft(["cluster", "up", "--name", name]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/already exists/);
    expect(readState(name).pods.map((p) => p.uid)).toEqual(before.pods.map((p) => p.uid));
  });

  it("writes every pod with its IP and node to the file store, and follows add/remove", async () => {
    const state = readState(name);
    const podsInStore = () =>
      readdirSync(state.storeDir)
        .filter((f) => f.startsWith("pod."))
        .map((f) => parse(readFileSync(join(state.storeDir, f), "utf8")));
    const store = podsInStore();
    expect(store).toHaveLength(4);
    for (const p of state.pods) {
      const obj = store.find((o) => o.metadata.name === p.name);
      expect(obj?.status.podIP).toBe(p.ip);
      expect(obj?.spec.nodeName).toBe(`${name}-node${p.node}`);
    }
    await weftOk(["cluster", "add-pod", "--name", name, "extra", "-n", "shop", "--node", "1", "-l", "app=web", "--service-account", "web"]);
    await weftOk(["cluster", "add-service", "--name", name, "web", "-n", "shop", "-p", "80:8080/http", "-s", "app=web"]);
    const added = podsInStore().find((o) => o.metadata.name === "extra");
    expect(added?.metadata.namespace).toBe("shop");
    expect(added?.spec.serviceAccountName).toBe("web");
    const slice = parse(readFileSync(join(state.storeDir, "endpointslice.shop.web-weft.yaml"), "utf8"));
    expect(slice.endpoints.map((e: { addresses: string[] }) => e.addresses[0])).toEqual([added?.status.podIP]);

    await weftOk(["cluster", "remove-pod", "--name", name, "extra", "-n", "shop"]);
    expect(podsInStore().some((o) => o.metadata.name === "extra")).toBe(false);
    expect(parse(readFileSync(join(state.storeDir, "endpointslice.shop.web-weft.yaml"), "utf8")).endpoints).toEqual([]);
    expect(readState(name).pods.some((p) => p.name === "extra")).toBe(false);
  });
});

describePrivileged("local cluster: teardown", () => {
  const name = testClusterName("d");
  afterAll(async () => {
    await forceDown(name);
  });

  it("down after up leaves no netns, cgroups, links or processes", async () => {
    await forceDown(name);
    await weftOk(["cluster", "up", "--name", name, "--nodes", "2", "--pods-per-node", "2"]);
    const pid = await startEcho(name, "n1-p2", 7001);
    const state = readState(name);
    const rec = state.processes.find((p) => p.pid === pid);
    expect(rec && isSameProcess(rec.pid, rec.startTime)).toBe(true);
    expect(leftovers(name).length).toBeGreaterThan(0);

    await weftOk(["cluster", "down", "--name", name]);
    expect(leftovers(name)).toEqual([]);
    expect(isSameProcess(rec?.pid as number, rec?.startTime as string)).toBe(false);
  });

  it("down after a SIGKILLed up cleans everything, and a new up then works", async () => {
    await forceDown(name);
    const up = weftSpawn(["cluster", "up", "--name", name, "--nodes", "3", "--pods-per-node", "30"]);
    const exited = new Promise((r) => up.on("exit", r));
    // Kill it mid-way: once some pod netns exist but (very likely) not all 90.
    await waitFor("pods being created", () => leftovers(name).filter((l) => l.startsWith(`${name}-pod-`)).length >= 3, 30_000, 5);
    up.kill("SIGKILL");
    await exited;
    expect(leftovers(name).length).toBeGreaterThan(0);
    const again = await weft(["cluster", "up", "--name", name]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/cluster down/);

    await weftOk(["cluster", "down", "--name", name]);
    expect(leftovers(name)).toEqual([]);

    await weftOk(["cluster", "up", "--name", name, "--nodes", "1", "--pods-per-node", "1"]);
    expect(readState(name).pods).toHaveLength(1);
    await weftOk(["cluster", "down", "--name", name]);
    expect(leftovers(name)).toEqual([]);
  });
});
