import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { UpstreamOutcome } from "../../agent/proxy/l7/outcome.js";
import { backoffMs, ISTIO_DEFAULT_RETRY, retriable } from "../../agent/proxy/l7/retry.js";

const res = (status: number, grpcStatus?: number): UpstreamOutcome =>
  grpcStatus === undefined ? { kind: "response", status } : { kind: "response", status, grpcStatus };
const policy = (retryOn: string, attempts = 3) => ({ attempts, retryOn: retryOn.split(",") });

describe("retriable", () => {
  it.each([
    ["5xx", res(500), true],
    ["5xx", res(503), true],
    ["5xx", res(499), false],
    ["5xx", { kind: "connect-failure" }, true],
    ["5xx", { kind: "reset" }, true],
    ["5xx", { kind: "timeout" }, true],
    ["5xx", { kind: "refused-stream" }, true],
    ["gateway-error", res(502), true],
    ["gateway-error", res(504), true],
    ["gateway-error", res(500), false],
    ["gateway-error", { kind: "reset" }, true],
    ["reset", { kind: "reset" }, true],
    ["reset", { kind: "connect-failure" }, true],
    ["reset", res(503), false],
    ["connect-failure", { kind: "connect-failure" }, true],
    ["connect-failure", { kind: "reset" }, false],
    ["connect-failure", res(503), false],
    ["refused-stream", { kind: "refused-stream" }, true],
    ["refused-stream", { kind: "reset" }, false],
    ["retriable-4xx", res(409), true],
    ["retriable-4xx", res(404), false],
    ["retriable-status-codes,418", res(418), true],
    ["retriable-status-codes,418", res(419), false],
    ["429", res(429), true],
    ["retriable-status-codes", res(503), false],
    ["unavailable", res(200, 14), true],
    ["unavailable", res(200, 13), false],
    ["cancelled", res(200, 1), true],
    ["deadline-exceeded", res(200, 4), true],
    ["internal", res(200, 13), true],
    ["resource-exhausted", res(200, 8), true],
    ["unavailable", res(503), false],
    ["unavailable", { kind: "reset" }, false],
    ["envoy-ratelimited", res(429), false],
    ["bogus", res(500), false],
    [" 5XX ", res(500), true],
    ["", res(500), false],
  ] as [string, UpstreamOutcome, boolean][])("retryOn %j, %j → %s", (on, outcome, want) => {
    expect(retriable(policy(on), outcome)).toBe(want);
  });

  it("attempts 0 never retries", () => {
    expect(retriable(policy("5xx", 0), res(500))).toBe(false);
  });

  it("Istio's default retries connect failures, refused streams, 503 and gRPC unavailable/cancelled only", () => {
    expect(ISTIO_DEFAULT_RETRY.attempts).toBe(2);
    for (const o of [{ kind: "connect-failure" }, { kind: "refused-stream" }, res(503), res(200, 14), res(200, 1)] as UpstreamOutcome[])
      expect(retriable(ISTIO_DEFAULT_RETRY, o)).toBe(true);
    for (const o of [{ kind: "reset" }, { kind: "timeout" }, res(500), res(502), res(200, 13)] as UpstreamOutcome[])
      expect(retriable(ISTIO_DEFAULT_RETRY, o)).toBe(false);
  });
});

describe("backoffMs", () => {
  it("is fully jittered up to (2^n − 1)·base, capped at max (Envoy: 25 ms base, 250 ms max)", () => {
    const top = () => 0.999999;
    expect([1, 2, 3, 4, 10].map((n) => backoffMs(n, top))).toEqual([24, 74, 174, 249, 249]);
    expect(backoffMs(3, () => 0)).toBe(0);
    expect(backoffMs(2, () => 0.5, 100, 1000)).toBe(150);
  });

  it("always lies in [0, min(max, (2^n−1)·base)) (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 10_000 }),
        (n, r, base, max) => {
          const v = backoffMs(n, () => r, base, max);
          expect(v).toBeGreaterThanOrEqual(0);
          expect(v).toBeLessThan(Math.max(1, Math.min(max, (2 ** Math.min(n, 31) - 1) * base)));
          expect(Number.isInteger(v)).toBe(true);
        },
      ),
    );
  });
});
