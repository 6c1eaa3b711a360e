import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type BalanceContext, BalancerRegistry, cookieValue, createBalancer } from "../../agent/proxy/l7/balancer.js";
import { HashRing, hash32 } from "../../agent/proxy/l7/hash-ring.js";
import type { Endpoint, LoadBalancerSettings } from "../../controller/api/model.js";
import { seeded } from "../helpers/seeded.js";

const eps = (n: number, from = 0): Endpoint[] =>
  Array.from({ length: n }, (_, i) => ({ workloadUid: `uid-${from + i}`, address: `10.244.1.${from + i + 1}`, ready: true }));
const ctx = (over: Partial<BalanceContext> = {}): BalanceContext => ({ headers: {}, sourceIp: "10.244.9.9", query: "", ...over });

const POLICIES: [string, LoadBalancerSettings | undefined][] = [
  ["default", undefined],
  ["ROUND_ROBIN", { simple: "ROUND_ROBIN" }],
  ["LEAST_REQUEST", { simple: "LEAST_REQUEST" }],
  ["RANDOM", { simple: "RANDOM" }],
  ["PASSTHROUGH", { simple: "PASSTHROUGH" }],
  ["UNSPECIFIED", { simple: "UNSPECIFIED" }],
  ["header hash", { consistentHash: { header: "x-user" } }],
  ["cookie hash", { consistentHash: { cookie: { name: "sess", ttlMs: 0 } } }],
  ["source ip hash", { consistentHash: { sourceIp: true } }],
  ["query hash", { consistentHash: { queryParameter: "u" } }],
];

describe("simple balancers", () => {
  it("ROUND_ROBIN visits every candidate once per cycle", () => {
    const b = createBalancer({ simple: "ROUND_ROBIN" }, seeded(1));
    const list = eps(5);
    for (let cycle = 0; cycle < 3; cycle++) {
      const seen = new Set(Array.from({ length: 5 }, () => b.pick(list, ctx())?.endpoint.address));
      expect(seen.size).toBe(5);
    }
  });

  it.each([
    ["unset", undefined],
    ["UNSPECIFIED", { simple: "UNSPECIFIED" } as LoadBalancerSettings],
    ["LEAST_REQUEST", { simple: "LEAST_REQUEST" } as LoadBalancerSettings],
  ])("%s balances by least requests (power of two choices)", (_name, settings) => {
    const b = createBalancer(settings, seeded(2));
    const list = eps(3);
    const busy = list[0]?.address as string;
    for (let i = 0; i < 4; i++) b.started(busy);
    // Two distinct choices: the busiest of three can never win.
    for (let i = 0; i < 200; i++) expect(b.pick(list, ctx())?.endpoint.address).not.toBe(busy);
    for (let i = 0; i < 4; i++) b.finished(busy);
    const picks = new Set(Array.from({ length: 200 }, () => b.pick(list, ctx())?.endpoint.address));
    expect(picks.has(busy)).toBe(true);
  });

  it("counts in flight per endpoint and ignores unmatched finishes", () => {
    const b = createBalancer(undefined);
    b.started("a");
    b.started("a");
    b.finished("a");
    b.finished("b");
    expect(b.inFlight("a")).toBe(1);
    expect(b.inFlight("b")).toBe(0);
    b.finished("a");
    b.finished("a");
    expect(b.inFlight("a")).toBe(0);
  });

  it.each([
    ["RANDOM", "RANDOM"],
    ["PASSTHROUGH", "PASSTHROUGH"],
  ] as const)("%s spreads over every candidate", (_n, simple) => {
    const b = createBalancer({ simple }, seeded(3));
    const list = eps(4);
    const counts = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const a = b.pick(list, ctx())?.endpoint.address as string;
      counts.set(a, (counts.get(a) ?? 0) + 1);
    }
    expect(counts.size).toBe(4);
    for (const c of counts.values()) expect(c).toBeGreaterThan(800);
  });

  it.each(POLICIES)("%s: no candidates → undefined; all excluded → still picks", (_n, settings) => {
    const b = createBalancer(settings, seeded(4));
    expect(b.pick([], ctx())).toBeUndefined();
    const list = eps(2);
    const all = new Set(list.map((e) => e.address));
    expect(list).toContain(b.pick(list, ctx(), all)?.endpoint);
  });

  it.each(POLICIES)("%s skips excluded hosts while others remain", (_n, settings) => {
    const b = createBalancer(settings, seeded(5));
    const list = eps(3);
    const exclude = new Set([list[0]?.address as string, list[1]?.address as string]);
    for (let i = 0; i < 50; i++)
      expect(b.pick(list, ctx({ headers: { "x-user": `u${i}`, cookie: `sess=${i}` }, query: `u=${i}` }), exclude)?.endpoint).toBe(list[2]);
  });
});

