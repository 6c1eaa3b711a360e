import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findCycles, importGraph, sourceFiles } from "../helpers/import-graph.js";

const ROOT = join(import.meta.dirname, "..", "..");

describe("import graph", () => {
  it("finds a planted cycle (the checker itself works)", () => {
    const a = "/x/a.ts";
    const b = "/x/b.ts";
    const c = "/x/c.ts";
    const g = new Map([
      [a, [b]],
      [b, [c]],
      [c, [a]],
    ]);
    expect(findCycles(g, "/x")).toEqual([["a.ts", "b.ts", "c.ts"]]);
    expect(
      findCycles(
        new Map([
          [a, [b]],
          [b, []],
        ]),
        "/x",
      ),
    ).toEqual([]);
  });

  it("has no import cycles in the project", () => {
    const files = sourceFiles(ROOT, ["agent", "controller", "native", "scripts", "bench", "test/helpers"]);
    expect(files.length).toBeGreaterThan(10);
    expect(findCycles(importGraph(files), ROOT)).toEqual([]);
  });
});
