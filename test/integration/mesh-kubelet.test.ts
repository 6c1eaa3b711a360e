/**
 * The mesh on nodes laid out like the kubelet's systemd driver with containerd: pods' processes in
 * `kubepods.slice/[kubepods-burstable.slice/]kubepods-[burstable-]pod<uid>.slice/cri-containerd-
 * <id>.scope`, the agents told `--cgroup-layout kubelet` and finding each pod by uid. Capture,
 * tunnels between nodes, same-node delivery, STRICT and authorization work as in the local layout.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { cgroupPath } from "../../native/cgroup.js";
import { requireState } from "../../scripts/cluster/cluster.js";
import { forceDown } from "../helpers/cluster.js";
import { agentLog, meshUp, podIp, probe, probeServer, seenBy, vip } from "../helpers/mesh.js";
import { describePrivileged } from "../helpers/privileged.js";
import { waitFor } from "../helpers/wait.js";
import { testClusterName, weftOk } from "../helpers/weft.js";

const C = testClusterName("k");

describePrivileged("the mesh on kubelet-style nodes (systemd cgroup driver, containerd scopes)", () => {
  beforeAll(async () => {
    await meshUp(
      C,
      [
        { ns: "app", name: "client", node: 1 },
        { ns: "app", name: "server", node: 2, labels: { app: "server" } },
        { ns: "app", name: "local", node: 1, labels: { app: "local" } },
        { ns: "legacy", name: "outsider", node: 1 },
      ],
      ["app"],
      [{ ns: "app", name: "server", port: 80, targetPort: 8080, selector: { app: "server" } }],
      { cgroupLayout: "kubelet-systemd" },
    );
    for (const pod of ["app/server", "app/local"]) await probeServer(C, pod, "whoami-server", 8080);
    await waitFor("servers listening", async () => (await seenBy(C, "legacy/outsider", podIp(C, "app", "local"), 8080)) !== "", 10_000);
  });

  afterAll(async () => {
    await forceDown(C);
  });

  it("lays pods out exactly as the kubelet does, at both QoS depths", () => {
    const pods = requireState(C).pods;
    const shape =
      /\/node\d\/kubepods\.slice\/(kubepods-pod[0-9a-f_]{36}\.slice|kubepods-burstable\.slice\/kubepods-burstable-pod[0-9a-f_]{36}\.slice)\/cri-containerd-[0-9a-f]{64}\.scope$/;
    for (const p of pods) {
      expect(p.cgroup).toMatch(shape);
      expect(p.cgroup).toContain(p.uid.replace(/-/g, "_"));
      expect(existsSync(cgroupPath(p.cgroup))).toBe(true);
    }
  });

  it("captures a pod's connection from its container scope and tunnels it to the other node", async () => {
    const server = podIp(C, "app", "server");
    // The proxies deliver from the client's own address (source preserved); that the connect was
    // captured and tunnelled shows in both agents' access logs below.
    expect(await seenBy(C, "app/client", server, 8080)).toBe(podIp(C, "app", "client"));
    expect(await seenBy(C, "app/client", vip(C, "app", "server"), 80)).toBe(podIp(C, "app", "client"));
    const client = "spiffe://cluster.local/ns/app/sa/client";
    const has = (n: number, direction: string) =>
      agentLog(C, n).some((l) => l.msg === "connection complete" && l.direction === direction && l["src.identity"] === client);
    await waitFor("access log lines on both nodes", () => has(1, "outbound") && has(2, "inbound"), 5000);
  });

  it("delivers same-node through the proxy and leaves pods outside the mesh alone", async () => {
    expect(await seenBy(C, "app/client", podIp(C, "app", "local"), 8080)).toBe(podIp(C, "app", "client"));
    const client = "spiffe://cluster.local/ns/app/sa/client";
    await waitFor(
      "a same-node connection in node 1's access log",
      () => agentLog(C, 1).some((l) => l.msg === "connection complete" && l.mode === "same-node" && l["src.identity"] === client),
      5000,
    );
    expect(await seenBy(C, "legacy/outsider", podIp(C, "app", "local"), 8080)).toBe(podIp(C, "legacy", "outsider"));
  });

  it("applies STRICT and authorization to pods found by uid", async () => {
    const dir = mkdtempSync(join(tmpdir(), "weft-kubelet-"));
    const strict = join(dir, "strict.yaml");
    const deny = join(dir, "deny.yaml");
    writeFileSync(
      strict,
      "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: strict\n  namespace: app\nspec:\n  mtls:\n    mode: STRICT\n",
    );
    writeFileSync(
      deny,
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: deny-client\n  namespace: app\nspec:\n  selector:\n    matchLabels:\n      app: server\n  action: DENY\n  rules:\n  - from:\n    - source:\n        principals: ["cluster.local/ns/app/sa/client"]\n',
    );
    const local = podIp(C, "app", "local");
    try {
      await weftOk(["cluster", "apply", "--name", C, "-f", strict]);
      await waitFor(
        "plaintext refused",
        async () => !(await probe<{ ok: boolean }>(C, "legacy/outsider", ["connect", local, "8080", "x", "700"])).ok,
        3000,
        50,
      );
      await weftOk(["cluster", "apply", "--name", C, "-f", deny]);
      await waitFor(
        "client denied",
        async () => {
          const r = await probe<{ ok: boolean; code?: string }>(C, "app/client", ["connect", vip(C, "app", "server"), "80", "x", "2000"]);
          return !r.ok && r.code === "ECONNRESET";
        },
        3000,
        50,
      );
      expect((await probe<{ ok: boolean }>(C, "app/local", ["connect", vip(C, "app", "server"), "80", "x", "15000"])).ok).toBe(true);
    } finally {
      await weftOk(["cluster", "delete", "--name", C, "-f", deny]).catch(() => undefined);
      await weftOk(["cluster", "delete", "--name", C, "-f", strict]).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("removes a pod's whole slice when the pod goes", async () => {
    const pod = requireState(C).pods.find((p) => p.name === "outsider");
    const slice = cgroupPath(pod?.cgroup ?? "").replace(/\/cri-containerd-[0-9a-f]{64}\.scope$/, "");
    expect(existsSync(slice)).toBe(true);
    await weftOk(["cluster", "remove-pod", "--name", C, "outsider", "-n", "legacy"]);
    expect(existsSync(slice)).toBe(false);
  });
});
