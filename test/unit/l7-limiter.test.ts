import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Admission, LimiterRegistry, RequestLimiter } from "../../agent/proxy/l7/limiter.js";
import type { ConnectionPoolSettings } from "../../controller/api/model.js";

/** Lets every pending promise callback run (no wall clock involved). */
const settle = () => new Promise<void>((r) => setImmediate(r));

function released(a: Admission): () => void {
  if (!a.ok) throw new Error(`not admitted: ${a.reason}`);
  return a.release;
}

describe("RequestLimiter", () => {
  it("unset limits admit everything at once", async () => {
    const l = new RequestLimiter(undefined, "http1");
    const all = await Promise.all(Array.from({ length: 1000 }, () => l.admit()));
    expect(all.every((a) => a.ok)).toBe(true);
    expect(l.stats()).toMatchObject({ active: 1000, pending: 0, overflows: 0 });
  });

  it("http1: maxConnections bounds in-flight requests, the rest wait FIFO up to http1MaxPendingRequests", async () => {
    const l = new RequestLimiter({ tcp: { maxConnections: 2 }, http: { http1MaxPendingRequests: 2 } }, "http1");
    const r1 = released(await l.admit());
    const r2 = released(await l.admit());
    const order: number[] = [];
    const w3 = l.admit().then((a) => {
      order.push(3);
      return a;
    });
    const w4 = l.admit().then((a) => {
      order.push(4);
      return a;
    });
    const over = await l.admit();
    expect(over.ok).toBe(false);
    expect(over.ok ? "" : over.reason).toMatch(/http1MaxPendingRequests 2/);
    expect(l.stats()).toMatchObject({ active: 2, pending: 2, overflows: 1 });
    r1();
    r1(); // a second release must not free another slot
    await settle();
    expect(order).toEqual([3]);
    expect(l.stats()).toMatchObject({ active: 2, pending: 1 });
    r2();
    await settle();
    expect(order).toEqual([3, 4]);
    released(await w3)();
    released(await w4)();
    expect(l.stats()).toMatchObject({ active: 0, pending: 0, overflows: 1 });
  });

  it("http2MaxRequests bounds in-flight requests for both protocols and overflows at once", async () => {
    for (const protocol of ["http1", "http2"] as const) {
      const l = new RequestLimiter({ http: { http2MaxRequests: 2, http1MaxPendingRequests: 10 } }, protocol);
      const a = released(await l.admit());
      await l.admit();
      const third = await l.admit();
      expect(third.ok).toBe(false);
      expect(third.ok ? "" : third.reason).toMatch(/http2MaxRequests 2/);
      a();
      expect((await l.admit()).ok).toBe(true);
    }
  });

  it("http2: one connection multiplexes, so maxConnections alone does not bound requests", async () => {
    const l = new RequestLimiter({ tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } }, "http2");
    const all = await Promise.all(Array.from({ length: 50 }, () => l.admit()));
    expect(all.every((a) => a.ok)).toBe(true);
    const capped = new RequestLimiter(
      { tcp: { maxConnections: 2 }, http: { maxConcurrentStreams: 2, http1MaxPendingRequests: 1 } },
      "http2",
    );
    for (let i = 0; i < 4; i++) expect((await capped.admit()).ok).toBe(true);
    void capped.admit();
    expect((await capped.admit()).ok).toBe(false);
    expect(capped.stats()).toMatchObject({ active: 4, pending: 1, overflows: 1 });
  });

  it("zero limits mean unset (Istio applies only positive values)", async () => {
    const l = new RequestLimiter(
      { tcp: { maxConnections: 0 }, http: { http1MaxPendingRequests: 0, http2MaxRequests: 0, maxRetries: 0 } },
      "http1",
    );
    for (let i = 0; i < 20; i++) expect((await l.admit()).ok).toBe(true);
    expect(l.tryRetry().ok).toBe(true);
  });

  it("an aborted waiter leaves the queue and resolves not-ok; an already aborted signal is refused at once", async () => {
    const l = new RequestLimiter({ tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } }, "http1");
    const r = released(await l.admit());
    const ac = new AbortController();
    const waiting = l.admit(ac.signal);
    expect(l.stats().pending).toBe(1);
    ac.abort();
    const a = await waiting;
    expect(a.ok).toBe(false);
    expect(l.stats()).toMatchObject({ pending: 0, overflows: 0 });
    const next = l.admit(); // the freed queue place is usable
    expect(l.stats().pending).toBe(1);
    r();
    expect((await next).ok).toBe(true);
    expect((await l.admit(AbortSignal.abort())).ok).toBe(false);
  });

  it("maxRetries bounds concurrent retries", () => {
    const l = new RequestLimiter({ http: { maxRetries: 2 } }, "http1");
    const a = l.tryRetry();
    const b = l.tryRetry();
    expect(l.tryRetry().ok).toBe(false);
    if (a.ok) {
      a.release();
      a.release();
    }
    expect(l.tryRetry().ok).toBe(true);
    expect(l.tryRetry().ok).toBe(false);
    expect(b.ok).toBe(true);
    expect(l.stats()).toMatchObject({ retriesActive: 2, retryOverflows: 2 });
  });

  it("Istio's circuit-breaking task: maxConnections 1, http1MaxPendingRequests 1, 3 clients × 30 requests overflow", async () => {
    const l = new RequestLimiter(
      { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1, maxRequestsPerConnection: 1 } },
      "http1",
    );
    let maxActive = 0;
    let served = 0;
    let overflowed = 0;
    const client = async () => {
      for (let i = 0; i < 30; i++) {
        const a = await l.admit();
        if (!a.ok) {
          overflowed++;
          continue;
        }
        maxActive = Math.max(maxActive, l.stats().active);
        // A slow upstream: the response takes a few event-loop turns.
        for (let t = 0; t < 3; t++) await settle();
        served++;
        a.release();
      }
    };
    await Promise.all([client(), client(), client()]);
    expect(served + overflowed).toBe(90);
    expect(overflowed).toBeGreaterThan(0);
    expect(served).toBeGreaterThan(30);
    expect(maxActive).toBe(1);
    expect(l.stats()).toMatchObject({ active: 0, pending: 0, overflows: overflowed });
  });

  it("holds its limits under any interleaving (property)", async () => {
    const op = fc.oneof(
      fc.constant({ kind: "admit" as const }),
      fc.record({ kind: fc.constant("release" as const), i: fc.nat() }),
      fc.record({ kind: fc.constant("abort" as const), i: fc.nat() }),
      fc.record({ kind: fc.constant("configure" as const), conns: fc.integer({ min: 0, max: 4 }) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 0, max: 5 }),
        fc.constantFrom("http1" as const, "http2" as const),
        fc.array(op, { maxLength: 60 }),
        async (conns, pending, maxRequests, protocol, ops) => {
          const settingsOf = (c: number): ConnectionPoolSettings => ({
            tcp: { maxConnections: c },
            http: {
              http1MaxPendingRequests: pending,
              http2MaxRequests: maxRequests,
              maxConcurrentStreams: protocol === "http2" ? 1 : undefined,
            },
          });
          const l = new RequestLimiter(settingsOf(conns), protocol);
          let capConns = conns;
          const held: (() => void)[] = [];
          const waiting: { ac: AbortController; done: boolean }[] = [];
          const check = () => {
            const s = l.stats();
            const cap = Math.min(capConns > 0 ? capConns : Infinity, maxRequests > 0 ? maxRequests : Infinity);
            expect(s.active).toBe(held.length);
            expect(s.active).toBeLessThanOrEqual(cap);
            expect(s.pending).toBe(waiting.filter((w) => !w.done).length);
          };
          for (const o of ops) {
            if (o.kind === "admit") {
              const w = { ac: new AbortController(), done: false };
              waiting.push(w);
              void l.admit(w.ac.signal).then((a) => {
                w.done = true;
                if (a.ok) held.push(a.release);
              });
            } else if (o.kind === "release" && held.length > 0) {
              held.splice(o.i % held.length, 1)[0]?.();
            } else if (o.kind === "abort" && waiting.length > 0) {
              waiting[o.i % waiting.length]?.ac.abort();
            } else if (o.kind === "configure") {
              // Only raise limits here: lowering them keeps admitted requests, so `cap` would not hold.
              if (o.conns === 0 || (capConns > 0 && o.conns > capConns)) {
                capConns = o.conns;
                l.configure(settingsOf(capConns), protocol);
              }
            }
            await settle();
            check();
          }
          for (const w of waiting) w.ac.abort();
          await settle();
          while (held.length) held.pop()?.();
          await settle();
          expect(l.stats()).toMatchObject({ active: 0, pending: 0 });
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("LimiterRegistry", () => {
  it("reconfigures a cluster's limiter in place, keeping in-flight requests counted", async () => {
    const r = new LimiterRegistry();
    const l = r.forCluster("k", { tcp: { maxConnections: 1 } }, "http1");
    const first = released(await l.admit());
    const same = r.forCluster("k", { tcp: { maxConnections: 2 } }, "http1");
    expect(same).toBe(l);
    expect(same.stats().active).toBe(1);
    expect((await same.admit()).ok).toBe(true);
    const w = same.admit();
    expect(same.stats().pending).toBe(1);
    r.forCluster("k", { tcp: { maxConnections: 3 } }, "http1"); // raising the limit admits the waiter
    expect((await w).ok).toBe(true);
    first();
    expect(same.stats().active).toBe(2);
    expect(r.forCluster("other", undefined, "http2")).not.toBe(l);
  });
});

describe("RequestLimiter.tryAdmit", () => {
  it("admits at once while a slot is free and nobody waits, and leaves every other case to admit()", async () => {
    const l = new RequestLimiter({ tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } }, "http1");
    const first = l.tryAdmit();
    expect(first?.ok).toBe(true);
    expect(l.tryAdmit()).toBeUndefined();
    const waiting = l.admit();
    expect(l.stats()).toMatchObject({ active: 1, pending: 1 });
    released(first as Admission)();
    // The freed slot goes to the waiter, not to a newcomer that asks right away.
    expect(l.tryAdmit()).toBeUndefined();
    const second = await waiting;
    expect(second.ok).toBe(true);
    released(second)();
    const aborted = new AbortController();
    aborted.abort();
    expect(l.tryAdmit(aborted.signal)).toBeUndefined();
    expect(l.tryAdmit()?.ok).toBe(true);
  });
});
