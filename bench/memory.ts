/**
 * Proxy memory: resident memory of each path's proxies when idle, and what each idle tunnelled
 * connection adds.
 *
 *   node dist/bench/memory.js [--quick] [--rounds 3] [--large-count 10000] [--hold-seconds 600] [--variants haproxy,weft]
 *
 * For every measurement the variant is restarted (fresh proxies, so an earlier run's pools and
 * caches are not counted), its idle RSS is read, then a holder in the client pod opens N
 * keep-alive connections through the path, completes one 1 KiB request on each and keeps them
 * open; RSS is read again once it settles. Per connection = (held − idle) / N, summed over the
 * path's proxies (both halves of the HAProxy pair; both nodes' agents for weft). The proxies'
 * socket counts and nginx's active connections confirm the N connections really are held.
 *
 * Hold (weft, largest count, first round): the connections stay open for --hold-seconds while RSS
 * is sampled every 10 s; the growth (last sample − the settled held RSS) says whether idle
 * connections cost more the longer they live. The proxies must still hold them all at the end.
 */
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { type ActiveVariant, type BenchEnv, missingRatioReason, runBench, skippedRows } from "./lib/harness.js";
import type { BenchRow } from "./lib/output.js";
import { socketCount, totalRss } from "./lib/proc-stats.js";
import { median, sig, spreadOf } from "./lib/stats.js";
import { checkTarget } from "./lib/targets.js";
import { SMALL_PATH } from "./lib/upstream.js";
import { L4_VARIANTS } from "./lib/variant.js";

const MIB = 2 ** 20;
const SMALL_COUNT = 1000;
const HOLDER = join(import.meta.dirname, "lib", "hold-connections.js");
const HOLD_SAMPLE_MS = 10_000;

interface Sample {
  /** Connections actually held (the path's fd budget may be below the count asked for). */
  held: number;
  idleRss: number;
  heldRss: number;
  perConn: number;
  /** RSS over the hold, when this measurement held its connections for --hold-seconds. */
  hold?: { seconds: number; growth: number; max: number };
}

