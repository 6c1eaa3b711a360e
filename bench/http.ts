/**
 * Request/response and new connections per second, every variant side by side.
 *
 *   node dist/bench/http.js [--quick] [--rounds 3] [--duration 10] [--variants direct,haproxy,weft]
 *
 * wrk runs in each variant's client pod (node 1) against nginx in its server pod (node 2):
 *   keep-alive c=1   HTTP/1.1 keep-alive, 1 KiB body, one connection: latency without queueing
 *   keep-alive c=50  the same with 50 connections: throughput, CPU per request
 *   new connections  50 concurrent, `Connection: close`: one request per TCP connection, which the
 *                    server's accept counter confirms (requests per connection ≈ 1)
 * Each round runs every scenario for every variant (rotating the order); proxy CPU is the
 * utime+stime its processes gained during the run, RSS is read right after it.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ActiveVariant, type BenchEnv, missingRatioReason, runBench, skippedRows } from "./lib/harness.js";
import type { BenchRow } from "./lib/output.js";
import { cpuSince, snapshotCpu, totalRss } from "./lib/proc-stats.js";
import { median, medianOrNull, pairedAddedRatio, pairedRatio, sig } from "./lib/stats.js";
import { checkTarget } from "./lib/targets.js";
import { SMALL_PATH } from "./lib/upstream.js";
import { describeWrkErrors, parseWrkResult, WRK_LUA, wrkArgs, wrkErrorCount } from "./lib/wrk.js";

interface Scenario {
  id: "c1" | "c50" | "conn";
  table: string;
  connections: number;
  close: boolean;
}

const SCENARIOS: readonly Scenario[] = [
  { id: "c1", table: "Request/response: HTTP/1.1 keep-alive, 1 KiB body, 1 connection", connections: 1, close: false },
  { id: "c50", table: "Request/response: HTTP/1.1 keep-alive, 1 KiB body, 50 connections", connections: 50, close: false },
  { id: "conn", table: "New connections: one request per connection (Connection: close), 50 concurrent", connections: 50, close: true },
];

/** One wrk run's numbers. */
interface Sample {
  rps: number;
  p50: number;
  p99: number;
  /** Proxy CPU seconds per 10k requests (null: no proxy). */
  cpuPer10k: number | null;
  rssMiB: number | null;
  /** Requests per TCP connection the server accepted (new-connection runs only). */
  perConn: number | null;
}

await runBench(
  {
    script: "http",
    tools: ["wrk"],
    numbers: [{ flag: "duration", help: "seconds per wrk run", min: 1, max: 120, full: 10, quick: 2 }],
    maxConnections: () => 1000,
  },
  async (env) => {
    const duration = env.numbers.duration as number;
    const script = join(env.workDir, "wrk-result.lua");
    writeFileSync(script, WRK_LUA);
    // samples[scenario][variant][round]; a round a variant did not complete stays null.
    const samples = new Map<string, Map<string, (Sample | null)[]>>();
    for (const s of SCENARIOS)
      samples.set(s.id, new Map(env.active.map((v) => [v.name, Array<Sample | null>(env.args.rounds).fill(null)])));

    env.log("warm-up: 1 s per variant per scenario (not recorded)");
    for (const v of [...env.active]) {
      for (const s of SCENARIOS) if (env.active.includes(v)) await run(env, v, s, 1, script).catch((e) => env.fail(v, e));
    }
    for (let r = 0; r < env.args.rounds; r++) {
      for (const s of SCENARIOS) {
        for (const v of env.order(r)) {
          env.log(`round ${r + 1}/${env.args.rounds} ${s.id} ${v.name}`);
          const got = await run(env, v, s, duration, script).catch((e) => {
            env.fail(v, e);
            return null;
          });
          const list = samples.get(s.id)?.get(v.name);
          if (list) list[r] = got;
        }
      }
    }

    // A variant that failed part-way has only rows saying so: no ratio may rest on its partial numbers.
    for (const per of samples.values()) for (const name of per.keys()) if (!env.active.some((v) => v.name === name)) per.delete(name);
    const rows: BenchRow[] = [];
    for (const s of SCENARIOS)
      rows.push(...scenarioRows(env, s, samples.get(s.id) as Map<string, (Sample | null)[]>), ...skippedRows(s.table, env.skipped));
    return {
      title: "Request/response and new connections (HTTP/1.1, wrk)",
      rows,
      notes: [
        `wrk -t1 in the client pod on node 1, nginx (1 worker, keep-alive) in the server pod on node 2; ${duration} s per run, ${env.args.rounds} round(s) after a 1 s warm-up per variant and scenario.`,
        "Latency is wrk's: from writing the request to the end of the response (for new connections the TCP handshake to the first hop is not in it). 'added p50' is the variant's p50 minus direct's in the same round.",
        "Proxy CPU is utime+stime of the variant's proxy processes during the run, per 10k requests; RSS is their resident memory right after it (all proxies summed).",
        "New connections: 'requests per connection' is wrk's completed requests over the connections nginx accepted in the run; ≈1 proves one request per connection.",
      ],
      targets: targets(env, samples),
    };
  },
);

