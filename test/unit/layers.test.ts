import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { importGraph, sourceFiles } from "../helpers/import-graph.js";
import { layerOf, layerViolations } from "../helpers/layers.js";

const ROOT = join(import.meta.dirname, "..", "..");
const SHIPPED = ["common", "agent", "controller", "native"];

function projectGraph(): Map<string, string[]> {
  return importGraph(sourceFiles(ROOT, [...SHIPPED, "scripts", "bench"]));
}

describe("layer rule", () => {
  it("flags planted wrong-way imports (the checker itself works)", () => {
    const f = (p: string) => join("/x", p);
    const graph = new Map([
      [f("agent/proxy/outbound.ts"), [f("controller/translate/index.ts"), f("controller/api/model.ts"), f("common/log.ts")]],
      [f("controller/controller.ts"), [f("agent/state/updater.ts")]],
      [f("common/log.ts"), [f("controller/api/constants.ts")]],
      [f("native/libc.ts"), [f("common/errors.ts"), f("common/log.ts")]],
      [f("agent/redirect/install.ts"), [f("scripts/cluster/state.ts")]],
      [f("agent/xds/local.ts"), [f("controller/embedded.ts")]],
      [f("agent/cli/main.ts"), [f("controller/cli.ts"), f("agent/app.ts")]],
      [f("scripts/up.ts"), [f("agent/cli/agent-client.ts"), f("controller/config.ts")]],
      [f("elsewhere/x.ts"), []],
    ]);
    expect(layerViolations(graph, "/x")).toEqual([
      "agent/proxy/outbound.ts → controller/translate/index.ts (agent may not import controller)",
      "agent/redirect/install.ts → scripts/cluster/state.ts (agent may not import test-bed)",
      "common/log.ts → controller/api/constants.ts (common may not import contract)",
      "controller/controller.ts → agent/state/updater.ts (controller may not import agent)",
      "elsewhere/x.ts: in no layer (add it to the rule in test/helpers/layers.ts and docs/ARCHITECTURE.md)",
      "native/libc.ts → common/log.ts (native may not import common)",
    ]);
  });

  it("puts the controller's published entries in their own layers", () => {
    expect(layerOf("controller/embedded.ts")?.name).toBe("controller-entry");
    expect(layerOf("controller/cli.ts")?.name).toBe("controller-commands");
    expect(layerOf("controller/api/model.ts")?.name).toBe("contract");
    expect(layerOf("controller/translate/index.ts")?.name).toBe("controller");
    expect(layerOf("agent/cli/main.ts")?.name).toBe("cli");
  });

  it("holds on every import of the project", () => {
    const graph = projectGraph();
    expect(graph.size).toBeGreaterThan(100);
    expect(layerViolations(graph, ROOT)).toEqual([]);
  });

  it("no shipped file names scripts/ or bench/ in an import, static or dynamic", () => {
    const graph = importGraph(sourceFiles(ROOT, SHIPPED));
    const wrong = [...graph].flatMap(([file, deps]) =>
      deps
        .filter((d) => /\/(scripts|bench)\//.test(d.slice(ROOT.length)))
        .map((d) => `${file.slice(ROOT.length)} → ${d.slice(ROOT.length)}`),
    );
    expect(wrong).toEqual([]);
  });
});
