/**
 * The outbound proxy acts only for enrolled pods of its node (issue 13 item 6), checked by the
 * proxy itself and not only by capture: on a 2-node netns cluster, a pod outside the mesh (its
 * namespace not enrolled, or opted out by label) that dials the node proxy's 15001 directly is
 * refused, counted under a WEFT_ code and logged, and never tunnelled under any identity; so is one
 * whose connect is captured although the agent's view says it is outside the mesh (a stale capture
 * entry, made here by writing the capture map directly). An enrolled pod's connections keep working.
 */
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { MAP, POD_CAPTURE, podCodec, podKeyCodec } from "../../agent/redirect/abi.js";
import { PORT_OUTBOUND } from "../../controller/api/constants.js";
import { BpfMap } from "../../native/bpf-map.js";
import { cgroupId, cgroupPath } from "../../native/cgroup.js";
import { requireState } from "../../scripts/cluster/cluster.js";
import { Topology } from "../../scripts/cluster/topology.js";
import { forceDown } from "../helpers/cluster.js";
import { agentLog, counterSum, meshUp, metrics, podIp, probe, probeServer, vip } from "../helpers/mesh.js";
import { describePrivileged } from "../helpers/privileged.js";
import { waitFor } from "../helpers/wait.js";
import { testClusterName } from "../helpers/weft.js";

const C = testClusterName("src");

const READY_MS = 15_000;
type ConnectResult = { ok: boolean; reply?: string; code?: string };

describePrivileged("the outbound proxy refuses sources outside the mesh (2 nodes)", () => {
  /** idleMs: short where a refusal is expected; long (READY_MS) where an answer is, as a busy machine is slow. */
  const connect = (from: string, host: string, port: number, idleMs = 3000) =>
    probe<ConnectResult>(C, from, ["connect", host, String(port), "hello", String(idleMs)]);
  const notCaptured = async () =>
    counterSum(await metrics(C, 1), "weft_connection_errors_total", { reporter: "source", code: "WEFT_NOT_CAPTURED" });

  beforeAll(async () => {
    await meshUp(
      C,
      [
        { ns: "app", name: "client", node: 1 },
        { ns: "app", name: "server", node: 2, labels: { app: "server" } },
        { ns: "app", name: "optout", node: 1, labels: { app: "optout", "weft.dev/mesh": "disabled" } },
        { ns: "legacy", name: "outsider", node: 1 },
      ],
      ["app"],
      [{ ns: "app", name: "server", port: 80, targetPort: 8080, selector: { app: "server" } }],
    );
    await probeServer(C, "app/server", "whoami-server", 8080);
    await waitFor(
      "server reachable through the mesh",
      async () => (await connect("app/client", vip(C, "app", "server"), 80)).ok,
      10_000,
      100,
    );
  });

  afterAll(async () => {
    await forceDown(C);
  });

  it.each(["legacy/outsider", "app/optout"])("%s dialling the node proxy's 15001 directly is refused, counted and logged", async (from) => {
    const gateway = new Topology(requireState(C).spec).podGateway(1);
    const [ns, name] = from.split("/") as [string, string];
    const ip = podIp(C, ns, name);
    const before = await notCaptured();

    const r = await connect(from, gateway, PORT_OUTBOUND);
    expect(r.ok, JSON.stringify(r)).toBe(false);
    expect(r.reply ?? "").toBe("");

    await waitFor("the refusal counted", async () => (await notCaptured()) > before, 5000, 50);
    const lines = agentLog(C, 1).filter((l) => typeof l["src.addr"] === "string" && (l["src.addr"] as string).startsWith(`${ip}:`));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) {
      // Every connection the proxy saw from this pod was a refusal: none was carried, none under an identity.
      expect(l).toMatchObject({ direction: "outbound", mode: "reject", error_code: "WEFT_NOT_CAPTURED" });
      expect(l["src.identity"]).toBeUndefined();
      expect(l.hbone_peer).toBeUndefined();
    }
  });

  it("a pod outside the mesh whose connect is captured anyway (a stale capture entry) is refused by the proxy, not tunnelled", async () => {
    // Put the outsider's cgroup in the capture map behind the agent's back, as a stale entry
    // would be: capture now says yes, the agent's view says it is no mesh pod.
    const outsider = requireState(C).pods.find((p) => p.namespace === "legacy" && p.name === "outsider");
    if (!outsider) throw new Error("no pod legacy/outsider");
    const key = cgroupId(cgroupPath(outsider.cgroup));
    const pods = BpfMap.openPinned(join("/sys/fs/bpf", `${C}-node1`, MAP.pods));
    const refused = async () =>
      counterSum(await metrics(C, 1), "weft_connection_errors_total", { reporter: "source", code: "WEFT_SOURCE_NOT_IN_MESH" });
    const before = await refused();
    try {
      pods.update(podKeyCodec, podCodec, key, { flags: POD_CAPTURE, ip4: outsider.ip });
      const r = await connect("legacy/outsider", podIp(C, "app", "server"), 8080);
      expect(r.ok, JSON.stringify(r)).toBe(false);
      await waitFor("the refusal counted", async () => (await refused()) > before, 5000, 50);
      const line = agentLog(C, 1).find((l) => l.error_code === "WEFT_SOURCE_NOT_IN_MESH");
      expect(line).toMatchObject({ direction: "outbound", mode: "reject", "src.workload": "legacy/outsider" });
      expect(line?.["src.identity"]).toBeUndefined();
      expect(String(line?.error)).toMatch(/legacy\/outsider .* is not enrolled in the mesh/);
    } finally {
      pods.delete(podKeyCodec, key);
      pods.close();
    }
    // Without the stale entry its connections are its own again.
    expect((await connect("legacy/outsider", podIp(C, "app", "server"), 8080, READY_MS)).ok).toBe(true);
  });

  it("the same pods still reach the server without the mesh, and the enrolled client through it", async () => {
    // Outside the mesh is not cut off: their own connections are simply not captured (PERMISSIVE default).
    expect((await connect("legacy/outsider", podIp(C, "app", "server"), 8080, READY_MS)).ok).toBe(true);
    const seen = await connect("app/client", vip(C, "app", "server"), 80, READY_MS);
    expect(seen.ok, JSON.stringify(seen)).toBe(true);
  });
});