await runBench(
  {
    script: "memory",
    // The L7 paths are measured by http.ts; here they would only repeat the L4 tunnel's cost.
    defaultVariants: L4_VARIANTS,
    numbers: [
      { flag: "large-count", help: "the larger idle-connection count (0 skips it)", min: 0, max: 50_000, full: 10_000, quick: 0 },
      {
        flag: "hold-seconds",
        help: "weft holds the largest count this long in round 1, RSS sampled (0 skips it)",
        min: 0,
        max: 3600,
        full: 600,
        quick: 0,
      },
    ],
    // nginx closes idle keep-alive connections once fewer than 1/16 of worker_connections are
    // free (ngx_drain_connections), which would silently drop held connections: leave 25% spare.
    maxConnections: (n) => Math.ceil((Math.max(SMALL_COUNT, n["large-count"] as number) + 100) * 1.25),
  },
  async (env) => {
    const counts = [SMALL_COUNT, env.numbers["large-count"] as number].filter((c, i) => c > 0 && (i === 0 || c !== SMALL_COUNT));
    const holdS = env.numbers["hold-seconds"] as number;
    const largest = Math.max(...counts);
    const measured = env.active.filter((v) => v.setup.proxyPids.length > 0);
    const samples = new Map<string, Map<number, Sample[]>>(measured.map((v) => [v.name, new Map(counts.map((c) => [c, []]))]));
    for (let r = 0; r < env.args.rounds; r++) {
      for (const count of counts) {
        for (const v of env.order(r).filter((x) => x.setup.proxyPids.length > 0)) {
          env.log(`round ${r + 1}/${env.args.rounds} ${v.name} ${count} idle connections`);
          try {
            samples
              .get(v.name)
              ?.get(count)
              ?.push(await measure(env, v, count, r === 0 && count === largest && v.name === "weft" ? holdS : 0));
          } catch (e) {
            env.fail(v, e);
          }
        }
      }
    }
    // A variant that failed part-way has only rows saying so.
    for (const name of samples.keys()) if (!env.active.some((v) => v.name === name)) samples.delete(name);
    const table = "Proxy memory: idle, and per idle tunnelled connection";
    const rows: BenchRow[] = [];
    for (const v of env.active) {
      if (v.setup.proxyPids.length === 0) {
        rows.push({ table, variant: v.title, proxies: 0, status: "no proxy: nothing to measure" });
        continue;
      }
      const per = samples.get(v.name) as Map<number, Sample[]>;
      const all = [...per.values()].flat();
      if (!all.length) continue;
      const idle = median(all.map((s) => s.idleRss));
      const row: BenchRow = {
        table,
        variant: v.title,
        proxies: v.setup.proxyPids.length,
        "idle RSS MiB": sig(idle / MIB),
        "idle RSS MiB per proxy": sig(idle / MIB / v.setup.proxyPids.length),
      };
      for (const c of counts) {
        const xs = per.get(c) ?? [];
        const label = countLabel(c);
        row[`conns held (${label})`] = xs.length ? median(xs.map((s) => s.held)) : null;
        row[`RSS MiB with ${label}`] = xs.length ? sig(median(xs.map((s) => s.heldRss)) / MIB) : null;
        row[`KiB per conn (${label})`] = xs.length ? sig(median(xs.map((s) => s.perConn)) / 1024) : null;
      }
      const held = all.find((s) => s.hold)?.hold;
      if (held) {
        row[`RSS growth MiB over ${held.seconds} s (${countLabel(largest)})`] = sig(held.growth / MIB);
        row[`max RSS MiB over the hold`] = sig(held.max / MIB);
      }
      row.status = "ok";
      rows.push(row);
    }
    rows.push(...skippedRows(table, env.skipped));
    return {
      title: "Memory",
      rows,
      notes: [
        `Each measurement restarts the variant's proxies, reads their idle RSS, opens N keep-alive connections from the client pod with one 1 KiB request each, and reads RSS again once it settles; ${env.args.rounds} round(s), medians.`,
        "RSS is summed over the path's proxies (both HAProxy halves; both nodes' agents for weft): the per-connection figure is the whole path's cost for one idle tunnelled connection.",
        "A path holds at most what its open-files limit allows (HAProxy needs two descriptors per connection): 'conns held' says how many were measured.",
        ...(holdS > 0
          ? [
              `Hold: in round 1 weft keeps the ${countLabel(largest)} connections open for ${holdS} s, RSS sampled every ${HOLD_SAMPLE_MS / 1000} s; growth is the last sample minus the settled RSS with them held, and the agents must still hold every connection at the end.`,
            ]
          : []),
      ],
      targets: targets(env, samples, counts),
    };
  },
);

async function measure(env: BenchEnv, v: ActiveVariant, count: number, holdS: number): Promise<Sample> {
  await env.restart(v);
  const pids = v.setup.proxyPids;
  const n = Math.min(count, v.setup.maxConnections ?? count);
  const idleRss = await settledRss(pids);
  const sockets0 = pids.reduce((a, p) => a + socketCount(p), 0);
  const holder = env.cluster.spawn(v.clientPod, [
    process.execPath,
    HOLDER,
    v.setup.target.host,
    String(v.setup.target.port),
    SMALL_PATH,
    String(n),
    // The holder's own deadline: past the hold, so it never closes them early.
    String(Math.max(600, holdS + 300)),
  ]);
  try {
    const ready = await readyLine(holder, 60_000 + n * 20);
    if (ready.open !== n) throw new Error(`holder opened ${String(ready.open)} of ${n} connections`);
    const heldRss = await settledRss(pids);
    const sockets1 = pids.reduce((a, p) => a + socketCount(p), 0);
    if (sockets1 - sockets0 < n)
      throw new Error(`the proxies hold ${sockets1 - sockets0} more sockets with ${n} connections open: they are not on the path`);
    const status = await env.serverStatus(v);
    if (status.active < n) throw new Error(`nginx has ${status.active} active connections, fewer than the ${n} held`);
    const sample: Sample = { held: n, idleRss, heldRss, perConn: (heldRss - idleRss) / n };
    if (holdS > 0) sample.hold = await hold(env, v, holdS, heldRss, sockets0 + n);
    return sample;
  } finally {
    holder.stdin?.end();
    await exited(holder, 15_000);
  }
}

