import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { collect } from "../../bench/lib/collect.js";
import { type BenchOutput, parseBenchOutput, validateBenchOutput } from "../../bench/lib/output.js";
import { dataBlock, parsePrevious, regressionChecks } from "../../bench/lib/previous.js";
import { formatCell, formatNumber, markdownTable, renderResults, renderSection } from "../../bench/lib/render.js";

const HTTP: BenchOutput = {
  bench: "http",
  title: "Request/response",
  command: "node dist/bench/http.js --quick",
  rows: [
    { table: "c=50", variant: "direct (no proxy)", rps: 55024.4, "rps vs haproxy": 3.0912, status: "ok" },
    { table: "c=50", variant: "HAProxy mTLS pair", rps: 17786, "rps vs haproxy": null, "rps per round": [17786, 17001], status: "ok" },
    { table: "c=50", variant: "weft L4 (HBONE)", status: "not run (variant not available: wired later)" },
    { table: "conn", variant: "direct (no proxy)", "conn/s": 10445, status: "ok" },
  ],
  notes: ["wrk -t1 in the client pod"],
  targets: [{ what: "weft rps vs HAProxy pair", target: ">= 0.6×", measured: null, met: null, note: "weft not run" }],
};

describe("bench output contract", () => {
  it("reads the last stdout line, ignoring progress before it", () => {
    const out = parseBenchOutput(`progress\n${JSON.stringify(HTTP)}\n\n`, "http");
    expect(out.rows).toHaveLength(4);
    expect(out.bench).toBe("http");
  });

  it("accepts a pretty-printed document without 'bench' (scripts older than the contract), named after the script", () => {
    const pretty = JSON.stringify({ rounds: 5, rows: [{ variant: "captured", medianUs: 46.9, perRoundUs: [51.1, 45.8] }] }, null, 2);
    const out = parseBenchOutput(pretty, "capture");
    expect(out.bench).toBe("capture");
    expect(out.rows[0]).toEqual({ variant: "captured", medianUs: 46.9, perRoundUs: [51.1, 45.8] });
    expect(out.rounds).toBe(5);
  });

  it("names what breaks the contract", () => {
    expect(() => parseBenchOutput("", "bulk")).toThrow(/bulk: printed nothing on stdout/);
    expect(() => parseBenchOutput("started\ncrashed here", "bulk")).toThrow(/bulk: the last stdout line is not JSON: crashed here/);
    expect(() => parseBenchOutput("[1,2]", "bulk")).toThrow(/not an object/);
    expect(() => parseBenchOutput('{"bench":"bulk"}', "bulk")).toThrow(/rows must be an array/);
    expect(() => parseBenchOutput('{"bench":"bulk","rows":[{"a":{"b":1}}]}', "bulk")).toThrow(/rows\[0\]\.a is object/);
    expect(() => parseBenchOutput('{"bench":"Bad Name","rows":[]}', "x")).toThrow(/short lowercase id/);
    expect(() => parseBenchOutput('{"bench":"x","rows":[],"targets":[{"what":"a","target":"b","measured":1,"met":null}]}', "x")).toThrow(
      /targets\[0\]\.measured/,
    );
    expect(() => validateBenchOutput({ bench: "x", rows: [{ v: Number.POSITIVE_INFINITY }] }, "x")).toThrow(/rows\[0\]\.v/);
  });
});

