/**
 * One bench script's life: parse the command line, create the cluster, give every variant its
 * own client pod (node 1) and server pod with nginx (node 2), set the variants up, check each
 * path carries a request, run the measurements, print the final JSON line, and tear everything
 * down, also on an error or a signal. A variant that cannot run, or breaks, becomes rows that
 * say so; the others carry on.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errorMessage, errorStack } from "../../common/errors.js";
import { requireTool } from "../../native/exec.js";
import { isSameProcess } from "../../native/proc.js";
import type { PodRecord } from "../../scripts/cluster/state.js";
import { VARIANTS } from "../variants/index.js";
import { type CommonArgs, parseBenchArgs } from "./args.js";
import { BenchCluster } from "./cluster.js";
import { type BenchOutput, type BenchRow, emitBenchOutput } from "./output.js";
import { openFilesHardLimit } from "./proc-stats.js";
import { fetchUntilOk, SERVER_PORT, SMALL_PATH, STATUS_PORT, type StubStatus, serverStatus, startNginx, writeWebRoot } from "./upstream.js";
import type { BenchVariant, VariantContext, VariantName, VariantSetup } from "./variant.js";

/** A variant that is set up and carrying traffic. */
export interface ActiveVariant {
  name: VariantName;
  title: string;
  /** "bench-<name>/client": where load generators run. */
  clientPod: string;
  /** "bench-<name>/server": where nginx runs. */
  serverPod: string;
  setup: VariantSetup;
  instance: BenchVariant;
  context: VariantContext;
}

/** A variant with no numbers, and why. */
export interface SkippedVariant {
  name: VariantName;
  title: string;
  /** "not run (…)" for an unavailable variant, "failed: …" for one that broke. */
  status: string;
}

/** What a benchmark body works with. */
export interface BenchEnv {
  args: CommonArgs;
  numbers: Record<string, number>;
  cluster: BenchCluster;
  workDir: string;
  /** Variants still measured, in report order. */
  active: ActiveVariant[];
  skipped: SkippedVariant[];
  log(message: string): void;
  /** The active variants in round `r`'s order (see roundOrder). */
  order(round: number): ActiveVariant[];
  /** Stops measuring a variant that broke; its rows will carry the error. */
  fail(v: ActiveVariant, err: unknown): void;
  /** Fresh proxies: teardown and setup again (memory baselines must not inherit earlier load). */
  restart(v: ActiveVariant): Promise<void>;
  serverStatus(v: ActiveVariant): Promise<StubStatus>;
  /** URL of a path on the server, through the variant. */
  url(v: ActiveVariant, path: string): string;
}

/** What the body returns: the output without the fields the harness fills in. */
export type BodyResult = Pick<BenchOutput, "title" | "rows" | "notes" | "targets">;

/** How a script uses the harness. */
export interface HarnessOptions {
  /** Script id, also the bench id ("http"). */
  script: string;
  /** The script's own numeric flags. */
  numbers?: Parameters<typeof parseBenchArgs>[2];
  /** Size of the sparse bulk file nginx serves (from the parsed numbers). */
  bulkBytes?: (numbers: Record<string, number>) => number;
  /** Tools the script runs besides the ones every bench needs (nginx, curl). */
  tools?: readonly string[];
  /** Largest number of connections the server must hold at once. */
  maxConnections?: (numbers: Record<string, number>) => number;
  /** Variants measured without --variants (default: every one). */
  defaultVariants?: readonly VariantName[];
}

