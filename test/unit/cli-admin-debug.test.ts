import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DebugAgent, registerDebugEndpoints, type TapLine, type WorkloadInfo } from "../../agent/admin-debug.js";
import type { Explanation } from "../../agent/admin-explain.js";
import { AgentClient } from "../../agent/cli/agent-client.js";
import type { AgentConfig } from "../../agent/config.js";
import type { ConnectionEvent, ConnectionSnapshot } from "../../agent/proxy/connection-manager.js";
import type { ProxyHandle } from "../../agent/proxy/handle.js";
import type { PodRedirect } from "../../agent/redirect/types.js";
import type { MeshState } from "../../agent/state/updater.js";
import { MeshView } from "../../agent/state/view.js";
import { createWatch } from "../../agent/state/watch.js";
import { AdminServer } from "../../common/admin-server.js";
import { service, snapshot, workload } from "../helpers/mesh-fixture.js";
import { waitFor } from "../helpers/wait.js";

const N1 = "10.250.0.11";
const client = workload({ name: "client", ns: "shop", ip: "10.244.1.2", node: "node1", nodeAddress: N1 });
const stuck = workload({ name: "stuck", ns: "shop", ip: "10.244.1.3", node: "node1", nodeAddress: N1 });
const outsider = workload({ name: "outsider", ns: "legacy", ip: "10.244.1.4", node: "node1", nodeAddress: N1, enrolled: false });
const remote = workload({ name: "remote", ns: "shop", ip: "10.244.2.2", node: "node2", nodeAddress: "10.250.0.12" });
const data = snapshot("node1", [client, stuck, outsider, remote], [service("api", "shop", "10.96.0.10", 80, 8080, [remote])]);
const { watch: state, set: setState } = createWatch<MeshState>({ revision: 3, data, view: new MeshView(data), synced: true });

const listeners = new Set<(e: ConnectionEvent) => void>();
const handle: ProxyHandle = {
  workers: 0,
  start: async () => undefined,
  stop: async () => undefined,
  connections: async () => [],
  poolStats: async () => ({ outbound: [], sessionsOpened: 0, inboundSessions: 0 }),
  metrics: async () => [],
  onConnectionEvent: (l) => {
    listeners.add(l);
    return () => listeners.delete(l);
  },
  setLogLevel: () => undefined,
};
const applied: PodRedirect = {
  uid: client.uid,
  namespace: "shop",
  name: "client",
  cgroupPath: "/sys/fs/cgroup/pods/shop.client",
  ip: "10.244.1.2",
  hostInterface: "weft3",
  capture: true,
  inbound: "permissive",
};
const config = {
  node: "node1",
  source: { kind: "controller", target: "10.250.0.1:15012", tokenFile: "t", caFile: "c" },
  adminAddress: { host: "127.0.0.1", port: 15000 },
  adminSocket: "/run/weft/agent-node1.sock",
  dataPlane: {
    proxyAddress: "10.244.1.1",
    hboneAddress: N1,
    workers: 0,
    drainMs: 1000,
    metrics: null,
    readiness: null,
    capture: {
      podCgroupParent: "/sys/fs/cgroup/pods",
      layout: "local",
      proxyCgroup: "/sys/fs/cgroup/system",
      pinDir: "/sys/fs/bpf/node1",
      excluded: [],
    },
  },
} as unknown as AgentConfig;
const agent: DebugAgent = {
  config,
  updater: { state },
  identity: { status: () => [{ identity: client.identity, state: "valid", issued: 1 }] },
  proxy: { handle },
  capture: {
    redirector: { status: () => ({ attached: true, programs: [], maps: [], pods: [applied] }), excluded: () => [] },
    status: () => ({ attached: true, synced: true, desired: 2, unresolved: [{ pod: "shop/stuck", error: "cgroup not found" }] }),
  },
};

const dir = mkdtempSync(join(tmpdir(), "weft-admin-debug-"));
const socket = join(dir, "a.sock");
const admin = new AdminServer(pino({ level: "silent" }));
const c = new AgentClient({ kind: "unix", path: socket });

