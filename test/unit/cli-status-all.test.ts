import { describe, expect, it } from "vitest";
import type { AgentStatus } from "../../agent/cli/status.js";
import { type ControllerStatus, driftRows, renderDrift } from "../../agent/cli/status-all.js";

function agent(node: string, over: Partial<AgentStatus> = {}, xds: Record<string, unknown> = { state: "connected" }): AgentStatus {
  return {
    node,
    version: "1",
    uptimeSeconds: 5,
    source: "controller",
    synced: true,
    revision: 3,
    appliedVersions: { Workload: "e-7", Service: "e-12", AuthorizationPolicy: "e-9" },
    counts: {},
    ready: { ready: true, reasons: [] },
    components: {
      xds: xds as AgentStatus["components"]["xds"],
      identity: [
        { identity: "a", state: "valid", notAfter: "2026-12-01T00:00:00.000Z" },
        { identity: "b", state: "valid", notAfter: "2026-11-30T12:00:00.000Z" },
      ] as unknown as AgentStatus["components"]["identity"],
    },
    ...over,
  };
}

const stream = (
  node: string,
  types: ControllerStatus["xds"]["agents"][number]["types"],
  nacks: { type: string; at: string; message: string }[] = [],
) => ({
  node,
  connectedAt: "2026-11-30T00:00:00.000Z",
  lastAckAt: "2026-11-30T06:00:00.000Z",
  types,
  nacks,
});

describe("weft status --all: drift verdicts", () => {
  const controller: ControllerStatus = {
    xds: {
      systemVersion: "e-12",
      agents: [
        stream("n1", { Workload: { ackedVersion: "e-12", pending: false } }),
        stream("n2", { Workload: { ackedVersion: "e-7", pending: true, pendingMs: 4000, pendingVersion: "e-12" } }),
        stream("n3", { Workload: { ackedVersion: "e-12", pending: false } }, [
          { type: "Service", at: "2026-11-30T06:00:01.000Z", message: "bad port" },
        ]),
        stream("n5", { Workload: { ackedVersion: "e-7", pending: true, pendingMs: 9000, pendingVersion: "e-12" } }),
      ],
    },
  };
  const rows = driftRows(
    [
      { address: "s1", node: "n1", status: agent("n1") },
      { address: "s2", node: "n2", status: agent("n2") },
      { address: "s3", node: "n3", status: agent("n3") },
      { address: "s4", node: "n4", status: agent("n4", {}, { state: "backoff" }) },
      { address: "s5", node: "n5", error: "no answer within 1000 ms" },
      { address: "s6", node: "n6", error: "connection refused" },
    ],
    controller,
    2000,
  );
  const by = new Map(rows.map((r) => [r.node, r]));

  it("an agent in step is ok, with its newest version, earliest certificate expiry and last ACK", () => {
    expect(by.get("n1")).toMatchObject({ verdict: "ok", configVersion: "e-12", certExpiry: "2026-11-30T12:00:00.000Z", certificates: 2 });
    expect(by.get("n1")?.lastAck).toBe("2026-11-30T06:00:00.000Z");
  });

  it("a push unanswered longer than the lag threshold flags the agent as lagging, naming the push", () => {
    expect(by.get("n2")?.verdict).toBe("LAGGING");
    expect(by.get("n2")?.why.join()).toContain("Workload push e-12 unanswered for 4s");
    const lenient = driftRows([{ address: "s2", node: "n2", status: agent("n2") }], controller, 5000);
    expect(lenient[0]?.verdict).toBe("ok");
  });

  it("a NACK newer than the last ACK is a rejection with its reason", () => {
    expect(by.get("n3")).toMatchObject({ verdict: "REJECTED", lastNack: { type: "Service", reason: "bad port" } });
  });

  it("an agent the controller does not see is lagging (serving its last config)", () => {
    expect(by.get("n4")?.verdict).toBe("LAGGING");
    expect(by.get("n4")?.why[0]).toContain("not connected");
  });

  it("an agent that does not answer is lagging when the controller waits on it, else unreachable", () => {
    expect(by.get("n5")?.verdict).toBe("LAGGING");
    expect(by.get("n6")?.verdict).toBe("UNREACHABLE");
  });

  it("renders one row per agent and a line per problem", () => {
    const text = renderDrift(
      { controller: { socket: "/c.sock", systemVersion: "e-12" }, agents: rows },
      Date.parse("2026-11-30T06:00:05Z"),
    );
    const lines = text.split("\n");
    expect(lines[0]).toContain("current config e-12");
    for (const r of rows) expect(lines.some((l) => l.startsWith(r.node) && l.includes(r.verdict))).toBe(true);
    expect(text).toContain("n3: rejected Service: bad port");
  });
});