describe("RESULTS.md rendering", () => {
  it("formats ratios with ×, big numbers with separators, missing cells as —", () => {
    expect(formatCell("rps vs haproxy", 3.0912)).toBe("3.09×");
    expect(formatCell("rps", 55024.4)).toBe("55,024");
    expect(formatCell("p50 µs", 0.01234)).toBe("0.0123");
    expect(formatCell("rps", null)).toBe("—");
    expect(formatCell("rps", undefined)).toBe("—");
    expect(formatCell("ok", true)).toBe("yes");
    expect(formatCell("per round", [17786, 0.5, "x"])).toBe("17,786, 0.5, x");
    expect(formatNumber(-1234.6)).toBe("-1,235");
  });

  it("escapes pipes and newlines so a cell never breaks the table", () => {
    expect(markdownTable(["a"], [["x | y\nz"]])).toBe("| a |\n|---|\n| x \\| y z |");
  });

  it("renders one table per group, with status last and every row's columns", () => {
    const s = renderSection(HTTP);
    expect(s).toContain("## Request/response");
    expect(s).toContain("Command: `node dist/bench/http.js --quick`");
    expect(s).toContain("### c=50");
    expect(s).toContain("### conn");
    expect(s).toContain("| variant | rps | rps vs haproxy | rps per round | status |");
    expect(s).toContain("| direct (no proxy) | 55,024 | 3.09× | — | ok |");
    expect(s).toContain("| HAProxy mTLS pair | 17,786 | — | 17,786, 17,001 | ok |");
    expect(s).toContain("| weft L4 (HBONE) | — | — | — | not run (variant not available: wired later) |");
    expect(s).toContain("| direct (no proxy) | 10,445 | ok |");
  });

  it("renders extra fields of non-contract outputs as key: value lines", () => {
    const s = renderSection({ bench: "capture", rows: [{ variant: "captured", addedUs: 2.3 }], headline: { ratio: 1.04 }, rounds: 5 });
    expect(s).toContain("## capture");
    expect(s).not.toContain("###");
    expect(s).toContain('- headline: {"ratio":1.04}');
    expect(s).toContain("- rounds: 5");
  });

  it("puts machine, targets, sections and failures in one document", () => {
    const doc = renderResults({
      generatedAt: "2026-01-01T00:00:00Z",
      command: "npm run bench -- --quick",
      quick: true,
      machine: [
        ["CPU", "AMD EPYC (2 cores available)"],
        ["Kernel", "Linux 6.1"],
      ],
      outputs: [HTTP],
      failures: [{ bench: "bulk", error: "exited with 1", logTail: "[bulk] failed: curl: (7) refused" }],
    });
    expect(doc.startsWith("# weft benchmarks\n")).toBe(true);
    expect(doc).toContain("by `npm run bench -- --quick`");
    expect(doc).toContain("**Quick smoke run**");
    expect(doc).toContain("| CPU | AMD EPYC (2 cores available) |");
    expect(doc).toContain("## Targets");
    expect(doc).toContain("| weft rps vs HAProxy pair | >= 0.6× | — | not measured | weft not run |");
    expect(doc.indexOf("## Targets")).toBeLessThan(doc.indexOf("## Request/response"));
    expect(doc).toContain("## Did not complete");
    expect(doc).toContain("- **bulk**: exited with 1");
    expect(doc).toContain("  [bulk] failed: curl: (7) refused");
    expect(doc).not.toMatch(/\n{3,}/);
    expect(doc.endsWith("\n")).toBe(true);
  });

  it("marks met and missed targets", () => {
    const doc = renderResults({
      generatedAt: "t",
      command: "c",
      quick: false,
      machine: [],
      outputs: [
        {
          bench: "x",
          rows: [],
          targets: [
            { what: "a", target: ">= 0.5×", measured: "0.7×", met: true },
            { what: "b", target: "<= 2 KB", measured: "3 KB", met: false },
          ],
        },
      ],
      failures: [],
    });
    expect(doc).toContain("| a | >= 0.5× | 0.7× | met |  |");
    expect(doc).toContain("| b | <= 2 KB | 3 KB | **missed** |  |");
    expect(doc).not.toContain("Quick smoke run");
  });

  it("states the commit, and says loudly when the tree was dirty", () => {
    const base = { generatedAt: "t", command: "c", quick: false, machine: [], outputs: [], failures: [] };
    expect(renderResults({ ...base, git: { commit: "abc1234", dirty: false } })).toContain("Commit: `abc1234`, clean tree.");
    const dirty = renderResults({ ...base, git: { commit: "abc1234", dirty: true } });
    expect(dirty).toContain("`abc1234` **with uncommitted changes**");
    expect(dirty).not.toContain("clean tree");
  });

  it("prints a ratio's per-round spread inside its cell, not as a column of its own", () => {
    const section = renderSection({
      bench: "http",
      rows: [
        { variant: "weft", "rps vs haproxy": 0.9, "rps vs haproxy spread": [0.85, 0.95] },
        { variant: "one round", "rps vs haproxy": 0.8 },
      ],
    });
    expect(section).toContain("| weft | 0.9× (0.85–0.95) |");
    expect(section).toContain("| one round | 0.8× |");
    expect(section).not.toContain("spread");
  });

  it("does not paste the hand-written analysis: it only points to it", () => {
    const doc = renderResults({ generatedAt: "t", command: "c", quick: false, machine: [], outputs: [], failures: [] });
    expect(doc).toContain("bench/ANALYSIS.md");
    expect(doc).not.toContain("## Analysis");
  });
});

