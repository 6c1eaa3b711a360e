import { describe, expect, it } from "vitest";
import { serviceRules } from "../../scripts/cluster/kube-proxy.js";
import type { ClusterState, PodRecord } from "../../scripts/cluster/state.js";
import { DEFAULT_SPEC } from "../../scripts/cluster/topology.js";

const pod = (name: string, ip: string, labels: Record<string, string>, namespace = "shop"): PodRecord => ({
  namespace,
  name,
  uid: name,
  node: 1,
  ip,
  slot: 2,
  serviceAccount: "sa",
  labels,
  netns: "x",
  cgroup: "x",
  hostVeth: "weft1",
  createdAt: "t",
});

function state(pods: PodRecord[]): ClusterState {
  return {
    version: 1,
    spec: DEFAULT_SPEC,
    phase: "ready",
    createdAt: "t",
    storeDir: "/x",
    nodes: [1],
    namespaces: [],
    processes: [],
    nextVethSeq: 1,
    nextVip: 2,
    pods,
    services: [
      {
        namespace: "shop",
        name: "web",
        uid: "s",
        vip: "10.96.0.10",
        ports: [{ port: 80, targetPort: 8080, protocol: "TCP" }],
        selector: { app: "web" },
        createdAt: "t",
      },
      {
        namespace: "shop",
        name: "db",
        uid: "d",
        vip: "10.96.0.11",
        ports: [{ port: 5432, targetPort: 5432, protocol: "TCP" }],
        selector: { app: "db" },
        createdAt: "t",
      },
    ],
  };
}

describe("kube-proxy rules", () => {
  it("DNATs a VIP to its only endpoint, or spreads over several at random", () => {
    const rules = serviceRules(
      state([
        pod("a", "10.244.1.2", { app: "web" }),
        pod("b", "10.244.1.3", { app: "web" }),
        pod("c", "10.244.1.4", { app: "db" }),
        pod("x", "10.244.1.9", { app: "web" }, "other"),
      ]),
    );
    expect(rules).toContain(
      "ip daddr 10.96.0.10 tcp dport 80 dnat ip addr . port to numgen random mod 2 map { 0 : 10.244.1.2 . 8080, 1 : 10.244.1.3 . 8080 }",
    );
    expect(rules).toContain("ip daddr 10.96.0.11 tcp dport 5432 dnat ip to 10.244.1.4:5432");
    expect(rules).not.toContain("10.244.1.9");
  });
  it("replaces the table atomically and skips services without endpoints", () => {
    const rules = serviceRules(state([]));
    expect(rules.startsWith("table ip weft-svc\ndelete table ip weft-svc\n")).toBe(true);
    expect(rules).not.toContain("dnat");
  });
});
