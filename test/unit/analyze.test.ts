import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { analyze, hasErrors } from "../../controller/analyze/analyze.js";
import { MESSAGE_CODES } from "../../controller/analyze/codes.js";
import { renderMessages } from "../../controller/analyze/command.js";
import { type LoadedInput, loadFiles, loadText } from "../../controller/analyze/load.js";

const FIX = join(import.meta.dirname, "..", "fixtures");
const BROKEN = join(FIX, "analyze", "broken");
const DOCS = join(import.meta.dirname, "..", "..", "docs", "analyze");

/** Bookinfo's objects and its DestinationRules, plus more files; objects without a namespace go to bookinfo. */
function withBookinfo(...files: string[]): LoadedInput {
  return loadFiles([join(FIX, "analyze", "bookinfo.yaml"), join(FIX, "istio", "destination-rule-all.yaml"), ...files], "bookinfo");
}

function run(input: LoadedInput, agentNodes?: string[]) {
  return analyze({ objects: input.objects, inputProblems: input.problems, ...(agentNodes ? { agentNodes } : {}) });
}

describe("weft analyze: Bookinfo's correct configuration", () => {
  const bookinfoSamples = [
    "virtual-service-all-v1.yaml",
    "virtual-service-reviews-50-v3.yaml",
    "virtual-service-reviews-90-10.yaml",
    "virtual-service-reviews-test-v2.yaml",
    "virtual-service-reviews-v2-timeout.yaml",
    "virtual-service-ratings-test-abort.yaml",
    "virtual-service-ratings-test-delay.yaml",
  ];
  it.each(bookinfoSamples)("%s with Bookinfo: no message at all", (file) => {
    const messages = run(withBookinfo(join(FIX, "istio", file)));
    expect(messages).toEqual([]);
  });

  it("Bookinfo alone, and with every agent connected, has no message", () => {
    expect(run(withBookinfo(), ["node1", "node2"])).toEqual([]);
  });
});

describe("weft analyze: seeded mistakes", () => {
  const files = readdirSync(BROKEN).filter((f) => f.endsWith(".yaml"));

  it("has at least 15 broken configurations, each with a different code", () => {
    expect(files.length).toBeGreaterThanOrEqual(15);
    expect(new Set(files.map((f) => f.slice(0, 7))).size).toBe(files.length);
  });

  it.each(files)("%s is found with its code, and no other error", (file) => {
    const expected = file.slice(0, 7);
    const messages = run(withBookinfo(join(BROKEN, file)));
    expect(messages.map((m) => m.code)).toContain(expected);
    expect(messages.filter((m) => m.severity === "error" && m.code !== expected)).toEqual([]);
    const code = MESSAGE_CODES.find((c) => c.code === expected);
    expect(hasErrors(messages)).toBe(code?.severity === "error");
    // The message points back at the file that holds the mistake.
    const mine = messages.filter((m) => m.code === expected);
    expect(mine.some((m) => (m.origin ?? m.message).includes(file))).toBe(true);
  });
});

describe("weft analyze: live-only and edge cases", () => {
  it("flags enrolled pods on a node with no agent (NodeWithoutAgent), and only that node", () => {
    const messages = run(withBookinfo(), ["node1"]);
    expect(messages.map((m) => m.code)).toEqual(["WFT0301"]);
    expect(messages[0]?.message).toContain("node2");
    expect(messages[0]?.message).toContain("details-v1");
    expect(messages[0]?.message).not.toContain("productpage-v1");
  });

  it("an object given twice counts once (the later wins), like kubectl apply", () => {
    const dr = join(FIX, "istio", "destination-rule-all.yaml");
    expect(run(withBookinfo(dr))).toEqual([]);
  });

  it("a file that does not exist is an UnreadableInput error naming it", () => {
    const messages = run(loadFiles([join(BROKEN, "no-such.yaml")]));
    expect(messages).toHaveLength(1);
    expect(messages[0]?.code).toBe("WFT0003");
    expect(messages[0]?.message).toContain("no-such.yaml");
  });

  it("a document that is not a Kubernetes object is named with its position", () => {
    const loaded = loadText("apiVersion: v1\nkind: Service\n---\n- a\n", "x.yaml");
    expect(loaded.objects).toHaveLength(0);
    expect(loaded.problems).toEqual([
      "x.yaml#1: not a Kubernetes object (needs apiVersion, kind and metadata.name)",
      "x.yaml#2: expected a Kubernetes object (a mapping)",
    ]);
  });

  it("policy checks without any pod in the input stay quiet (nothing to judge against)", () => {
    const messages = run(loadFiles([join(BROKEN, "WFT0201-selects-nothing.yaml")]));
    expect(messages.filter((m) => m.code === "WFT0201")).toEqual([]);
  });

  it("renders one line per message with its code, and a summary", () => {
    const text = renderMessages(run(withBookinfo(join(BROKEN, "WFT0104-weights.yaml"))));
    expect(text).toMatch(/^ERROR +\[WFT0104\] \(VirtualService bookinfo\/reviews\)/);
    expect(text).toContain("1 error(s), 0 warning(s)");
    expect(renderMessages([])).toContain("No problems");
  });
});

describe("message codes", () => {
  it("are unique, and each has a docs page that names it", () => {
    expect(new Set(MESSAGE_CODES.map((c) => c.code)).size).toBe(MESSAGE_CODES.length);
    expect(new Set(MESSAGE_CODES.map((c) => c.name)).size).toBe(MESSAGE_CODES.length);
    for (const c of MESSAGE_CODES) {
      const page = join(DOCS, `${c.code}.md`);
      expect(existsSync(page), page).toBe(true);
      expect(readFileSync(page, "utf8")).toContain(`${c.code} ${c.name} (${c.severity})`);
    }
  });
});