describe("comparing with the previous committed run", () => {
  const oldReport = [
    "| weft commit | 924a4cd with uncommitted changes |",
    "",
    "## Targets",
    "",
    "| target | bar | measured | result | note |",
    "|---|---|---|---|---|",
    "| weft rps vs HAProxy pair, keep-alive c=50 | >= 0.6× | 0.899× | met |  |",
    "| weft added p50 latency vs HAProxy pair's, keep-alive c=1 | <= 1.5× | 2.05× | **missed** |  |",
    "| weft idle agent RSS (per agent) | <= 80 MB | 1,079.6 MB | met |  |",
    "",
    "## Request/response",
  ].join("\n");
  const track = (what: string, op: ">=" | "<=", value: number) => ({
    what,
    target: "x",
    measured: `${value}×`,
    met: true,
    value,
    op,
    track: true,
  });

  it("reads the Targets table of a report written before the data block existed", () => {
    const prev = parsePrevious(oldReport);
    expect(prev?.commit).toBe("924a4cd with uncommitted changes");
    expect(prev?.values.get("weft rps vs HAProxy pair, keep-alive c=50")).toBe(0.899);
    expect(prev?.values.get("weft added p50 latency vs HAProxy pair's, keep-alive c=1")).toBe(2.05);
    expect(prev?.values.get("weft idle agent RSS (per agent)")).toBe(1079.6);
  });

  it("prefers the data block, which round-trips what a run measured", () => {
    const t = track("weft rps vs HAProxy pair, keep-alive c=50", ">=", 0.777);
    const prev = parsePrevious(`${oldReport}\n\n${dataBlock("abc1234", [t])}\n`);
    expect(prev).toEqual({ commit: "abc1234", values: new Map([[t.what, 0.777]]) });
    expect(parsePrevious(null)).toBeNull();
    expect(parsePrevious("# nothing here")).toBeNull();
  });

  it("allows 5 % worse in the bad direction only, per target", () => {
    const prev = parsePrevious(oldReport);
    const [up, down] = regressionChecks(
      [
        track("weft rps vs HAProxy pair, keep-alive c=50", ">=", 0.86),
        track("weft added p50 latency vs HAProxy pair's, keep-alive c=1", "<=", 2.2),
      ],
      prev,
    );
    // 0.86 ≥ 0.95 × 0.899 = 0.854: met. 2.2 > 1.05 × 2.05 = 2.1525: missed.
    expect(up).toMatchObject({ met: true });
    expect(up?.target).toContain("95 % of 0.899");
    expect(down).toMatchObject({ met: false });
    expect(down?.target).toContain("<= 2.15");
    const [worse] = regressionChecks([track("weft rps vs HAProxy pair, keep-alive c=50", ">=", 0.85)], prev);
    expect(worse?.met).toBe(false);
  });

  it("untracked targets are not compared; missing figures are not measured, with the reason", () => {
    const prev = parsePrevious(oldReport);
    expect(
      regressionChecks([{ what: "weft rps vs HAProxy pair, keep-alive c=50", target: "x", measured: "1×", met: true, value: 1 }], prev),
    ).toEqual([]);
    const [none] = regressionChecks([track("new figure", ">=", 1)], prev);
    expect(none).toMatchObject({ met: null, note: "the previous run has no such figure" });
    const [first] = regressionChecks([track("new figure", ">=", 1)], null);
    expect(first).toMatchObject({ met: null, note: "no previous RESULTS.md" });
  });
});

describe("collecting bench/run's results directory", () => {
  let dir = "";
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("keeps good outputs in order and lists failures with their stderr tail", () => {
    dir = mkdtempSync(join(tmpdir(), "weft-bench-report-test-"));
    const put = (name: string, out: string, rc: string, err = "") => {
      writeFileSync(join(dir, `${name}.out`), out);
      writeFileSync(join(dir, `${name}.rc`), rc);
      writeFileSync(join(dir, `${name}.err`), err);
    };
    put("http", `${JSON.stringify(HTTP)}\n`, "0\n");
    put("bulk", "", "1\n", `${Array.from({ length: 30 }, (_, i) => `line ${i}`).join("\n")}\n`);
    put("memory", "half a line", "0\n", "oops");
    put("capture", JSON.stringify({ rows: [] }), "0\n");
    put("slow", "", "124\n");
    const { outputs, failures } = collect(dir, ["http", "bulk", "memory"]);
    expect(outputs.map((o) => o.bench)).toEqual(["http", "capture"]);
    expect(failures.map((f) => [f.bench, f.error])).toEqual([
      ["bulk", "exited with 1"],
      ["memory", "memory: the last stdout line is not JSON: half a line"],
      ["slow", "timed out (bench/run's limit)"],
    ]);
    const tail = failures[0]?.logTail?.split("\n") ?? [];
    expect(tail).toHaveLength(15);
    expect(tail.at(-1)).toBe("line 29");
  });
});
