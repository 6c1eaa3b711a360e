import { describe, expect, it } from "vitest";
import { contains, intToIp, ipToInt, overlaps, parseCidr } from "../../scripts/cluster/ip.js";
import { DEFAULT_SPEC, Topology, validateSpec } from "../../scripts/cluster/topology.js";

describe("ip arithmetic", () => {
  it("round-trips addresses and rejects bad ones with the text", () => {
    expect(intToIp(ipToInt("10.244.1.2"))).toBe("10.244.1.2");
    expect(ipToInt("255.255.255.255")).toBe(0xffffffff);
    expect(() => ipToInt("10.0.0.256")).toThrow(/'10.0.0.256' is not an IPv4 address/);
    expect(() => parseCidr("10.0.0.1/24")).toThrow(/host bits set; did you mean 10.0.0.0\/24/);
  });
  it("detects overlap and containment", () => {
    expect(overlaps(parseCidr("10.244.0.0/16"), parseCidr("10.244.3.0/24"))).toBe(true);
    expect(overlaps(parseCidr("10.244.0.0/16"), parseCidr("10.96.0.0/16"))).toBe(false);
    expect(contains(parseCidr("10.96.0.0/16"), "10.96.3.4")).toBe(true);
    expect(contains(parseCidr("10.96.0.0/16"), "10.97.0.1")).toBe(false);
  });
});

describe("cluster topology", () => {
  const t = new Topology(DEFAULT_SPEC);
  it.each([
    ["fabric netns", t.fabricNetns, "weft-fabric"],
    ["fabric ip", t.fabricIp, "10.250.0.1"],
    ["node name", t.nodeName(2), "weft-node2"],
    ["node ip", t.nodeIp(2), "10.250.0.12"],
    ["pod cidr", t.podCidrOf(3), "10.244.3.0/24"],
    ["gateway", t.podGateway(1), "10.244.1.1"],
    ["pod ip", t.podIp(1, 2), "10.244.1.2"],
    ["pod netns", t.podNetns("shop", "web-1"), "weft-pod-shop.web-1"],
    ["pod parent cgroup", t.podParentCgroup(1), "weft/node1/pods"],
    ["system cgroup", t.systemCgroup(1), "weft/node1/system"],
    ["vip", t.serviceVip(0), "10.96.0.10"],
  ])("%s", (_what, got, want) => {
    expect(got).toBe(want);
  });

  it("owns only its own netns names", () => {
    expect(t.ownsNetns("weft-fabric")).toBe(true);
    expect(t.ownsNetns("weft-node12")).toBe(true);
    expect(t.ownsNetns("weft-pod-default.a")).toBe(true);
    expect(t.ownsNetns("weft-t1-fabric")).toBe(false);
    expect(t.ownsNetns("weft-t1-node1")).toBe(false);
    expect(new Topology({ ...DEFAULT_SPEC, name: "weft-t1" }).ownsNetns("weft-fabric")).toBe(false);
  });

  it("validates specs, naming each bad field", () => {
    expect(validateSpec(DEFAULT_SPEC)).toEqual([]);
    const errs = validateSpec({ ...DEFAULT_SPEC, name: "weft-pod", nodes: 0, podCidr: "10.244.0.0/24", serviceCidr: "10.250.0.0/16" });
    expect(errs.join("\n")).toMatch(/name 'weft-pod'/);
    expect(errs.join("\n")).toMatch(/nodes 0/);
    expect(errs.join("\n")).toMatch(/pod-cidr '10.244.0.0\/24': must be a \/16/);
    expect(errs.join("\n")).toMatch(/address clash: node-cidr 10.250.0.0\/24 overlaps service-cidr/);
  });
});
