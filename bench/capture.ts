/**
 * Capture cost: connect() latency from a pod with eBPF capture vs without, in one run.
 *
 *   node dist/bench/capture.js [--quick] [--rounds 5] [--connects 2000]
 *
 * Builds a throwaway 2-node local cluster (weft-bcap<pid>), runs `weft redirect serve` on node 1
 * only, and measures, from inside pods, the time from connect() to the 'connect' event against
 * same-shaped listeners (the redirect probe, on the node's gateway address, in the node's system
 * cgroup):
 *   captured     node-1 pod, enrolled, dials another pod's ip:port; capture sends it to 10.244.1.1:15001
 *   skip-path    the same pod dials 10.244.1.1:15002 directly (programs run, decide not to capture)
 *   unenrolled   a non-enrolled node-1 pod dials 10.244.1.1:15002 (programs run, pod not enrolled)
 *   no-programs  a node-2 pod dials 10.244.2.1:15002 (node 2 has no programs at all): the baseline
 * The headline ratio is captured / skip-path: one client process, the two targets interleaved
 * connect by connect, so both see the same JIT state, CPU and noise; the difference is exactly
 * what capture adds (socket storage, exclusion lookups, the rewrite, the sockops 4-tuple and its
 * removal at close). The cross-process variants (unenrolled, no-programs) show the cost of having
 * the programs attached at all, with more noise. Clients run pinned to one CPU, in rotating order
 * each round; the result is the median over rounds of each variant's median. Only cluster addresses are
 * dialled; every loop is bounded; the cluster is removed at the end, even on failure.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errorMessage } from "../common/errors.js";
import { cgroup2Root } from "../native/cgroup.js";
import { clusterPodRedirects } from "../scripts/cluster/pod-redirects.js";
import { loadState } from "../scripts/cluster/state.js";
import { type BenchOutput, type BenchRow, emitBenchOutput } from "./lib/output.js";
import { median, perRoundRatios, sig, spreadOf } from "./lib/stats.js";
import { checkTarget } from "./lib/targets.js";

const ROOT = join(import.meta.dirname, "..", "..");
const WEFT = join(ROOT, "dist", "agent", "cli", "main.js");
const PROBE = join(ROOT, "test", "helpers", "redirect-probe.mjs");

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!Number.isInteger(v) || v < 1 || v > 100_000) throw new Error(`${name} must be a whole number from 1 to 100000`);
  return v;
}

function weft(args: readonly string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [WEFT, ...args], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`weft ${args.slice(0, 4).join(" ")}…: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface TargetStats {
  target: string;
  median: number;
  p90: number;
  mean: number;
  n: number;
  errors: number;
}

/** The bench contract's output: every figure computed here, from the per-round medians. */
function captureOutput(
  perRound: Map<string, number[]>,
  ratios: number[],
  run: { rounds: number; connects: number; captured: number },
): BenchOutput {
  const variants = ["captured", "skip-path", "unenrolled", "no-programs"];
  const base = perRound.get("no-programs") ?? [];
  const rows: BenchRow[] = variants.map((v) => {
    const xs = perRound.get(v) ?? [];
    const vsBase = spreadOf(perRoundRatios(xs, base));
    return {
      variant: v,
      "connect µs": sig(median(xs), 3),
      "vs no-programs": vsBase ? sig(vsBase.median, 3) : null,
      ...(vsBase && vsBase.n > 1 ? { "vs no-programs spread": [sig(vsBase.min, 3), sig(vsBase.max, 3)] } : {}),
      "µs per round": xs.map((x) => sig(x, 3)),
    };
  });
  const headline = spreadOf(ratios);
  const cap = perRound.get("captured") ?? [];
  const skip = perRound.get("skip-path") ?? [];
  const added = spreadOf(cap.map((x, i) => x - (skip[i] ?? Number.NaN)).filter(Number.isFinite));
  rows.push({
    variant: "captured vs skip-path (same process, interleaved): the cost of capture",
    "connect µs": added ? sig(added.median, 3) : null,
    "vs no-programs": null,
    "captured vs skip-path": headline ? sig(headline.median, 3) : null,
    ...(headline && headline.n > 1 ? { "captured vs skip-path spread": [sig(headline.min, 3), sig(headline.max, 3)] } : {}),
    "µs per round": cap.map((x, i) => sig(x - (skip[i] ?? 0), 3)),
  });
  return {
    bench: "capture",
    title: "Capture cost: connect() with eBPF capture vs without",
    command: `node dist/bench/capture.js${process.argv.length > 2 ? ` ${process.argv.slice(2).join(" ")}` : ""}`,
    rows,
    notes: [
      `Time from net.connect() to 'connect' from inside pods, against same-shaped listeners on the node's gateway; ${run.rounds} round(s) × ${run.connects} connects per variant, clients pinned to CPU 1, order rotated each round; each cell is the median over rounds of per-round medians (µs).`,
      "captured: an enrolled pod dials another pod, rewritten to the proxy port; skip-path: the same process dials the proxy port directly (programs run, decide not to capture), interleaved connect by connect. The headline is captured / skip-path; its last row's 'connect µs' is the added µs (median of per-round differences).",
      "unenrolled and no-programs are other processes (a non-enrolled pod; a node without programs): they show the cost of programs being attached at all, with a few µs of process-to-process noise.",
      `Connections captured during the run (the programs' own counter): ${run.captured}.`,
    ],
    targets: [checkTarget({ what: "capture adds to a connect (captured − skip-path)", op: "<=", bound: 5, unit: "µs" }, added)],
  };
}