describe("consistent hash", () => {
  const list = eps(8);

  it.each([
    ["header", { header: "x-user" }, (k: string) => ctx({ headers: { "x-user": k } })],
    ["header (repeated)", { header: "x-user" }, (k: string) => ctx({ headers: { "x-user": [k, "z"] } })],
    ["cookie", { cookie: { name: "sess" } }, (k: string) => ctx({ headers: { cookie: `a=1; sess=${k}; b=2` } })],
    ["source ip", { sourceIp: true }, (k: string) => ctx({ sourceIp: k })],
    ["query parameter", { queryParameter: "u" }, (k: string) => ctx({ query: `x=1&u=${encodeURIComponent(k)}` })],
  ] as const)("%s: the same key always reaches the same endpoint, keys spread", (_n, hash, mk) => {
    const b = createBalancer({ consistentHash: hash }, seeded(6));
    const owners = new Set<string>();
    for (let k = 0; k < 64; k++) {
      const first = b.pick(list, mk(`key-${k}`))?.endpoint.address as string;
      for (let i = 0; i < 5; i++) expect(b.pick(list, mk(`key-${k}`))?.endpoint.address).toBe(first);
      owners.add(first);
    }
    expect(owners.size).toBeGreaterThan(4);
  });

  it("a request without the key goes to some candidate (random, as Envoy with no hash)", () => {
    const b = createBalancer({ consistentHash: { header: "x-user" } }, seeded(7));
    const seen = new Set(Array.from({ length: 200 }, () => b.pick(list, ctx())?.endpoint.address));
    expect(seen.size).toBeGreaterThan(1);
  });

  it("generates a cookie when missing and a ttl is set; the cookie then pins the endpoint", () => {
    const b = createBalancer({ consistentHash: { cookie: { name: "sess", path: "/app", ttlMs: 60_500 } } });
    const first = b.pick(list, ctx());
    expect(first?.setCookie).toMatch(/^sess=[0-9a-f]{16}; Path=\/app; Max-Age=61; HttpOnly$/);
    const value = /^sess=([0-9a-f]+)/.exec(first?.setCookie ?? "")?.[1] as string;
    for (let i = 0; i < 10; i++) {
      const again = b.pick(list, ctx({ headers: { cookie: `sess=${value}` } }));
      expect(again?.endpoint).toBe(first?.endpoint);
      expect(again?.setCookie).toBeUndefined();
    }
  });

  it("a ttl of 0 generates a session cookie; no ttl generates nothing", () => {
    const session = createBalancer({ consistentHash: { cookie: { name: "s", ttlMs: 0 } } }).pick(list, ctx());
    expect(session?.setCookie).toMatch(/^s=[0-9a-f]{16}; HttpOnly$/);
    expect(createBalancer({ consistentHash: { cookie: { name: "s" } } }).pick(list, ctx())?.setCookie).toBeUndefined();
  });

  it("an excluded owner moves the key to the next endpoint on the ring, deterministically", () => {
    const b = createBalancer({ consistentHash: { header: "x-user" } });
    const c = ctx({ headers: { "x-user": "alice" } });
    const owner = b.pick(list, c)?.endpoint.address as string;
    const next = b.pick(list, c, new Set([owner]))?.endpoint.address;
    expect(next).not.toBe(owner);
    expect(b.pick(list, c, new Set([owner]))?.endpoint.address).toBe(next);
  });

  it("reads cookies from one or several Cookie headers", () => {
    expect(cookieValue("a=1; sess=xyz", "sess")).toBe("xyz");
    expect(cookieValue(["a=1", "sess=q=r"], "sess")).toBe("q=r");
    expect(cookieValue("sessx=1; xsess=2", "sess")).toBeUndefined();
    expect(cookieValue(undefined, "sess")).toBeUndefined();
  });
});

