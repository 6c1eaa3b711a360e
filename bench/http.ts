/**
 * Request/response and new connections per second, every variant side by side.
 *
 *   node dist/bench/http.js [--quick] [--rounds 3] [--duration 10] [--variants direct,direct-same-node,haproxy,haproxy-http,weft,weft-same-node,weft-l7,weft-l7-authz1,weft-l7-authz]
 *
 * wrk runs in each variant's client pod (node 1) against nginx in its server pod (node 2):
 *   keep-alive c=1   HTTP/1.1 keep-alive, 1 KiB body, one connection: latency without queueing
 *   keep-alive c=50  the same with 50 connections: throughput, CPU per request
 *   new connections  50 concurrent, `Connection: close`: one request per TCP connection, which the
 *                    server's accept counter confirms (requests per connection ≈ 1)
 * Each round runs every scenario for every variant (in an order that changes per round); proxy CPU is the
 * utime+stime its processes gained during the run, RSS is read right after it. The L4 tables
 * compare weft's L4 path with the HAProxy pair in TCP mode; the L7 tables compare weft's L7 path
 * (a Service port declared http) with the pair in HTTP mode, weft L4 and direct, from the same
 * interleaved rounds. New connections are measured on the L4 paths. The authorization table
 * compares weft L7 with 100 AuthorizationPolicies at the destination against weft L7 with none
 * (keep-alive c=50 only): its p50 ratio is the policies' cost. The same-node tables put weft's
 * kernel splice between two pods of node 1 beside the same pods without a proxy and the HAProxy pair.
 */
import { type BenchEnv, missingRatioReason, runBench, skippedRows } from "./lib/harness.js";
import { runs, SCENARIOS, type TableSpec, tableSpecs } from "./lib/http-tables.js";
import type { BenchRow } from "./lib/output.js";
import { median, medianOrNull, pairedAddedRatioSpread, pairedRatioSpread, type Spread, sig } from "./lib/stats.js";
import { checkTarget } from "./lib/targets.js";
import type { VariantName } from "./lib/variant.js";
import { DURATION_FLAG, type Sample, writeWrkScript, wrkRun } from "./lib/wrk-run.js";

// Declared before the top-level await below runs the report that reads it.
/** Baselines without a proxy: compared by rate and p50 only. */
const NO_PROXY: ReadonlySet<VariantName> = new Set<VariantName>(["direct", "direct-same-node"]);