async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const rounds = arg("--rounds", quick ? 2 : 5);
  const connects = arg("--connects", quick ? 500 : 2000);
  const name = `weft-bcap${process.pid % 10000}`;
  const dir = mkdtempSync(join(tmpdir(), "weft-bench-capture-"));
  const exec = (place: string, argv: readonly string[], detach = false) =>
    weft(["cluster", "exec", "--name", name, ...(detach ? ["--detach"] : []), place, "--", ...argv]);
  try {
    await weft(["cluster", "down", "--name", name]).catch(() => undefined);
    await weft(["cluster", "up", "--name", name, "--nodes", "2", "--pods-per-node", "2"]);
    const state = loadState(name);
    if (!state) throw new Error("cluster state missing");
    const ip = (pod: string) => state.pods.find((p) => p.name === pod)?.ip as string;
    await exec("n1-p2", [process.execPath, join(ROOT, "test", "helpers", "probe.mjs"), "echo-server", "7000"], true);
    for (const [node, port] of [
      [1, 15001],
      [1, 15002],
      [2, 15002],
    ] as const) {
      await exec(`node${node}`, [process.execPath, PROBE, "proxy-listen", `10.244.${node}.1`, String(port)], true);
    }
    const podsFile = join(dir, "pods.json");
    const pods = clusterPodRedirects(state, 1, {
      cgroupRoot: cgroup2Root(),
      policy: (p) => (p.name === "n1-p1" ? { capture: true, inbound: "off" } : null),
    });
    writeFileSync(podsFile, JSON.stringify(pods));
    const cg = join(cgroup2Root(), name, "node1");
    const pinDir = `/sys/fs/bpf/${name}-node1`;
    await exec(
      "node1",
      [
        process.execPath,
        WEFT,
        "redirect",
        "serve",
        "--pin-dir",
        pinDir,
        "--pod-cgroup-parent",
        join(cg, "pods"),
        "--proxy-cgroup",
        join(cg, "system"),
        "--proxy-address",
        "10.244.1.1",
        "--pods",
        podsFile,
      ],
      true,
    );
    await until("capture in place", async () => {
      const s = JSON.parse(await weft(["redirect", "status", "--pin-dir", pinDir, "-o", "json"])) as { pods: unknown[]; links: unknown[] };
      return s.pods.length === 1 && s.links.length === 8;
    });
    await until("listeners up", async () => {
      const out = await exec("n1-p1", [process.execPath, PROBE, "bench", "1", `${ip("n1-p2")}:7000`, "10.244.1.1:15002"]);
      return (JSON.parse(out) as { targets: TargetStats[] }).targets.every((t) => t.errors === 0);
    });

    const clients: { pod: string; variants: [string, string][] }[] = [
      {
        pod: "n1-p1",
        variants: [
          ["captured", `${ip("n1-p2")}:7000`],
          ["skip-path", "10.244.1.1:15002"],
        ],
      },
      { pod: "n1-p2", variants: [["unenrolled", "10.244.1.1:15002"]] },
      { pod: "n2-p1", variants: [["no-programs", "10.244.2.1:15002"]] },
    ];
    // Pinning the client to one CPU removes scheduler migration from the numbers.
    const pin = ["taskset", "-c", "1"];
    const perRound = new Map<string, number[]>();
    const ratios: number[] = [];
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < clients.length; k++) {
        const c = clients[(r + k) % clients.length] as (typeof clients)[number];
        const out = await exec(c.pod, [...pin, process.execPath, PROBE, "bench", String(connects), ...c.variants.map(([, t]) => t)], false);
        const res = JSON.parse(out) as { targets: TargetStats[] };
        if (c.pod === "n1-p1") ratios.push((res.targets[0] as TargetStats).median / (res.targets[1] as TargetStats).median);
        res.targets.forEach((t, i) => {
          const variant = (c.variants[i] as [string, string])[0];
          if (t.errors > 0) throw new Error(`${variant}: ${t.errors} failed connects`);
          perRound.set(variant, [...(perRound.get(variant) ?? []), t.median]);
        });
      }
    }
    const status = JSON.parse(await weft(["redirect", "status", "--pin-dir", pinDir, "-o", "json"])) as { stats: Record<string, number> };
    emitBenchOutput(captureOutput(perRound, ratios, { rounds, connects, captured: status.stats.captured ?? 0 }));
  } finally {
    await weft(["cluster", "down", "--name", name]).catch((e) => process.stderr.write(`cleanup: ${errorMessage(e)}\n`));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