/** Keeps the connections open for holdS seconds, sampling RSS; the proxies must still hold them all at the end. */
async function hold(
  env: BenchEnv,
  v: ActiveVariant,
  holdS: number,
  heldRss: number,
  sockets: number,
): Promise<NonNullable<Sample["hold"]>> {
  const pids = v.setup.proxyPids;
  const until = Date.now() + holdS * 1000;
  let last = heldRss;
  let max = heldRss;
  env.log(`${v.name}: holding the connections for ${holdS} s`);
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, Math.min(HOLD_SAMPLE_MS, until - Date.now())));
    last = totalRss(pids);
    max = Math.max(max, last);
  }
  const now = pids.reduce((a, p) => a + socketCount(p), 0);
  if (now < sockets)
    throw new Error(`the proxies hold ${now} sockets after the ${holdS} s hold, fewer than the ${sockets} they held at its start`);
  return { seconds: holdS, growth: last - heldRss, max };
}

/** RSS once two reads 100 ms apart agree within 64 KiB (at most 3 s): allocators settle after a burst. */
async function settledRss(pids: readonly number[]): Promise<number> {
  let prev = totalRss(pids);
  for (let i = 0; i < 30; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const now = totalRss(pids);
    if (Math.abs(now - prev) <= 64 * 1024) return now;
    prev = now;
  }
  return prev;
}

interface HolderLine {
  ready?: boolean;
  open?: number;
  error?: string;
}

/** Waits for the holder's ready line; its error line, an early exit or the deadline throw. */
function readyLine(child: ChildProcess, timeoutMs: number): Promise<HolderLine> {
  return new Promise((resolve, reject) => {
    let buf = "";
    let stderr = "";
    const timer = setTimeout(() => reject(new Error(`holder not ready after ${timeoutMs} ms`)), timeoutMs);
    child.stderr?.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    child.stdout?.on("data", (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let msg: HolderLine;
        try {
          msg = JSON.parse(line) as HolderLine;
        } catch {
          continue;
        }
        if (msg.error) {
          clearTimeout(timer);
          reject(new Error(`holder: ${msg.error}`));
        } else if (msg.ready) {
          clearTimeout(timer);
          resolve(msg);
        }
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`holder exited (${code}) before it was ready${stderr.trim() ? `: ${stderr.trim()}` : ""}`));
    });
  });
}

async function exited(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once("exit", () => r()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  await gone;
  clearTimeout(timer);
}

function countLabel(c: number): string {
  return c % 1000 === 0 ? `${c / 1000}k` : String(c);
}

function targets(env: BenchEnv, samples: Map<string, Map<number, Sample[]>>, counts: readonly number[]) {
  const weft = samples.get("weft");
  const missing = missingRatioReason(env, ["weft"]);
  const weftPids = env.active.find((v) => v.name === "weft")?.setup.proxyPids.length ?? 0;
  // Issue 15's bars, each with its spread over rounds. A round's idle RSS is the median of its
  // measurements (one per count, each on freshly restarted agents).
  const perCount = weft ? [...weft.values()] : [];
  const rounds = Math.max(0, ...perCount.map((xs) => xs.length));
  const idleByRound = Array.from({ length: rounds }, (_, r) =>
    median(perCount.flatMap((xs) => (xs[r] ? [xs[r].idleRss / weftPids / 1e6] : []))),
  );
  const idlePerAgent = weftPids ? spreadOf(idleByRound) : null;
  const largest = Math.max(...counts);
  const atLargest = weft?.get(largest) ?? [];
  const perConnKiB = spreadOf(atLargest.map((s) => s.perConn / 1024));
  const countNote = largest < 10_000 ? `measured at ${largest} connections, not 10k (--large-count)` : undefined;
  const perConn = checkTarget(
    { what: "weft memory per idle tunnelled connection (10k)", op: "<=", bound: 8, unit: "KiB" },
    perConnKiB,
    missing,
  );
  if (countNote && perConn.met !== null) perConn.note = countNote;
  // "Held without growth": within 1 MiB per agent, what the allocator and V8 may move either way.
  const held = atLargest.find((s) => s.hold)?.hold;
  const growth = checkTarget(
    { what: "weft RSS growth per agent holding idle connections (10k, 10 min)", op: "<=", bound: 1, unit: "MiB" },
    held && weftPids ? held.growth / weftPids / MIB : null,
    missing ?? "not measured (--hold-seconds 0)",
  );
  if (held && growth.met !== null && (largest < 10_000 || held.seconds < 600))
    growth.note = `held ${largest} connections for ${held.seconds} s, not 10k for 10 min`;
  return [
    checkTarget({ what: "weft idle agent RSS (per agent)", op: "<=", bound: 50, unit: "MB" }, idlePerAgent, missing),
    perConn,
    growth,
  ];
}
