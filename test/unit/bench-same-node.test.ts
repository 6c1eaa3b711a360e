import { describe, expect, it } from "vitest";
import { runs, tableSpecs } from "../../bench/lib/http-tables.js";
import { kernelSplicedCount } from "../../bench/variants/weft.js";

describe("bench: the same-node rows", () => {
  it("two tables (keep-alive c=1 and c=50), the same-node variants beside direct and the HAProxy pair", () => {
    const t = tableSpecs().filter((s) => s.variants.includes("weft-same-node"));
    expect(t.map((s) => s.scenario.id)).toEqual(["c1", "c50"]);
    for (const s of t) {
      expect(s.variants).toEqual(["direct", "direct-same-node", "haproxy", "weft-same-node"]);
      expect(s.baselines).toContain("haproxy");
      expect(s.baselines).toContain("direct-same-node");
    }
    // Only the same-node tables show them: the cross-node L4 table stays as it was.
    expect(tableSpecs().filter((s) => s.variants.includes("direct-same-node"))).toHaveLength(2);
  });

  it("the same-node variants run keep-alive only, never the new-connection scenario", () => {
    for (const v of ["weft-same-node", "direct-same-node"] as const) {
      expect(runs({ id: "c1" }, v)).toBe(true);
      expect(runs({ id: "c50" }, v)).toBe(true);
      expect(runs({ id: "conn" }, v)).toBe(false);
    }
    expect(runs({ id: "conn" }, "weft")).toBe(true);
  });

  it("reads the kernel-carried count from an agent's metrics, ignoring the proxy-carried one", () => {
    const text = [
      "# HELP weft_same_node_connections_total x",
      'weft_same_node_connections_total{carrier="proxy"} 7',
      'weft_same_node_connections_total{carrier="kernel"} 12',
      "istio_tcp_connections_opened_total 3",
    ].join("\n");
    expect(kernelSplicedCount(text)).toBe(12);
    expect(kernelSplicedCount("")).toBe(0);
  });
});
