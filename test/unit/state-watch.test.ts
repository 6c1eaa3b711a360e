import { describe, expect, it } from "vitest";
import { StateUpdater } from "../../agent/state/updater.js";
import { createWatch } from "../../agent/state/watch.js";

describe("watch: one writer", () => {
  it("hands readers no way to write, at compile time and at run time", () => {
    const updater = new StateUpdater("node1", { trustDomain: "cluster.local", rootNamespace: "weft-system" });
    const before = updater.state.get();
    // tsconfig.test.json type-checks this file: the directive fails the build if `set` ever type-checks.
    // @ts-expect-error a reader of the mesh state cannot set it
    expect(() => updater.state.set(before)).toThrow(TypeError);
    expect(Object.isFrozen(updater.state)).toBe(true);
    expect(updater.state.get()).toBe(before);
  });

  it("tells subscribers and waiters about what the owner sets, and isolates a throwing subscriber", async () => {
    const errors: unknown[] = [];
    const { watch, set } = createWatch(1, (e) => errors.push(e));
    const seen: number[] = [];
    watch.subscribe(() => {
      throw new Error("bad subscriber");
    });
    const off = watch.subscribe((v) => seen.push(v));
    const three = watch.when((v) => v === 3, 5000);
    set(2);
    set(2); // the same value again: no notification
    set(3);
    off();
    set(4);
    expect(seen).toEqual([2, 3]);
    await expect(three).resolves.toBe(3);
    expect(errors).toHaveLength(3);
    await expect(watch.when((v) => v === 99, 10)).rejects.toThrow(/no matching value within 10 ms/);
  });
});
