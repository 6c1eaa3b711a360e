/**
 * One wrk run through a variant, as http.ts and workers.ts measure it: wrk in the variant's
 * client pod against nginx in its server pod, with the proxies' CPU over the run and their RSS
 * right after it.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ActiveVariant, BenchEnv } from "./harness.js";
import { cpuSince, snapshotCpu, totalRss } from "./proc-stats.js";
import { SMALL_PATH } from "./upstream.js";
import { describeWrkErrors, parseWrkResult, WRK_LUA, wrkArgs, wrkErrorCount } from "./wrk.js";

/** The --duration flag of the wrk benchmarks. */
export const DURATION_FLAG = { flag: "duration", help: "seconds per wrk run", min: 1, max: 120, full: 10, quick: 2 };

/** Writes wrk's result hook into the work directory; returns its path. */
export function writeWrkScript(workDir: string): string {
  const script = join(workDir, "wrk-result.lua");
  writeFileSync(script, WRK_LUA);
  return script;
}

/** How wrk loads the path. */
export interface WrkScenario {
  id: string;
  connections: number;
  /** One request per connection (Connection: close). */
  close: boolean;
}

/** One wrk run's numbers. */
export interface Sample {
  rps: number;
  p50: number;
  p99: number;
  /** Proxy CPU seconds per 10k requests (null: no proxy). */
  cpuPer10k: number | null;
  rssMiB: number | null;
  /** Requests per TCP connection the server accepted (new-connection runs only). */
  perConn: number | null;
}

/** Runs wrk for `seconds` through a variant; throws when wrk completed nothing or saw errors. */
export async function wrkRun(env: BenchEnv, v: ActiveVariant, s: WrkScenario, seconds: number, script: string): Promise<Sample> {
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