beforeAll(async () => {
  registerDebugEndpoints(admin, agent);
  await admin.listenUnix(socket);
});
afterAll(async () => {
  await admin.close();
  rmSync(dir, { recursive: true, force: true });
});

const conn = (src: string, dst: string | undefined): ConnectionSnapshot => ({
  id: 1,
  direction: "outbound",
  mode: "hbone",
  src: { ip: "10.244.1.2", port: 40000 },
  dst: { ip: "10.96.0.10", port: 80 },
  srcWorkload: src,
  ...(dst ? { dstWorkload: dst } : {}),
  startedAt: new Date().toISOString(),
  ageMs: 0,
  bytesReceived: 0,
  bytesSent: 0,
});

describe("/workloads", () => {
  it("says per pod whether it is in the mesh and why, and whether capture is applied", async () => {
    const r = await c.json<{ node: string; workloads: WorkloadInfo[] }>("/workloads");
    const by = new Map(r.workloads.map((w) => [`${w.namespace}/${w.name}`, w]));
    expect(by.get("shop/client")).toMatchObject({
      local: true,
      enrolled: true,
      enrolmentReason: "test fixture",
      capture: { state: "captured", guard: "permissive", hostInterface: "weft3" },
      mtls: { mode: "PERMISSIVE", source: "default" },
    });
    expect(by.get("shop/stuck")?.capture).toMatchObject({ state: "failed", error: "cgroup not found" });
    expect(by.get("legacy/outsider")?.capture).toEqual({ state: "off" });
    expect(by.get("shop/remote")).toMatchObject({ local: false, services: ["shop/api"] });
    expect(by.get("shop/remote")?.capture).toBeUndefined();
    // Local pods first.
    expect(r.workloads.at(-1)?.name).toBe("remote");
    const legacy = await c.json<{ workloads: WorkloadInfo[] }>("/workloads?namespace=legacy");
    expect(legacy.workloads.map((w) => w.name)).toEqual(["outsider"]);
  });
});

describe("/explain", () => {
  it("answers with the dry run, and with a status and message for bad requests", async () => {
    const e = await c.json<Explanation>(`/explain?src=shop/client&dst=${encodeURIComponent("10.244.2.2:8080")}`);
    expect(e).toMatchObject({ node: "node1", capture: { captured: true }, outcome: "remote" });
    await expect(c.json("/explain?src=shop/client")).rejects.toThrow(/needs \?src=<pod>&dst=<host:port>/);
    await expect(c.json("/explain?src=nope&dst=1.2.3.4:80")).rejects.toThrow(/no pod 'nope'/);
    await expect(c.json("/explain?src=shop/remote&dst=1.2.3.4:80")).rejects.toThrow(/runs on node node2/);
    const r = await c.send("GET", "/explain?src=shop/remote&dst=1.2.3.4:80");
    expect(r.status).toBe(409);
  });

  it("evaluates the destination side for another agent's explain", async () => {
    const q = new URLSearchParams({ kind: "mesh", sourceIdentity: remote.identity, sourceIp: "10.244.2.2", target: "10.244.1.2:8080" });
    expect(await c.json(`/explain/inbound?${q}`)).toMatchObject({ evaluatedBy: "node1", allowed: true, reason: "no ALLOW policy applies" });
    await expect(c.json("/explain/inbound?kind=udp&sourceIp=1.1.1.1&target=1.1.1.1:1")).rejects.toThrow(/kind 'udp'/);
    await expect(c.json("/explain/inbound?kind=mesh&sourceIp=1.1.1.1&target=1.1.1.1:1")).rejects.toThrow(/needs sourceIdentity/);
  });

  it("refuses to explain before the first config arrived", async () => {
    setState({ ...state.get(), synced: false });
    try {
      await expect(c.json("/explain?src=shop/client&dst=1.2.3.4:80")).rejects.toThrow(/has not received its mesh config yet/);
    } finally {
      setState({ ...state.get(), synced: true });
    }
  });
});

