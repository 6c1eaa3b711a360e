/**
 * Bulk: one large download through each path, every variant side by side.
 *
 *   node dist/bench/bulk.js [--quick] [--rounds 3] [--size-mib 1024] [--variants direct,direct-same-node,haproxy,weft,weft-same-node]
 *
 * curl in the client pod (node 1) fetches a sparse file nginx sends with sendfile from the server
 * pod (node 2), so neither end spends its time on disk or copies: what limits the rate is the
 * path. MB/s is bytes over curl's total time; proxy CPU is per GiB carried.
 */

import { type ActiveVariant, type BenchEnv, missingRatioReason, runBench, skippedRows } from "./lib/harness.js";
import type { BenchRow } from "./lib/output.js";
import { cpuSince, snapshotCpu, totalRss } from "./lib/proc-stats.js";
import { median, medianOrNull, pairedRatio, sig } from "./lib/stats.js";
import { checkTarget } from "./lib/targets.js";
import { CURL_TRANSFER_FORMAT, checkTransfer, parseCurlTransfer } from "./lib/transfer.js";
import { BULK_PATH } from "./lib/upstream.js";
import { L4_VARIANTS } from "./lib/variant.js";

const MIB = 2 ** 20;

interface Sample {
  mbps: number;
  cpuPerGiB: number | null;
  rssMiB: number | null;
}

await runBench(
  {
    script: "bulk",
    // The L7 paths are measured by http.ts; here they would only repeat the L4 tunnel's cost.
    // The same-node pair too: a transfer between two pods of one node is where the kernel splice counts most.
    defaultVariants: [...L4_VARIANTS, "direct-same-node", "weft-same-node"],
    numbers: [{ flag: "size-mib", help: "MiB per download", min: 1, max: 16_384, full: 1024, quick: 128 }],
    bulkBytes: (n) => (n["size-mib"] as number) * MIB,
  },
  async (env) => {
    const bytes = (env.numbers["size-mib"] as number) * MIB;
    const samples = new Map<string, (Sample | null)[]>(env.active.map((v) => [v.name, Array<Sample | null>(env.args.rounds).fill(null)]));
    env.log("warm-up: one download per variant (not recorded)");
    for (const v of [...env.active]) await download(env, v, bytes).catch((e) => env.fail(v, e));
    for (let r = 0; r < env.args.rounds; r++) {
      for (const v of env.order(r)) {
        env.log(`round ${r + 1}/${env.args.rounds} ${v.name}`);
        const got = await download(env, v, bytes).catch((e) => {
          env.fail(v, e);
          return null;
        });
        const list = samples.get(v.name);
        if (list) list[r] = got;
      }
    }
    // A variant that failed part-way has only rows saying so: no ratio may rest on its partial numbers.
    for (const name of samples.keys()) if (!env.active.some((v) => v.name === name)) samples.delete(name);
    const table = `Bulk: ${bytes / MIB} MiB download, one connection`;
    const col = (name: string, pick: (s: Sample) => number | null) => (samples.get(name) ?? []).map((s) => (s ? pick(s) : null));
    const rows: BenchRow[] = [];
    for (const v of env.active) {
      const xs = (samples.get(v.name) ?? []).filter((s): s is Sample => s !== null);
      if (!xs.length) continue;
      const vsDirect =
        samples.has("direct") && v.name !== "direct"
          ? pairedRatio(
              col(v.name, (s) => s.mbps),
              col("direct", (s) => s.mbps),
            )
          : null;
      const vsHaproxy =
        samples.has("haproxy") && v.name !== "haproxy"
          ? pairedRatio(
              col(v.name, (s) => s.mbps),
              col("haproxy", (s) => s.mbps),
            )
          : null;
      const cpuVs =
        samples.has("haproxy") && v.name !== "haproxy"
          ? pairedRatio(
              col(v.name, (s) => s.cpuPerGiB),
              col("haproxy", (s) => s.cpuPerGiB),
            )
          : null;
      rows.push({
        table,
        variant: v.title,
        "MB/s": sig(median(xs.map((s) => s.mbps))),
        "proxy CPU s /GiB": round3(medianOrNull(xs.map((s) => s.cpuPerGiB))),
        "proxy RSS MiB": round3(medianOrNull(xs.map((s) => s.rssMiB))),
        "MB/s vs direct": round3(vsDirect),
        "MB/s vs haproxy": round3(vsHaproxy),
        "CPU vs haproxy": round3(cpuVs),
        "MB/s per round": xs.map((s) => Math.round(s.mbps)),
        status: "ok",
      });
    }
    rows.push(...skippedRows(table, env.skipped));
    const weft = samples.get("weft");
    const haproxy = samples.get("haproxy");
    const ratio =
      weft && haproxy
        ? pairedRatio(
            col("weft", (s) => s.mbps),
            col("haproxy", (s) => s.mbps),
          )
        : null;
    return {
      title: "Bulk transfer",
      rows,
      notes: [
        `curl in the client pod (node 1) downloads ${bytes / MIB} MiB from nginx (sendfile, sparse file) in the server pod (node 2); ${env.args.rounds} round(s) after one warm-up download per variant.`,
        "MB/s is 10^6 bytes per second over curl's total time (connection set-up included); proxy CPU is utime+stime of the variant's proxies per GiB carried; RSS right after the transfer.",
      ],
      targets: [checkTarget({ what: "weft bulk MB/s vs HAProxy pair", op: ">=", bound: 0.9, unit: "×" }, ratio, missingRatioReason(env))],
    };
  },
);

async function download(env: BenchEnv, v: ActiveVariant, bytes: number): Promise<Sample> {
  const cpu = snapshotCpu(v.setup.proxyPids);
  // Bounded: even 16 GiB at a pessimistic 20 MB/s finishes well inside the limit.
  const limitS = Math.ceil(60 + bytes / 20e6);
  const out = await env.cluster.exec(
    v.clientPod,
    ["curl", "-sS", "-o", "/dev/null", "--max-time", String(limitS), "-w", CURL_TRANSFER_FORMAT, env.url(v, BULK_PATH)],
    { timeoutMs: (limitS + 10) * 1000 },
  );
  const cpuS = cpuSince(cpu);
  const t = parseCurlTransfer(out.stdout);
  checkTransfer(t, bytes, v.title);
  return {
    mbps: t.bytes / 1e6 / t.seconds,
    cpuPerGiB: v.setup.proxyPids.length ? cpuS / (t.bytes / 2 ** 30) : null,
    rssMiB: v.setup.proxyPids.length ? totalRss(v.setup.proxyPids) / MIB : null,
  };
}

function round3(v: number | null): number | null {
  return v === null ? null : sig(v, 3);
}