/** Runs a bench script end to end; exits non-zero (with no JSON line) when the bench itself fails. */
export async function runBench(opts: HarnessOptions, body: (env: BenchEnv) => Promise<BodyResult>): Promise<void> {
  let parsed: ReturnType<typeof parseBenchArgs>;
  try {
    parsed = parseBenchArgs(process.argv.slice(2), opts.script, opts.numbers, opts.defaultVariants);
  } catch (e) {
    process.stderr.write(`${errorMessage(e)}\n`);
    process.exitCode = 2;
    return;
  }
  const { numbers, ...args } = parsed;
  try {
    // Before any cluster exists: a missing tool is one clear line naming its package.
    for (const t of ["nginx", "curl", ...(opts.tools ?? [])]) requireTool(t);
  } catch (e) {
    process.stderr.write(`[${opts.script}] ${errorMessage(e)}\n`);
    process.exitCode = 1;
    return;
  }
  const log = (m: string) => process.stderr.write(`[${opts.script}] ${m}\n`);
  const workDir = mkdtempSync(join(tmpdir(), `weft-bench-${opts.script}-`));
  const active: ActiveVariant[] = [];
  let cluster: BenchCluster | null = null;
  let cleaned: Promise<void> | null = null;
  const cleanup = () => {
    cleaned ??= (async () => {
      for (const v of active.splice(0)) await v.instance.teardown().catch((e) => log(`teardown ${v.name}: ${errorMessage(e)}`));
      const problems = cluster ? await cluster.destroy().catch((e) => [errorMessage(e)]) : [];
      for (const p of problems) log(`cleanup: ${p}`);
      rmSync(workDir, { recursive: true, force: true });
    })();
    return cleaned;
  };
  const onSignal = (sig: NodeJS.Signals, code: number) => {
    log(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(code));
  };
  process.once("SIGINT", () => onSignal("SIGINT", 130));
  process.once("SIGTERM", () => onSignal("SIGTERM", 143));
  try {
    log(`creating cluster ${args.cluster}`);
    cluster = await BenchCluster.create(args.cluster);
    writeWebRoot(join(workDir, "www"), opts.bulkBytes?.(numbers) ?? 1);
    const maxConnections = opts.maxConnections?.(numbers) ?? 1000;
    const skipped: SkippedVariant[] = [];
    for (const name of args.variants) {
      const v = await startVariant(cluster, name, workDir, maxConnections, log);
      if ("status" in v) skipped.push(v);
      else active.push(v);
    }
    const c = cluster;
    const env: BenchEnv = {
      args,
      numbers,
      cluster: c,
      workDir,
      active,
      skipped,
      log,
      order: (round) => roundOrder(active, round),
      fail: (v, err) => {
        const i = active.indexOf(v);
        if (i < 0) return;
        active.splice(i, 1);
        const msg = `${errorMessage(err) ?? String(err)}${deadProcessLogs(c)}`;
        log(`${v.name} failed: ${msg}`);
        skipped.push({ name: v.name, title: v.title, status: `failed: ${msg}` });
        void v.instance.teardown().catch(() => undefined);
      },
      restart: async (v) => {
        await v.instance.teardown();
        v.setup = await v.instance.setup(v.context);
        await fetchUntilOk(c, v.clientPod, env.url(v, SMALL_PATH), 15_000, `${v.title} after restart`);
      },
      serverStatus: (v) => serverStatus(c, v.serverPod),
      url: (v, path) => `http://${v.setup.target.host}:${v.setup.target.port}${path}`,
    };
    const result = await body(env);
    const infoNotes = active.flatMap((v) => Object.entries(v.setup.info ?? {}).map(([k, val]) => `${k}: ${val}`));
    emitBenchOutput({
      bench: opts.script,
      command: `node dist/bench/${opts.script}.js${process.argv.length > 2 ? ` ${process.argv.slice(2).join(" ")}` : ""}`,
      ...result,
      notes: [...(result.notes ?? []), ...infoNotes],
    });
  } catch (e) {
    log(`failed: ${errorMessage(e)}`);
    if (process.env.WEFT_DEBUG) log(errorStack(e));
    process.exitCode = 1;
  } finally {
    await cleanup();
  }
}

/**
 * The order of round `round`: even rounds rotate the list by round/2, odd rounds run the previous
 * even round's order backwards. No item always goes first, and neighbours (a variant and the one
 * it is compared with, listed next to each other) meet in both orders, so whatever running second
 * costs does not fall on one of them in every round.
 */
