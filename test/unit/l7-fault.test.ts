import { describe, expect, it } from "vitest";
import { decideFault } from "../../agent/proxy/l7/fault.js";
import { grpcStatusCode } from "../../agent/proxy/l7/grpc-status.js";
import type { FaultInjection } from "../../controller/api/model.js";

/** Returns the given draws in order. */
const draws = (...values: number[]) => {
  let i = 0;
  return () => values[i++] ?? 0;
};

describe("decideFault", () => {
  it("no fault → no decision", () => {
    expect(decideFault(undefined)).toEqual({});
  });

  it.each([
    ["100 % delay always fires", { delay: { fixedDelayMs: 500, percentage: 100 } }, [0.9999], { delayMs: 500 }],
    ["0 % delay never fires", { delay: { fixedDelayMs: 500, percentage: 0 } }, [0], {}],
    ["50 % delay: draw below fires", { delay: { fixedDelayMs: 7, percentage: 50 } }, [0.49], { delayMs: 7 }],
    ["50 % delay: draw at or above does not", { delay: { fixedDelayMs: 7, percentage: 50 } }, [0.5], {}],
    ["fractional percentage", { delay: { fixedDelayMs: 7, percentage: 0.1 } }, [0.0009], { delayMs: 7 }],
    ["http abort", { abort: { httpStatus: 503, percentage: 100 } }, [0.3], { abort: { status: 503 } }],
    [
      "grpc abort by name answers 200 + grpc-status",
      { abort: { grpcStatus: "UNAVAILABLE", percentage: 100 } },
      [0.3],
      { abort: { status: 200, grpcStatus: 14 } },
    ],
    ["grpc abort by number", { abort: { grpcStatus: "8", percentage: 100 } }, [0.3], { abort: { status: 200, grpcStatus: 8 } }],
    [
      "unknown grpc name aborts UNKNOWN",
      { abort: { grpcStatus: "NOPE", percentage: 100 } },
      [0.3],
      { abort: { status: 200, grpcStatus: 2 } },
    ],
    [
      "delay and abort drawn independently: both",
      { delay: { fixedDelayMs: 10, percentage: 50 }, abort: { httpStatus: 500, percentage: 50 } },
      [0.1, 0.2],
      { delayMs: 10, abort: { status: 500 } },
    ],
    [
      "delay and abort drawn independently: abort only",
      { delay: { fixedDelayMs: 10, percentage: 50 }, abort: { httpStatus: 500, percentage: 50 } },
      [0.9, 0.2],
      { abort: { status: 500 } },
    ],
  ] as [string, FaultInjection, number[], object][])("%s", (_n, fault, random, want) => {
    expect(decideFault(fault, draws(...random))).toEqual(want);
  });

  it("fires in about the configured share of requests", () => {
    let seed = 42;
    const lcg = () => {
      seed = (seed * 1664525 + 1013904223) >>> 0;
      return seed / 4294967296;
    };
    let fired = 0;
    for (let i = 0; i < 10_000; i++) if (decideFault({ abort: { httpStatus: 500, percentage: 30 } }, lcg).abort) fired++;
    expect(fired).toBeGreaterThan(2700);
    expect(fired).toBeLessThan(3300);
  });
});

describe("grpcStatusCode", () => {
  it.each([
    ["UNAVAILABLE", 14],
    ["unavailable", 14],
    ["OK", 0],
    ["UNAUTHENTICATED", 16],
    ["14", 14],
    ["99", 99],
    ["NOPE", undefined],
    ["toString", undefined],
    ["-1", undefined],
  ] as [string, number | undefined][])("%s → %s", (name, code) => {
    expect(grpcStatusCode(name)).toBe(code);
  });
});

describe("decideFault without a fault", () => {
  it("draws nothing and decides nothing, and the empty decision cannot be changed by a caller", () => {
    let drawn = 0;
    const d = decideFault(undefined, () => {
      drawn++;
      return 0;
    });
    expect(drawn).toBe(0);
    expect(d).toEqual({});
    expect(Object.isFrozen(d)).toBe(true);
  });
});