describe("hash ring stability", () => {
  const keys = Array.from({ length: 20_000 }, (_, i) => hash32(`user-${i}`));
  const addrs = (n: number) => eps(n).map((e) => e.address);

  it("removing one endpoint of N moves only its keys (≈1/N)", () => {
    const n = 10;
    const before = new HashRing(addrs(n));
    const removed = addrs(n)[3] as string;
    const after = new HashRing(addrs(n).filter((a) => a !== removed));
    let moved = 0;
    for (const k of keys) {
      const a = before.owner(k);
      const b = after.owner(k);
      if (a !== removed) expect(b).toBe(a);
      else moved++;
    }
    expect(moved / keys.length).toBeGreaterThan(0.6 / n);
    expect(moved / keys.length).toBeLessThan(1.4 / n);
  });

  it("adding one endpoint moves ≈1/(N+1) of keys, all to the new one", () => {
    const n = 10;
    const before = new HashRing(addrs(n));
    const after = new HashRing(addrs(n + 1));
    const added = addrs(n + 1)[n] as string;
    let moved = 0;
    for (const k of keys) {
      const b = after.owner(k);
      if (b !== before.owner(k)) {
        expect(b).toBe(added);
        moved++;
      }
    }
    expect(moved / keys.length).toBeGreaterThan(0.6 / (n + 1));
    expect(moved / keys.length).toBeLessThan(1.4 / (n + 1));
  });

  it("has 256 points per endpoint, shares near equal, and does not depend on input order", () => {
    const ring = new HashRing(addrs(5));
    expect(ring.size).toBe(5 * 256);
    const counts = new Map<string, number>();
    for (const k of keys) counts.set(ring.owner(k) as string, (counts.get(ring.owner(k) as string) ?? 0) + 1);
    for (const c of counts.values()) expect(c / keys.length).toBeGreaterThan(0.12);
    const reversed = new HashRing(addrs(5).reverse());
    for (const k of keys.slice(0, 500)) expect(reversed.owner(k)).toBe(ring.owner(k));
    expect(new HashRing([]).owner(1)).toBeUndefined();
  });

  it("walk visits every endpoint once", () => {
    const ring = new HashRing(addrs(6));
    expect(new Set(ring.walk(12345)).size).toBe(6);
    expect([...ring.walk(12345)].length).toBe(6);
  });
});

describe("balancer properties", () => {
  const policy = fc.constantFrom(...POLICIES.map(([, s]) => s));
  const request = fc.record({ user: fc.string(), ip: fc.ipV4(), started: fc.nat(3) });

  it("pick always returns a candidate, and never an excluded one while others remain", () => {
    fc.assert(
      fc.property(
        policy,
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.nat(11), { maxLength: 12 }),
        fc.array(request, { minLength: 1, maxLength: 20 }),
        fc.integer(),
        (settings, n, excluded, requests, seed) => {
          const b = createBalancer(settings, seeded(seed));
          const list = eps(n);
          const exclude = new Set(excluded.map((i) => `10.244.1.${i + 1}`));
          const anyLeft = list.some((e) => !exclude.has(e.address));
          for (const r of requests) {
            const picked = b.pick(
              list,
              ctx({ headers: { "x-user": r.user, cookie: `sess=${r.user}` }, sourceIp: r.ip, query: `u=${r.user}` }),
              exclude,
            );
            expect(list).toContain(picked?.endpoint);
            if (anyLeft) expect(exclude.has(picked?.endpoint.address as string)).toBe(false);
            for (let i = 0; i < r.started; i++) b.started(picked?.endpoint.address as string);
          }
        },
      ),
    );
  });

  it("a consistent-hash key keeps its endpoint when an unrelated endpoint leaves", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 12 }), fc.nat(11), fc.array(fc.string(), { minLength: 1, maxLength: 20 }), (n, gone, users) => {
        const b = createBalancer({ consistentHash: { header: "x-user" } });
        const list = eps(n);
        const leaving = list[gone % n]?.address;
        const rest = list.filter((e) => e.address !== leaving);
        for (const u of users) {
          const c = ctx({ headers: { "x-user": u } });
          const before = b.pick(list, c)?.endpoint.address;
          if (before !== leaving) expect(b.pick(rest, c)?.endpoint.address).toBe(before);
        }
      }),
    );
  });
});

describe("BalancerRegistry", () => {
  it("keeps a cluster's balancer while its settings are equal, and replaces it when they change", () => {
    const r = new BalancerRegistry();
    const a = r.forCluster("shop/api|80", { simple: "ROUND_ROBIN" });
    expect(r.forCluster("shop/api|80", { simple: "ROUND_ROBIN" })).toBe(a);
    expect(r.forCluster("shop/web|80", { simple: "ROUND_ROBIN" })).not.toBe(a);
    const b = r.forCluster("shop/api|80", { simple: "RANDOM" });
    expect(b).not.toBe(a);
    expect(r.forCluster("shop/api|80", { simple: "RANDOM" })).toBe(b);
    r.retain(new Set(["shop/web|80"]));
    expect(r.forCluster("shop/api|80", { simple: "RANDOM" })).not.toBe(b);
  });
});