describe("/tap", () => {
  it("streams matching events only, and unsubscribes when the client goes away", async () => {
    const ctl = new AbortController();
    const lines: TapLine[] = [];
    const done = c.stream("/tap?pod=client&namespace=shop", (l) => lines.push(l as TapLine), ctl.signal);
    await waitFor("subscribed", () => listeners.size === 1 && lines.length === 1, 3000);
    expect(lines[0]).toMatchObject({ type: "start", node: "node1", filter: { pod: "client", namespace: "shop" } });
    for (const l of listeners) {
      l({ type: "open", connection: conn("shop/client", "shop/remote") });
      l({ type: "open", connection: conn("legacy/outsider", undefined) });
      l({ type: "close", connection: { ...conn("shop/other", "shop/client"), bytesSent: 5 }, responseFlags: "DENY" });
    }
    await waitFor("two events", () => lines.length === 3, 3000);
    expect(lines.slice(1).map((l) => [l.type, "connection" in l ? l.connection.srcWorkload : ""])).toEqual([
      ["open", "shop/client"],
      ["close", "shop/other"],
    ]);
    expect(lines[2]).toMatchObject({ responseFlags: "DENY", at: expect.any(String) });
    ctl.abort();
    expect(await done).toBe("aborted");
    await waitFor("unsubscribed", () => listeners.size === 0, 3000);
  });
});

describe("/runtime", () => {
  it("reports the process (CPU over a recent window, memory) and the settings that matter for troubleshooting", async () => {
    const r = await c.json<{
      pid: number;
      process: { rssBytes: number; cpu: { windowMs: number; recentPercent: number } };
      proxy: { workers: number; connections: number };
      settings: { adminSocket: string; dataPlane: { capture: { pinDir: string } } };
    }>("/runtime");
    expect(r.pid).toBe(process.pid);
    expect(r.process.rssBytes).toBeGreaterThan(1024 * 1024);
    expect(r.process.cpu.windowMs).toBeGreaterThanOrEqual(200);
    expect(r.process.cpu.recentPercent).toBeGreaterThanOrEqual(0);
    // Burn a known amount of CPU inside the next window: the reported share must account for it.
    const startedCpu = process.cpuUsage();
    const startedAt = performance.now();
    let spins = 0;
    while (cpuMs(process.cpuUsage(startedCpu)) < 600 || performance.now() - startedAt < 600) spins++;
    const burnt = cpuMs(process.cpuUsage(startedCpu));
    const busy = await c.json<{ process: { cpu: { windowMs: number; recentPercent: number } } }>("/runtime");
    expect(spins).toBeGreaterThan(0);
    expect(busy.process.cpu.windowMs).toBeGreaterThanOrEqual(500);
    // percent × window = CPU ms used in the window, which holds at least what the loop burnt.
    expect((busy.process.cpu.recentPercent / 100) * busy.process.cpu.windowMs).toBeGreaterThanOrEqual(burnt * 0.95);
    expect(r.proxy).toEqual({ workers: 0, connections: 0 });
    expect(r.settings.adminSocket).toBe("/run/weft/agent-node1.sock");
    expect(r.settings.dataPlane.capture.pinDir).toBe("/sys/fs/bpf/node1");
  });

  it("says so when there is no data plane to tap", async () => {
    const bare = new AdminServer(pino({ level: "silent" }));
    registerDebugEndpoints(bare, { ...agent, proxy: undefined, capture: undefined });
    const path = join(dir, "bare.sock");
    await bare.listenUnix(path);
    try {
      await expect(new AgentClient({ kind: "unix", path }).stream("/tap", () => undefined, new AbortController().signal)).rejects.toThrow(
        /without a data plane/,
      );
      const w = await new AgentClient({ kind: "unix", path }).json<{ workloads: WorkloadInfo[] }>("/workloads");
      expect(w.workloads.find((x) => x.name === "client")?.capture).toEqual({ state: "disabled" });
    } finally {
      await bare.close();
    }
  });
});

function cpuMs(u: NodeJS.CpuUsage): number {
  return (u.user + u.system) / 1000;
}
