import { describe, expect, it } from "vitest";
import { RateLimiter, TokenBucket } from "../../agent/proxy/l7/rate-limit.js";
import type { RateLimitPolicy } from "../../controller/api/model.js";

function policy(p: Partial<RateLimitPolicy>): RateLimitPolicy {
  return { key: "ns/rl", name: "rl", namespace: "ns", scope: { kind: "namespace" }, overrides: [], ...p };
}

/** Admits `n` requests evenly spread over `ms` from a client; returns how many got through. */
function offer(l: RateLimiter, clock: { t: number }, policies: RateLimitPolicy[], client: string, n: number, ms: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) {
    clock.t += ms / n;
    if (l.admit(policies, "w1", client) === undefined) ok++;
  }
  return ok;
}

describe("token bucket", () => {
  it("starts full, empties, and refills at its rate up to its burst", () => {
    const b = new TokenBucket(10, 5, 0);
    let taken = 0;
    while (b.available(0)) {
      b.take();
      taken++;
    }
    expect(taken).toBe(5);
    expect(b.available(50)).toBe(false); // half a token
    expect(b.available(100)).toBe(true);
    b.take();
    // Ten seconds idle: the bucket holds burst (5), not 100.
    let later = 0;
    while (b.available(10_100)) {
      b.take();
      later++;
    }
    expect(later).toBe(5);
  });
});

describe("rate limiter (RateLimitPolicy)", () => {
  const A = "spiffe://cluster.local/ns/x/sa/a";
  const B = "spiffe://cluster.local/ns/x/sa/b";

  it("total: 50 rps offered for 10 s to a 10 rps / burst 10 bucket admits rate × time + burst", () => {
    const clock = { t: 0 };
    const l = new RateLimiter(() => clock.t);
    const ok = offer(l, clock, [policy({ total: { requestsPerSecond: 10, burst: 10 } })], A, 500, 10_000);
    expect(ok).toBeGreaterThanOrEqual(105);
    expect(ok).toBeLessThanOrEqual(110);
  });

  it("the total bucket is shared by every client; perClient buckets are not", () => {
    const clock = { t: 0 };
    const l = new RateLimiter(() => clock.t);
    const total = [policy({ total: { requestsPerSecond: 1, burst: 2 } })];
    expect([l.admit(total, "w1", A), l.admit(total, "w1", B), l.admit(total, "w1", B)]).toEqual([undefined, undefined, "ns/rl"]);
    const per = [policy({ key: "ns/per", perClient: { requestsPerSecond: 1, burst: 1 } })];
    expect([l.admit(per, "w1", A), l.admit(per, "w1", B), l.admit(per, "w1", A)]).toEqual([undefined, undefined, "ns/per"]);
    // Another workload under the same policy has its own buckets.
    expect(l.admit(per, "w2", A)).toBeUndefined();
  });

  it("an override raises one client's limit and leaves the others at perClient", () => {
    const clock = { t: 0 };
    const l = new RateLimiter(() => clock.t);
    const p = [
      policy({
        perClient: { requestsPerSecond: 10, burst: 10 },
        overrides: [{ clients: ["cluster.local/ns/x/sa/a"], limit: { requestsPerSecond: 40, burst: 40 } }],
      }),
    ];
    const a = offer(l, clock, p, A, 500, 10_000);
    const b = offer(l, clock, p, B, 500, 10_000);
    expect(a).toBeGreaterThan(400);
    expect(b).toBeLessThanOrEqual(110);
  });

  it("a refused request takes no token from the other buckets", () => {
    const clock = { t: 0 };
    const l = new RateLimiter(() => clock.t);
    const p = [policy({ total: { requestsPerSecond: 1, burst: 3 }, perClient: { requestsPerSecond: 1, burst: 1 } })];
    expect(l.admit(p, "w1", A)).toBeUndefined();
    expect(l.admit(p, "w1", A)).toBe("ns/rl"); // A's own bucket is empty…
    expect(l.admit(p, "w1", B)).toBeUndefined(); // …and the total still had tokens for B
    expect(l.admit(p, "w1", B)).toBe("ns/rl");
  });
});
