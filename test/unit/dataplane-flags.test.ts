import { describe, expect, it } from "vitest";
import { dataPlaneConfig } from "../../agent/config-dataplane.js";

describe("data-plane flags: --same-node-splice", () => {
  it("defaults to the kernel splice and accepts proxy", () => {
    const errors: string[] = [];
    expect(dataPlaneConfig({ proxyAddress: "10.244.1.1" }, errors)?.sameNodeSplice).toBe("kernel");
    expect(dataPlaneConfig({ proxyAddress: "10.244.1.1", sameNodeSplice: "proxy" }, errors)?.sameNodeSplice).toBe("proxy");
    expect(errors).toEqual([]);
  });

  it("refuses anything else, naming the flag, the value and the choices", () => {
    const errors: string[] = [];
    dataPlaneConfig({ proxyAddress: "10.244.1.1", sameNodeSplice: "sockmap" }, errors);
    expect(errors).toEqual(["--same-node-splice 'sockmap': expected kernel or proxy"]);
  });
});