export function roundOrder<T>(items: readonly T[], round: number): T[] {
  const n = items.length;
  const shift = n === 0 ? 0 : Math.floor(round / 2) % n;
  const rotated = items.map((_, i) => items[(i + shift) % n] as T);
  return round % 2 === 0 ? rotated : rotated.reverse();
}

/** Rows for variants without numbers: one per table, the status saying why. */
export function skippedRows(table: string, skipped: readonly SkippedVariant[]): BenchRow[] {
  return skipped.map((s) => ({ table, variant: s.title, status: s.status }));
}

/**
 * The last lines each exited bench process logged, for an error message: the cluster's log
 * directory goes with the cluster at the end of the run, so a crash must be explained now.
 */
export function deadProcessLogs(cluster: BenchCluster): string {
  const parts: string[] = [];
  for (const p of cluster.state().processes) {
    if (isSameProcess(p.pid, p.startTime) || !p.logFile || !existsSync(p.logFile)) continue;
    const tail = readFileSync(p.logFile, "utf8").trim().split("\n").slice(-3).join(" | ");
    parts.push(`${p.what} (pid ${p.pid}) exited${tail ? `, its log ends: ${tail}` : ""}`);
  }
  return parts.length ? `; ${parts.join("; ")}` : "";
}

/** Why a weft-vs-HAProxy ratio has no value: the first of the two that has no numbers. */
export function missingRatioReason(env: Pick<BenchEnv, "active" | "skipped">, names: readonly VariantName[] = ["weft", "haproxy"]): string {
  for (const n of names) {
    const s = env.skipped.find((x) => x.name === n);
    if (s) return `${n} ${s.status}`;
    if (!env.active.some((v) => v.name === n)) return `${n} not selected (--variants)`;
  }
  return "not measured";
}

async function startVariant(
  cluster: BenchCluster,
  name: VariantName,
  workDir: string,
  maxConnections: number,
  log: (m: string) => void,
): Promise<ActiveVariant | SkippedVariant> {
  const instance = VARIANTS[name]();
  const reason = instance.unavailable();
  if (reason) {
    log(`${name}: not run (${reason})`);
    return { name, title: instance.title, status: `not run (${reason})` };
  }
  const ns = `bench-${name}`;
  try {
    log(`${name}: pods and upstream`);
    const client: PodRecord = await cluster.addPod(ns, "client", 1);
    const server: PodRecord = await cluster.addPod(ns, "server", instance.serverNode ?? 2);
    await startNginx(cluster, `${ns}/server`, {
      prefix: join(workDir, `nginx-${name}`),
      webRoot: join(workDir, "www"),
      listenIp: server.ip,
      port: SERVER_PORT,
      statusPort: STATUS_PORT,
      // One descriptor per connection plus files; the hard limit may not be raisable.
      maxConnections: Math.min(maxConnections + 512, openFilesHardLimit() - 200),
      fileLimit: Math.min(maxConnections + 2048, openFilesHardLimit()),
    });
    const context: VariantContext = { cluster, client, server, serverPort: SERVER_PORT, workDir, log: (m) => log(`${name}: ${m}`) };
    log(`${name}: setting up`);
    const setup = await instance.setup(context);
    const v: ActiveVariant = {
      name,
      title: instance.title,
      clientPod: `${ns}/client`,
      serverPod: `${ns}/server`,
      setup,
      instance,
      context,
    };
    await fetchUntilOk(cluster, v.clientPod, `http://${setup.target.host}:${setup.target.port}${SMALL_PATH}`, 15_000, instance.title);
    log(`${name}: ready, client dials ${setup.target.host}:${setup.target.port}, proxies ${setup.proxyPids.join(", ") || "none"}`);
    return v;
  } catch (e) {
    await instance.teardown().catch(() => undefined);
    const msg = errorMessage(e);
    log(`${name}: failed to set up: ${msg}`);
    return { name, title: instance.title, status: `failed: ${msg}` };
  }
}
