import { describe, expect, it } from "vitest";
import type { UpstreamOutcome } from "../../agent/proxy/l7/outcome.js";
import { OutlierDetector, OutlierRegistry } from "../../agent/proxy/l7/outlier.js";
import type { Endpoint, OutlierDetection } from "../../controller/api/model.js";

const eps = (n: number): Endpoint[] =>
  Array.from({ length: n }, (_, i) => ({ workloadUid: `u${i}`, address: `10.244.1.${i + 1}`, ready: true }));
const s500: UpstreamOutcome = { kind: "response", status: 500 };
const s503: UpstreamOutcome = { kind: "response", status: 503 };

function setup(settings: OutlierDetection, n = 3) {
  let t = 1_000_000;
  const clock = { advance: (ms: number) => (t += ms) };
  const d = new OutlierDetector(settings, () => t);
  const list = eps(n);
  d.healthy(list);
  const fail = (address: string, times: number, outcome: UpstreamOutcome = s500) => {
    for (let i = 0; i < times; i++) d.record(address, outcome);
  };
  const healthyAddrs = () => d.healthy(list).map((e) => e.address);
  return { d, list, clock, fail, healthyAddrs };
}

const A = "10.244.1.1";
const B = "10.244.1.2";
const C = "10.244.1.3";

describe("OutlierDetector", () => {
  it("ejects 1 of 3 after N consecutive 5xx, keeps it out for baseEjectionTime, then returns it", () => {
    const { d, clock, fail, healthyAddrs } = setup({ consecutive5xxErrors: 3, baseEjectionTimeMs: 30_000, maxEjectionPercent: 100 });
    fail(A, 2);
    expect(d.ejected(A)).toBe(false);
    fail(A, 1);
    expect(d.ejected(A)).toBe(true);
    expect(healthyAddrs()).toEqual([B, C]);
    clock.advance(29_999);
    expect(healthyAddrs()).toEqual([B, C]);
    clock.advance(1);
    expect(healthyAddrs()).toEqual([A, B, C]);
    expect(d.stats().find((s) => s.address === A)).toMatchObject({ ejected: false, ejections: 1 });
  });

  it("a second ejection in a row lasts twice as long, and the multiplier decays while healthy", () => {
    const { d, clock, fail } = setup({ consecutive5xxErrors: 2, baseEjectionTimeMs: 10_000, intervalMs: 5_000, maxEjectionPercent: 100 });
    fail(A, 2);
    clock.advance(10_000);
    expect(d.ejected(A)).toBe(false);
    fail(A, 2);
    expect(d.ejected(A)).toBe(true);
    clock.advance(19_999);
    expect(d.ejected(A)).toBe(true);
    clock.advance(1);
    expect(d.ejected(A)).toBe(false);
    // Two intervals in service take the multiplier from 2 back to 0: the next ejection is base again.
    clock.advance(10_000);
    fail(A, 2);
    clock.advance(10_000);
    expect(d.ejected(A)).toBe(false);
  });

  it("defaults: 5 consecutive 5xx, 30 s ejection", () => {
    const { d, clock, fail } = setup({}, 2);
    fail(A, 4);
    expect(d.ejected(A)).toBe(false);
    fail(A, 1);
    expect(d.ejected(A)).toBe(true);
    clock.advance(30_000);
    expect(d.ejected(A)).toBe(false);
  });

  it("a success resets the consecutive counters", () => {
    const { d, fail } = setup({ consecutive5xxErrors: 3, consecutiveGatewayErrors: 3, maxEjectionPercent: 100 });
    fail(A, 2, s503);
    expect(d.stats().find((s) => s.address === A)).toMatchObject({ consecutive5xx: 2, consecutiveGateway: 2 });
    d.record(A, { kind: "response", status: 404 });
    expect(d.stats().find((s) => s.address === A)).toMatchObject({ consecutive5xx: 0, consecutiveGateway: 0 });
    fail(A, 2, s503);
    expect(d.ejected(A)).toBe(false);
  });

  it("consecutive5xxErrors 0 disables 5xx ejection; gateway errors eject on their own threshold", () => {
    const { d, fail } = setup({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 2, maxEjectionPercent: 100 });
    fail(A, 10, s500);
    expect(d.ejected(A)).toBe(false);
    fail(B, 1, s503);
    d.record(B, { kind: "response", status: 500 });
    fail(B, 1, s503);
    expect(d.ejected(B)).toBe(false); // a non-gateway 5xx broke the run
    fail(B, 1, { kind: "response", status: 504 });
    expect(d.ejected(B)).toBe(true);
  });

  it.each([
    ["connect failure", { kind: "connect-failure" }],
    ["reset", { kind: "reset" }],
    ["timeout", { kind: "timeout" }],
    ["refused stream", { kind: "refused-stream" }],
  ] as [string, UpstreamOutcome][])("%s counts as a gateway error (not split)", (_n, outcome) => {
    const { d, fail } = setup({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 2, maxEjectionPercent: 100 });
    fail(A, 2, outcome);
    expect(d.ejected(A)).toBe(true);
  });

  it("consecutiveLocalOriginFailures splits local failures from 5xx", () => {
    const { d, fail } = setup({ consecutive5xxErrors: 2, consecutiveLocalOriginFailures: 3, maxEjectionPercent: 100 });
    fail(A, 2, { kind: "connect-failure" });
    expect(d.ejected(A)).toBe(false);
    expect(d.stats().find((s) => s.address === A)?.consecutive5xx).toBe(0);
    fail(A, 1, { kind: "reset" });
    expect(d.ejected(A)).toBe(true);
  });

  it("respects maxEjectionPercent, but one endpoint may always be ejected", () => {
    const { fail, healthyAddrs } = setup({ consecutive5xxErrors: 1, maxEjectionPercent: 10 }, 3);
    fail(A, 1);
    fail(B, 1);
    fail(C, 1);
    expect(healthyAddrs()).toEqual([B, C]);
    const half = setup({ consecutive5xxErrors: 1, maxEjectionPercent: 50 }, 4);
    for (const a of half.list) half.fail(a.address, 1);
    expect(half.healthyAddrs()).toHaveLength(2);
  });

  it("maxEjectionPercent 0 still ejects one (Envoy before always_eject_one_host), and a refused ejection restarts the count", () => {
    const { d, fail } = setup({ consecutive5xxErrors: 2, maxEjectionPercent: 0 });
    fail(A, 2);
    fail(B, 3);
    expect(d.ejected(A)).toBe(true);
    expect(d.ejected(B)).toBe(false);
    expect(d.stats().find((s) => s.address === B)?.consecutive5xx).toBe(1);
  });

  it("minHealthPercent: below it every endpoint is used (panic)", () => {
    const { fail, healthyAddrs } = setup({ consecutive5xxErrors: 1, maxEjectionPercent: 100, minHealthPercent: 50 }, 4);
    fail(A, 1);
    expect(healthyAddrs()).toEqual(["10.244.1.2", "10.244.1.3", "10.244.1.4"]);
    fail(B, 1);
    expect(healthyAddrs()).toHaveLength(2); // 50 % healthy: not below
    fail(C, 1);
    expect(healthyAddrs()).toHaveLength(4);
  });

  it("with minHealthPercent 0 (Istio's default) all endpoints may be ejected", () => {
    const { fail, healthyAddrs } = setup({ consecutive5xxErrors: 1, maxEjectionPercent: 100 }, 1);
    fail(A, 1);
    expect(healthyAddrs()).toEqual([]);
  });

  it("returns the same array when nothing is ejected, and forgets endpoints that left", () => {
    const { d, list, fail } = setup({ consecutive5xxErrors: 5 });
    expect(d.healthy(list)).toBe(list);
    fail(C, 2);
    d.healthy(list.slice(0, 2));
    expect(d.stats().map((s) => s.address)).not.toContain(C);
  });
});

describe("OutlierRegistry", () => {
  it("has a detector only while settings exist, and keeps ejections across a settings change", () => {
    const r = new OutlierRegistry(() => 5);
    expect(r.forCluster("k", undefined)).toBeUndefined();
    const d = r.forCluster("k", { consecutive5xxErrors: 1, maxEjectionPercent: 100 }) as OutlierDetector;
    d.record(A, s500);
    const same = r.forCluster("k", { consecutive5xxErrors: 2, maxEjectionPercent: 100 });
    expect(same).toBe(d);
    expect(same?.ejected(A)).toBe(true);
    expect(r.forCluster("k", undefined)).toBeUndefined();
    expect(r.forCluster("k", { consecutive5xxErrors: 1 })?.ejected(A)).toBe(false);
  });
});
