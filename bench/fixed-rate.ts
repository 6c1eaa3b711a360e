/**
 * Fixed-rate latency, the way the meshes publish theirs (Istio: fortio at a fixed rate over 16
 * connections; Linkerd: fixed rates at 100 connections): open-loop load, so latency counts from
 * when each request was due and a stall is not hidden (coordinated omission), every variant side
 * by side in interleaved rounds.
 *
 *   node dist/bench/fixed-rate.js [--quick] [--rounds 3] [--duration 10] [--variants direct,haproxy,weft,haproxy-http,weft-l7]
 *
 * The generator (bench/lib/open-loop.ts) runs in the client pod on node 1 against nginx in the
 * server pod on node 2, HTTP/1.1 keep-alive, 1 KiB responses. For each rate: p50/p90/p99 and the
 * same minus direct's in the same round ("added"), and the proxies' CPU per 1,000 rps.
 */
import { join } from "node:path";
import { type ActiveVariant, type BenchEnv, runBench, skippedRows } from "./lib/harness.js";
import type { OpenLoopResult } from "./lib/open-loop-core.js";
import type { BenchRow } from "./lib/output.js";
import { cpuSince, snapshotCpu } from "./lib/proc-stats.js";
import { medianOrNull, sig } from "./lib/stats.js";
import { SMALL_PATH } from "./lib/upstream.js";
import type { VariantName } from "./lib/variant.js";

/** Requests per second asked for, and connections they are spread over (Istio's 16). */
const RATES = [200, 1000] as const;
const CONNECTIONS = 16;
const VARIANTS: readonly VariantName[] = ["direct", "haproxy", "weft", "haproxy-http", "weft-l7"];
const GENERATOR = join(import.meta.dirname, "lib", "open-loop.js");

interface Sample extends OpenLoopResult {
  /** Proxy CPU, milliseconds per second of load per 1,000 rps (null: no proxy). */
  cpuMsPer1k: number | null;
}

await runBench(
  {
    script: "fixed-rate",
    defaultVariants: VARIANTS,
    numbers: [{ flag: "duration", help: "measured seconds per run (after 1 s of warm-up)", min: 1, max: 120, full: 10, quick: 2 }],
    maxConnections: () => CONNECTIONS * 2,
  },
  async (env) => {
    const seconds = env.numbers.duration as number;
    // samples[rate][variant][round]
    const samples = new Map<number, Map<string, (Sample | null)[]>>(
      RATES.map((r) => [r, new Map(env.active.map((v) => [v.name, Array<Sample | null>(env.args.rounds).fill(null)]))]),
    );
    for (let round = 0; round < env.args.rounds; round++) {
      for (const rate of RATES) {
        for (const v of env.order(round)) {
          env.log(`round ${round + 1}/${env.args.rounds} ${rate} rps ${v.name}`);
          const got = await run(env, v, rate, seconds).catch((e) => {
            env.fail(v, e);
            return null;
          });
          const list = samples.get(rate)?.get(v.name);
          if (list) list[round] = got;
        }
      }
    }
    for (const per of samples.values()) for (const name of per.keys()) if (!env.active.some((v) => v.name === name)) per.delete(name);
    const rows: BenchRow[] = [];
    for (const rate of RATES) {
      const table = `Fixed rate: ${rate} rps over ${CONNECTIONS} keep-alive connections, 1 KiB responses (open loop)`;
      rows.push(...tableRows(env, table, samples.get(rate) as Map<string, (Sample | null)[]>), ...skippedRows(table, env.skipped));
    }
    return {
      title: "Fixed-rate latency (open loop, HTTP/1.1)",
      rows,
      notes: [
        `bench/lib/open-loop.ts in the client pod on node 1, nginx in the server pod on node 2; ${CONNECTIONS} keep-alive connections; 1 s warm-up then ${seconds} s measured per run, ${env.args.rounds} round(s), variants interleaved.`,
        "Open loop: request i is due at start + i/rate whatever happened before; its latency runs from when it was due to the end of its response, so requests queued behind a stall count as late (no coordinated omission). 'max backlog' is the most requests ever waiting for a free connection: above 0 the path fell behind the rate.",
        "'added' is the variant's percentile minus direct's in the same round (median over rounds); the generator's own timer lateness (under 1 ms) is in both and cancels.",
        "Proxy CPU: utime+stime of the variant's proxy processes during the run, in ms per second of load per 1,000 rps (1,000 = one core per 1,000 rps).",
      ],
      targets: [],
    };
  },
);

async function run(env: BenchEnv, v: ActiveVariant, rate: number, seconds: number): Promise<Sample> {
  const cpu = snapshotCpu(v.setup.proxyPids);
  const started = process.hrtime.bigint();
  const out = await env.cluster.exec(
    v.clientPod,
    [process.execPath, GENERATOR, env.url(v, SMALL_PATH), String(rate), String(CONNECTIONS), String(seconds), "1"],
    { timeoutMs: (seconds + 40) * 1000 },
  );
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  const cpuS = cpuSince(cpu);
  const line = out.stdout.trim().split("\n").pop() ?? "";
  const res = JSON.parse(line) as OpenLoopResult;
  if (res.errors > 0) throw new Error(`${res.errors} failed requests through ${v.title} at ${rate} rps`);
  return {
    ...res,
    // CPU over the generator's whole run (warm-up and drain included) divided by that wall time.
    cpuMsPer1k: v.setup.proxyPids.length ? ((cpuS / wallS) * 1000) / (rate / 1000) : null,
  };
}

function tableRows(env: BenchEnv, table: string, per: Map<string, (Sample | null)[]>): BenchRow[] {
  const col = (name: string, pick: (x: Sample) => number | null) => (per.get(name) ?? []).map((x) => (x ? pick(x) : null));
  const rows: BenchRow[] = [];
  for (const v of env.active) {
    const xs = (per.get(v.name) ?? []).filter((x): x is Sample => x !== null);
    if (!xs.length) continue;
    const row: BenchRow = { table, variant: v.title };
    const med = (pick: (x: Sample) => number | null) => {
      const m = medianOrNull(col(v.name, pick));
      return m === null ? null : sig(m, 3);
    };
    row["achieved rps"] = med((x) => x.achievedRps);
    for (const q of ["p50", "p90", "p99"] as const) row[`${q} µs`] = med((x) => x[q]);
    for (const q of ["p50", "p90", "p99"] as const) {
      const base = per.has("direct") ? col("direct", (x) => x[q]) : null;
      const mine = col(v.name, (x) => x[q]);
      const added =
        v.name === "direct" || !base
          ? null
          : medianOrNull(mine.map((x, i) => (x === null || base[i] == null ? null : x - (base[i] as number))));
      row[`added ${q} µs`] = added === null ? null : Math.round(added);
    }
    row["proxy CPU ms/s per 1k rps"] = med((x) => x.cpuMsPer1k);
    row["max backlog"] = Math.max(...xs.map((x) => x.maxBacklog));
    row["p99 per round"] = xs.map((x) => Math.round(x.p99));
    row.status = "ok";
    rows.push(row);
  }
  return rows;
}