async function run(env: BenchEnv, v: ActiveVariant, s: Scenario, seconds: number, script: string): Promise<Sample> {
  const before = s.close ? await env.serverStatus(v) : null;
  const cpu = snapshotCpu(v.setup.proxyPids);
  const out = await env.cluster.exec(
    v.clientPod,
    [
      "wrk",
      ...wrkArgs({
        url: env.url(v, SMALL_PATH),
        connections: s.connections,
        threads: 1,
        durationS: seconds,
        timeoutS: 5,
        headers: s.close ? ["Connection: close"] : [],
        scriptPath: script,
      }),
    ],
    { timeoutMs: (seconds + 30) * 1000 },
  );
  const cpuS = cpuSince(cpu);
  const rss = v.setup.proxyPids.length ? totalRss(v.setup.proxyPids) : null;
  const res = parseWrkResult(out.stdout);
  if (res.requests === 0) throw new Error(`wrk completed no request through ${v.title}`);
  if (wrkErrorCount(res.errors) > 0)
    throw new Error(`wrk reported errors through ${v.title} (${describeWrkErrors(res.errors)}) in ${s.id}`);
  let perConn: number | null = null;
  if (before) {
    const after = await env.serverStatus(v);
    // The second status request is itself one accepted connection.
    const conns = after.accepts - before.accepts - 1;
    perConn = conns > 0 ? res.requests / conns : null;
    if (perConn === null || perConn > 1.05)
      throw new Error(`new-connection run reused connections: ${res.requests} requests over ${conns} accepted connections`);
  }
  return {
    rps: res.rps,
    p50: res.latencyUs.p50,
    p99: res.latencyUs.p99,
    cpuPer10k: v.setup.proxyPids.length ? cpuS / (res.requests / 10_000) : null,
    rssMiB: rss === null ? null : rss / 2 ** 20,
    perConn,
  };
}

function scenarioRows(env: BenchEnv, s: Scenario, per: Map<string, (Sample | null)[]>): BenchRow[] {
  const col = (name: string, pick: (x: Sample) => number | null) => (per.get(name) ?? []).map((x) => (x ? pick(x) : null));
  const direct = per.has("direct") ? col("direct", (x) => x.rps) : null;
  const haproxy = per.has("haproxy") ? col("haproxy", (x) => x.rps) : null;
  const rate = s.close ? "conn/s" : "rps";
  const unit = s.close ? "conn" : "req";
  const rows: BenchRow[] = [];
  for (const v of env.active) {
    const xs = (per.get(v.name) ?? []).filter((x): x is Sample => x !== null);
    if (xs.length === 0) continue;
    const rps = col(v.name, (x) => x.rps);
    const row: BenchRow = {
      table: s.table,
      variant: v.title,
      [rate]: sig(median(xs.map((x) => x.rps))),
      "p50 µs": median(xs.map((x) => x.p50)),
      "p99 µs": median(xs.map((x) => x.p99)),
    };
    if (s.close) row["requests per connection"] = round3(medianOrNull(xs.map((x) => x.perConn)));
    row[`proxy CPU s /10k ${unit}`] = round3(medianOrNull(xs.map((x) => x.cpuPer10k)));
    row["proxy RSS MiB"] = round3(medianOrNull(xs.map((x) => x.rssMiB)));
    row[`${rate} vs direct`] = v.name === "direct" || !direct ? null : round3(pairedRatio(rps, direct));
    row[`${rate} vs haproxy`] = v.name === "haproxy" || !haproxy ? null : round3(pairedRatio(rps, haproxy));
    if (!s.close) {
      const p50 = col(v.name, (x) => x.p50);
      const dp50 = per.has("direct") ? col("direct", (x) => x.p50) : null;
      row["added p50 µs"] =
        v.name === "direct" || !dp50
          ? null
          : medianOrNull(p50.map((x, i) => (x === null || dp50[i] == null ? null : x - (dp50[i] as number))));
      row["added p50 vs haproxy"] =
        v.name === "haproxy" || v.name === "direct" || !dp50 || !per.has("haproxy")
          ? null
          : round3(
              pairedAddedRatio(
                p50,
                col("haproxy", (x) => x.p50),
                dp50,
              ),
            );
    }
    row["CPU vs haproxy"] =
      v.name === "haproxy" || !per.has("haproxy")
        ? null
        : round3(
            pairedRatio(
              col(v.name, (x) => x.cpuPer10k),
              col("haproxy", (x) => x.cpuPer10k),
            ),
          );
    row[`${rate} per round`] = xs.map((x) => Math.round(x.rps));
    row.status = "ok";
    rows.push(row);
  }
  return rows;
}

function targets(env: BenchEnv, by: Map<string, Map<string, (Sample | null)[]>>) {
  const missing = missingRatioReason(env);
  const ratioOf = (scenario: string, pick: (x: Sample) => number | null, added = false): number | null => {
    const per = by.get(scenario);
    if (!per?.has("weft") || !per.has("haproxy")) return null;
    const col = (n: string) => (per.get(n) ?? []).map((x) => (x ? pick(x) : null));
    if (added) return per.has("direct") ? pairedAddedRatio(col("weft"), col("haproxy"), col("direct")) : null;
    return pairedRatio(col("weft"), col("haproxy"));
  };
  return [
    checkTarget(
      { what: "weft rps vs HAProxy pair, keep-alive c=50", op: ">=", bound: 0.6, unit: "×" },
      ratioOf("c50", (x) => x.rps),
      missing,
    ),
    checkTarget(
      { what: "weft added p50 latency vs HAProxy pair's, keep-alive c=1", op: "<=", bound: 1.5, unit: "×" },
      ratioOf("c1", (x) => x.p50, true),
      missing,
    ),
    checkTarget(
      { what: "weft proxy CPU per 10k requests vs HAProxy pair's, c=50", op: "<=", bound: 2, unit: "×" },
      ratioOf("c50", (x) => x.cpuPer10k),
      missing,
    ),
    checkTarget(
      { what: "weft new connections/s vs HAProxy pair", op: ">=", bound: 0.5, unit: "×" },
      ratioOf("conn", (x) => x.rps),
      missing,
    ),
  ];
}

function round3(v: number | null): number | null {
  return v === null ? null : sig(v, 3);
}
