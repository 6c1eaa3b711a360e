import { describe, expect, it } from "vitest";
import {
  mean,
  median,
  medianOrNull,
  pairedAddedRatio,
  pairedAddedRatioSpread,
  pairedRatio,
  pairedRatioSpread,
  percentile,
  ratio,
  sig,
} from "../../bench/lib/stats.js";
import { checkTarget } from "../../bench/lib/targets.js";

describe("bench stats", () => {
  it("median of odd and even counts, unsorted input, input untouched", () => {
    const xs = [5, 1, 3];
    expect(median(xs)).toBe(3);
    expect(xs).toEqual([5, 1, 3]);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
  });

  it("refuses empty lists and non-finite values, naming the function", () => {
    expect(() => median([])).toThrow(/median of an empty list/);
    expect(() => median([1, Number.NaN])).toThrow(/median: NaN is not a finite number/);
    expect(() => mean([])).toThrow(/mean/);
    expect(() => percentile([1], 101)).toThrow(/between 0 and 100/);
  });

  it("percentile interpolates between closest ranks", () => {
    const xs = [10, 20, 30, 40, 50];
    expect(percentile(xs, 0)).toBe(10);
    expect(percentile(xs, 50)).toBe(30);
    expect(percentile(xs, 100)).toBe(50);
    expect(percentile(xs, 90)).toBeCloseTo(46);
    expect(percentile([1, 2], 25)).toBeCloseTo(1.25);
  });

  it("ratio is null instead of Infinity or NaN", () => {
    expect(ratio(3, 2)).toBe(1.5);
    expect(ratio(3, 0)).toBeNull();
    expect(ratio(null, 2)).toBeNull();
    expect(ratio(2, undefined)).toBeNull();
    expect(ratio(Number.NaN, 2)).toBeNull();
  });

  it("paired ratio is the median of per-round ratios, not the ratio of medians", () => {
    // Per round a/b is 0.5, 0.6, 0.3: the median of those is 0.5, while the ratio of the medians
    // (90 / 200 = 0.45) and the mean of the ratios (0.467) are not, so only pairing passes.
    const a = [100, 60, 90];
    const b = [200, 100, 300];
    expect(pairedRatio(a, b)).toBe(0.5);
    expect(median(a) / median(b)).toBeCloseTo(0.45);
    expect(pairedRatio(b, a)).toBeCloseTo(2);
    // A round where one side has no number is left out.
    expect(pairedRatio([1, null, 3], [2, 5, 3])).toBe(0.75);
    expect(pairedRatio([null], [1])).toBeNull();
    expect(() => pairedRatio([1], [1, 2])).toThrow(/round counts must match/);
  });

  it("paired added ratio compares costs over the baseline, round by round", () => {
    // Added over direct per round: a 30, 50, 12 and b 20, 40, 30 → 1.5, 1.25, 0.4, median 1.25.
    // Unpaired, (median a − median base) / (median b − median base) = 30 / 30 = 1: a different answer.
    const base = [100, 110, 100];
    const a = [130, 160, 112];
    const b = [120, 150, 130];
    expect(pairedAddedRatio(a, b, base)).toBe(1.25);
    expect((median(a) - median(base)) / (median(b) - median(base))).toBe(1);
    // A round where the reference adds nothing is left out rather than dividing by zero.
    expect(pairedAddedRatio([150, 140], [100, 130], [100, 110])).toBe(1.5);
    expect(pairedAddedRatio([130], [100], [100])).toBeNull();
  });

  it("sig rounds to significant digits for reports", () => {
    expect(sig(123456)).toBe(123000);
    expect(sig(0.0012345)).toBe(0.00123);
    expect(sig(1.5)).toBe(1.5);
    expect(sig(0)).toBe(0);
    expect(sig(-98.76, 2)).toBe(-99);
  });

  it("medianOrNull skips missing values", () => {
    expect(medianOrNull([null, 3, 1])).toBe(2);
    expect(medianOrNull([null])).toBeNull();
  });
});

describe("bench targets", () => {
  it("checks ratios and absolute bounds in both directions", () => {
    expect(checkTarget({ what: "rps", op: ">=", bound: 0.6, unit: "×" }, 0.61)).toMatchObject({
      met: true,
      measured: "0.61×",
      target: ">= 0.6×",
    });
    expect(checkTarget({ what: "rps", op: ">=", bound: 0.6, unit: "×" }, 0.5)).toMatchObject({ met: false, measured: "0.5×" });
    expect(checkTarget({ what: "rss", op: "<=", bound: 80, unit: "MB" }, 80)).toMatchObject({
      met: true,
      measured: "80 MB",
      target: "<= 80 MB",
    });
    expect(checkTarget({ what: "rss", op: "<=", bound: 80, unit: "MB" }, 80.4)).toMatchObject({ met: false });
  });

  it("a missing measurement is not measured, with the reason", () => {
    const t = checkTarget({ what: "rps", op: ">=", bound: 0.6, unit: "×" }, null, "weft not run (variant not available)");
    expect(t).toEqual({
      what: "rps",
      target: ">= 0.6×",
      measured: null,
      met: null,
      note: "weft not run (variant not available)",
      op: ">=",
    });
    expect(checkTarget({ what: "x", op: "<=", bound: 1, unit: "×" }, Number.NaN).met).toBeNull();
  });
});

describe("spread across rounds", () => {
  it("a paired ratio comes with the min and max of the per-round ratios", () => {
    expect(pairedRatioSpread([100, 60, 90], [200, 100, 300])).toEqual({ median: 0.5, min: 0.3, max: 0.6, n: 3 });
    expect(pairedRatioSpread([null], [1])).toBeNull();
    expect(pairedAddedRatioSpread([130, 160, 112], [120, 150, 130], [100, 110, 100])).toEqual({ median: 1.25, min: 0.4, max: 1.5, n: 3 });
  });

  it("a target is met on the median alone, and says its spread", () => {
    // Two of three rounds miss the bar, but the median holds: met, with the spread shown.
    const met = checkTarget({ what: "rps", op: ">=", bound: 0.8, unit: "×" }, { median: 0.82, min: 0.7, max: 0.9, n: 3 });
    expect(met).toMatchObject({ met: true, measured: "0.82× (0.7–0.9× over 3 rounds)", value: 0.82, spread: [0.7, 0.9] });
    // The best round clears the bar but the median does not: missed.
    const missed = checkTarget({ what: "p50", op: "<=", bound: 1.5, unit: "×" }, { median: 1.6, min: 1.2, max: 2, n: 3 });
    expect(missed).toMatchObject({ met: false, measured: "1.6× (1.2–2× over 3 rounds)" });
  });
});
