/**
 * Proxy workers: weft's L4 path with the proxy in the agent's own thread (0 workers), and with 1
 * and 2 worker threads per agent, side by side in the same rounds (issue 15 item 5).
 *
 *   node dist/bench/workers.js [--quick] [--rounds 3] [--duration 10] [--variants direct,weft]
 *
 * wrk (keep-alive, 50 connections, 1 KiB) in the client pod on node 1 against nginx in the
 * server pod on node 2, through both agents. Each round restarts the mesh once per worker count
 * (in an order that changes per round, as the harness orders variants) and measures it after a 1 s warm-up; direct is measured in every round as
 * the floor. Ratios are per round against 1 worker, with their spread.
 */
import { type ActiveVariant, missingRatioReason, roundOrder, runBench, skippedRows } from "./lib/harness.js";
import type { BenchRow } from "./lib/output.js";
import { median, medianOrNull, pairedRatioSpread, type Spread, sig } from "./lib/stats.js";
import { checkTarget } from "./lib/targets.js";
import { DURATION_FLAG, type Sample, type WrkScenario, writeWrkScript, wrkRun } from "./lib/wrk-run.js";
import { benchProxyWorkers, PROXY_WORKERS_ENV } from "./variants/weft.js";

const C50: WrkScenario = { id: "c50", connections: 50, close: false };
const COUNTS = [0, 1, 2];
const TABLE = "Proxy workers: HTTP/1.1 keep-alive, 1 KiB body, 50 connections — weft L4 with 0, 1 and 2 worker threads per agent";

const label = (n: number) =>
  n === 0 ? "weft L4, proxy in the agent's thread (0 workers)" : `weft L4, ${n} proxy worker${n === 1 ? "" : "s"} per agent`;

await runBench(
  {
    script: "workers",
    tools: ["wrk"],
    defaultVariants: ["direct", "weft"],
    numbers: [DURATION_FLAG],
    maxConnections: () => 1000,
  },
  async (env) => {
    const duration = env.numbers.duration as number;
    const script = writeWrkScript(env.workDir);
    const weft = env.active.find((v) => v.name === "weft");
    const direct = env.active.find((v) => v.name === "direct");
    // samples[label][round]
    const samples = new Map<string, (Sample | null)[]>();
    const slot = (key: string) => {
      let l = samples.get(key);
      if (!l) {
        l = Array<Sample | null>(env.args.rounds).fill(null);
        samples.set(key, l);
      }
      return l;
    };
    let current = benchProxyWorkers();
    const measure = async (v: ActiveVariant, key: string, r: number) => {
      await wrkRun(env, v, C50, 1, script);
      slot(key)[r] = await wrkRun(env, v, C50, duration, script);
    };
    for (let r = 0; r < env.args.rounds; r++) {
      if (direct && env.active.includes(direct)) {
        env.log(`round ${r + 1}/${env.args.rounds} direct`);
        await measure(direct, "direct", r).catch((e) => env.fail(direct, e));
      }
      for (const n of roundOrder(COUNTS, r)) {
        if (!weft || !env.active.includes(weft)) break;
        env.log(`round ${r + 1}/${env.args.rounds} weft with ${n} proxy workers`);
        try {
          if (n !== current) {
            process.env[PROXY_WORKERS_ENV] = String(n);
            current = n;
            await env.restart(weft);
          }
          await measure(weft, label(n), r);
        } catch (e) {
          env.fail(weft, e);
        }
      }
    }

    const rows: BenchRow[] = [];
    const col = (key: string, pick: (x: Sample) => number | null) => (samples.get(key) ?? []).map((x) => (x ? pick(x) : null));
    const one = label(1);
    const weftOk = weft !== undefined && env.active.includes(weft);
    for (const key of ["direct", ...COUNTS.map(label)]) {
      if (key !== "direct" && !weftOk) continue;
      const xs = (samples.get(key) ?? []).filter((x): x is Sample => x !== null);
      if (xs.length === 0) continue;
      const row: BenchRow = {
        table: TABLE,
        variant: key === "direct" ? "direct (no proxy)" : key,
        rps: sig(median(xs.map((x) => x.rps))),
        "p50 µs": median(xs.map((x) => x.p50)),
        "p99 µs": median(xs.map((x) => x.p99)),
        "proxy CPU s /10k req": round3(medianOrNull(xs.map((x) => x.cpuPer10k))),
        "proxy RSS MiB": round3(medianOrNull(xs.map((x) => x.rssMiB))),
      };
      const put = (name: string, sp: Spread | null) => {
        row[name] = sp ? round3(sp.median) : null;
        if (sp && sp.n > 1) row[`${name} spread`] = [round3(sp.min) as number, round3(sp.max) as number];
      };
      const vsOne = key !== "direct" && key !== one;
      for (const [name, pick] of [
        ["rps", (x: Sample) => x.rps],
        ["p50", (x: Sample) => x.p50],
        ["CPU", (x: Sample) => x.cpuPer10k],
      ] as const)
        put(`${name} vs 1 worker`, vsOne ? pairedRatioSpread(col(key, pick), col(one, pick)) : null);
      row["rps per round"] = xs.map((x) => Math.round(x.rps));
      row.status = "ok";
      rows.push(row);
    }
    rows.push(...skippedRows(TABLE, env.skipped));
    const two = weftOk
      ? pairedRatioSpread(
          col(label(2), (x) => x.rps),
          col(one, (x) => x.rps),
        )
      : null;
    return {
      title: "Proxy worker threads",
      rows,
      notes: [
        `wrk -t1 (keep-alive, 50 connections, 1 KiB) in the client pod on node 1, nginx (1 worker) in the server pod on node 2; ${duration} s per run after a 1 s warm-up, ${env.args.rounds} round(s); the mesh is restarted for each worker count, in an order that changes per round (forwards, backwards, rotated).`,
        "0 workers: the proxy runs on the agent's main thread; N workers: N proxy threads per agent share the listeners (SO_REUSEPORT), each with its own HBONE pool. Proxy CPU and RSS cover both agents, all threads.",
        "On this machine wrk, nginx and both agents share the same cores, so the row says what extra workers buy when the proxies are not alone on the machine; the model for N cores is in bench/ANALYSIS.md.",
      ],
      targets: [
        checkTarget(
          { what: "weft rps with 2 proxy workers per agent vs 1, keep-alive c=50", op: ">=", bound: 1, unit: "×" },
          two,
          weftOk ? "not measured" : missingRatioReason(env, ["weft"]),
        ),
      ],
    };
  },
);

function round3(v: number | null): number | null {
  return v === null ? null : sig(v, 3);
}