await runBench(
  {
    script: "http",
    tools: ["wrk"],
    numbers: [DURATION_FLAG],
    maxConnections: () => 1000,
  },
  async (env) => {
    const duration = env.numbers.duration as number;
    const script = writeWrkScript(env.workDir);
    // samples[scenario][variant][round]; a round a variant did not complete stays null.
    const samples = new Map<string, Map<string, (Sample | null)[]>>();
    for (const s of SCENARIOS)
      samples.set(
        s.id,
        new Map(env.active.filter((v) => runs(s, v.name)).map((v) => [v.name, Array<Sample | null>(env.args.rounds).fill(null)])),
      );

    env.log("warm-up: 1 s per variant per scenario (not recorded)");
    for (const v of [...env.active]) {
      for (const s of SCENARIOS)
        if (env.active.includes(v) && runs(s, v.name)) await wrkRun(env, v, s, 1, script).catch((e) => env.fail(v, e));
    }
    for (let r = 0; r < env.args.rounds; r++) {
      for (const s of SCENARIOS) {
        for (const v of env.order(r)) {
          if (!runs(s, v.name)) continue;
          env.log(`round ${r + 1}/${env.args.rounds} ${s.id} ${v.name}`);
          const got = await wrkRun(env, v, s, duration, script).catch((e) => {
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
    for (const spec of tableSpecs())
      rows.push(
        ...tableRows(env, spec, samples.get(spec.scenario.id) as Samples),
        ...skippedRows(
          spec.table,
          env.skipped.filter((x) => spec.variants.includes(x.name)),
        ),
      );
    return {
      title: "Request/response and new connections (HTTP/1.1, wrk)",
      rows,
      notes: [
        `wrk -t1 in the client pod on node 1, nginx (1 worker, keep-alive) in the server pod on node 2; ${duration} s per run, ${env.args.rounds} round(s) after a 1 s warm-up per variant and scenario.`,
        "Latency is wrk's: from writing the request to the end of the response (for new connections the TCP handshake to the first hop is not in it). 'added p50' is the variant's p50 minus direct's in the same round.",
        "Proxy CPU is utime+stime of the variant's proxy processes during the run, per 10k requests; RSS is their resident memory right after it (all proxies summed).",
        "New connections: 'requests per connection' is wrk's completed requests over the connections nginx accepted in the run; ≈1 proves one request per connection.",
        "Ratios are medians of the per-round ratios, with their spread across rounds (min–max) in brackets; a target is met only when its median is.",
        "L7 tables: 'weft L7' calls a Service VIP whose port declares appProtocol http (node 1's agent parses and routes each request); 'HAProxy mTLS pair, HTTP mode' is the same pair with `mode http` on both halves, keep-alive and `http-reuse always`. Both weft rows use the same two agents, so their RSS is the same processes.",
        "Same-node tables: client and server pods both on node 1. 'weft L4, same node' is node 1's agent deciding each connection and pairing its two sockets in the kernel (sockhash, sk_skb verdict); 'direct, same node' is the same two pods with no proxy. The HAProxy pair's row is the cross-node pair of the L4 tables (same rounds). 'added' columns are over the cross-node direct path, so a same-node row can be below it.",
        "L7 authorization table: with no policy the destination splices the tunnelled bytes at L4, so 'vs weft-l7' is the whole cost of checking requests at the destination (its HTTP parsing plus the policies); with 1 policy it already parses every request, so 'vs weft-l7-authz1' (the tracked target) is the cost of the 100 policies themselves.",
      ],
      targets: targets(env, samples),
    };
  },
);

type Samples = Map<string, (Sample | null)[]>;

function tableRows(env: BenchEnv, spec: TableSpec, per: Samples): BenchRow[] {
  const s = spec.scenario;
  const col = (name: string, pick: (x: Sample) => number | null) => (per.get(name) ?? []).map((x) => (x ? pick(x) : null));
  const rate = s.close ? "conn/s" : "rps";
  const unit = s.close ? "conn" : "req";
  const rows: BenchRow[] = [];
  const direct = per.has("direct");
  for (const v of env.active) {
    if (!spec.variants.includes(v.name)) continue;
    const xs = (per.get(v.name) ?? []).filter((x): x is Sample => x !== null);
    if (xs.length === 0) continue;
    const row: BenchRow = {
      table: spec.table,
      variant: v.title,
      [rate]: sig(median(xs.map((x) => x.rps))),
      "p50 µs": median(xs.map((x) => x.p50)),
      "p99 µs": median(xs.map((x) => x.p99)),
    };
    if (s.close) row["requests per connection"] = round3(medianOrNull(xs.map((x) => x.perConn)));
    row[`proxy CPU s /10k ${unit}`] = round3(medianOrNull(xs.map((x) => x.cpuPer10k)));
    row["proxy RSS MiB"] = round3(medianOrNull(xs.map((x) => x.rssMiB)));
    const put = (name: string, sp: Spread | null) => {
      row[name] = sp ? round3(sp.median) : null;
      if (sp && sp.n > 1) row[`${name} spread`] = [round3(sp.min) as number, round3(sp.max) as number];
    };
    for (const b of spec.baselines)
      put(
        `${rate} vs ${b}`,
        v.name === b || !per.has(b)
          ? null
          : pairedRatioSpread(
              col(v.name, (x) => x.rps),
              col(b, (x) => x.rps),
            ),
      );
    if (spec.p50Ratio)
      for (const b of spec.baselines.filter((x) => x !== "direct"))
        put(
          `p50 vs ${b}`,
          v.name === b || !per.has(b)
            ? null
            : pairedRatioSpread(
                col(v.name, (x) => x.p50),
                col(b, (x) => x.p50),
              ),
        );
    if (!s.close) {
      for (const q of ["p50", "p99"] as const) {
        const mine = col(v.name, (x) => x[q]);
        const base = direct ? col("direct", (x) => x[q]) : null;
        row[`added ${q} µs`] =
          v.name === "direct" || !base
            ? null
            : medianOrNull(mine.map((x, i) => (x === null || base[i] == null ? null : x - (base[i] as number))));
      }
      // Added latency and proxy CPU compare proxies: a baseline with no proxy has neither.
      for (const b of spec.baselines.filter((x) => !NO_PROXY.has(x)))
        put(
          `added p50 vs ${b}`,
          v.name === b || v.name === "direct" || !direct || !per.has(b)
            ? null
            : pairedAddedRatioSpread(
                col(v.name, (x) => x.p50),
                col(b, (x) => x.p50),
                col("direct", (x) => x.p50),
              ),
        );
    }
    for (const b of spec.baselines.filter((x) => !NO_PROXY.has(x)))
      put(
        `CPU vs ${b}`,
        v.name === b || v.name === "direct" || !per.has(b)
          ? null
          : pairedRatioSpread(
              col(v.name, (x) => x.cpuPer10k),
              col(b, (x) => x.cpuPer10k),
            ),
      );
    row[`${rate} per round`] = xs.map((x) => Math.round(x.rps));
    row.status = "ok";
    rows.push(row);
  }
  return rows;
}

function targets(env: BenchEnv, by: Map<string, Samples>) {
  const spreadOf = (scenario: string, a: VariantName, b: VariantName, pick: (x: Sample) => number | null, added = false): Spread | null => {
    const per = by.get(scenario);
    if (!per?.has(a) || !per.has(b)) return null;
    const col = (n: string) => (per.get(n) ?? []).map((x) => (x ? pick(x) : null));
    if (added) return per.has("direct") ? pairedAddedRatioSpread(col(a), col(b), col("direct")) : null;
    return pairedRatioSpread(col(a), col(b));
  };
  const l4 = missingRatioReason(env);
  const l7 = missingRatioReason(env, ["weft-l7", "haproxy-http"]);
  const authz = missingRatioReason(env, ["weft-l7-authz", "weft-l7-authz1"]);
  const sameNode = missingRatioReason(env, ["weft-same-node", "haproxy"]);
  return [
    checkTarget(
      { what: "weft rps vs HAProxy pair, keep-alive c=50", op: ">=", bound: 1, unit: "×", trackRegression: true },
      spreadOf("c50", "weft", "haproxy", (x) => x.rps),
      l4,
    ),
    checkTarget(
      { what: "weft added p50 latency vs HAProxy pair's, keep-alive c=1", op: "<=", bound: 1, unit: "×", trackRegression: true },
      spreadOf("c1", "weft", "haproxy", (x) => x.p50, true),
      l4,
    ),
    checkTarget(
      { what: "weft added p99 latency vs HAProxy pair's, keep-alive c=1", op: "<=", bound: 1.2, unit: "×" },
      spreadOf("c1", "weft", "haproxy", (x) => x.p99, true),
      l4,
    ),
    checkTarget(
      { what: "weft proxy CPU per 10k requests vs HAProxy pair's, c=50", op: "<=", bound: 2, unit: "×", trackRegression: true },
      spreadOf("c50", "weft", "haproxy", (x) => x.cpuPer10k),
      l4,
    ),
    checkTarget(
      { what: "weft new connections/s vs HAProxy pair", op: ">=", bound: 2, unit: "×", trackRegression: true },
      spreadOf("conn", "weft", "haproxy", (x) => x.rps),
      l4,
    ),
    checkTarget(
      { what: "weft L7 rps vs HAProxy HTTP-mode pair, keep-alive c=50", op: ">=", bound: 0.8, unit: "×" },
      spreadOf("c50", "weft-l7", "haproxy-http", (x) => x.rps),
      l7,
    ),
    checkTarget(
      { what: "weft L7 added p50 latency vs HAProxy HTTP-mode pair's, keep-alive c=1", op: "<=", bound: 1.5, unit: "×" },
      spreadOf("c1", "weft-l7", "haproxy-http", (x) => x.p50, true),
      l7,
    ),
    checkTarget(
      { what: "weft same-node (kernel splice) rps vs HAProxy pair, keep-alive c=50", op: ">=", bound: 1, unit: "×" },
      spreadOf("c50", "weft-same-node", "haproxy", (x) => x.rps),
      sameNode,
    ),
    checkTarget(
      { what: "weft same-node (kernel splice) p50 vs HAProxy pair's, keep-alive c=1", op: "<=", bound: 1, unit: "×" },
      spreadOf("c1", "weft-same-node", "haproxy", (x) => x.p50),
      sameNode,
    ),
    checkTarget(
      { what: "weft L7 p50 with 100 AuthorizationPolicies at the destination vs 1, keep-alive c=50", op: "<=", bound: 1.05, unit: "×" },
      spreadOf("c50", "weft-l7-authz", "weft-l7-authz1", (x) => x.p50),
      authz,
    ),
  ];
}

function round3(v: number | null): number | null {
  return v === null ? null : sig(v, 3);
}
