import { errorMessage } from "../../common/errors.js";
/**
 * wrk as the HTTP load generator. Its human summary rounds latencies to two decimals of a
 * changing unit; instead a Lua `done` hook prints one machine line with exact microsecond
 * percentiles and the error counters, which parseWrkResult reads.
 */

/** Marker that starts the machine-readable line the Lua hook prints. */
export const WRK_MARKER = "WEFT_WRK_RESULT ";

/** The Lua script passed to wrk with -s (plain numbers only: %.0f survives LuaJIT's doubles). */
export const WRK_LUA = `-- written by weft's bench/lib/wrk.ts: one JSON line with exact numbers at the end of the run
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "${WRK_MARKER}{\\"requests\\":%.0f,\\"durationUs\\":%.0f,\\"bytes\\":%.0f," ..
    "\\"errors\\":{\\"connect\\":%.0f,\\"read\\":%.0f,\\"write\\":%.0f,\\"status\\":%.0f,\\"timeout\\":%.0f}," ..
    "\\"latencyUs\\":{\\"min\\":%.0f,\\"mean\\":%.3f,\\"stdev\\":%.3f,\\"max\\":%.0f," ..
    "\\"p50\\":%.0f,\\"p90\\":%.0f,\\"p99\\":%.0f,\\"p999\\":%.0f}}\\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
`;

/** One wrk run's parameters. */
export interface WrkRun {
  url: string;
  connections: number;
  threads: number;
  durationS: number;
  /** Per-request timeout; a request slower than this counts as a timeout error. */
  timeoutS: number;
  headers?: readonly string[];
  /** Path of the file holding WRK_LUA. */
  scriptPath: string;
}

/** wrk's error counters. */
export interface WrkErrors {
  connect: number;
  read: number;
  write: number;
  /** Responses that were not 2xx/3xx. */
  status: number;
  timeout: number;
}

/** What a wrk run measured. */
export interface WrkResult {
  requests: number;
  durationS: number;
  rps: number;
  bytes: number;
  errors: WrkErrors;
  latencyUs: { min: number; mean: number; stdev: number; max: number; p50: number; p90: number; p99: number; p999: number };
}

/** argv (after "wrk") for a run; validates the numbers so a typo never becomes a 0 s run. */
export function wrkArgs(run: WrkRun): string[] {
  const whole = (name: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) throw new Error(`wrk ${name} ${v}: must be a whole number from ${min} to ${max}`);
  };
  whole("connections", run.connections, 1, 100_000);
  whole("threads", run.threads, 1, 64);
  whole("duration", run.durationS, 1, 3600);
  whole("timeout", run.timeoutS, 1, 600);
  if (run.threads > run.connections)
    throw new Error(`wrk threads ${run.threads} > connections ${run.connections}: wrk needs a connection per thread`);
  if (!/^http:\/\/[^/\s]+\/\S*$/.test(run.url)) throw new Error(`wrk url '${run.url}': expected http://host:port/path`);
  const args = [
    "-t",
    String(run.threads),
    "-c",
    String(run.connections),
    "-d",
    `${run.durationS}s`,
    "--timeout",
    `${run.timeoutS}s`,
    "-s",
    run.scriptPath,
  ];
  for (const h of run.headers ?? []) {
    if (!/^[A-Za-z0-9-]+: .+$/.test(h)) throw new Error(`wrk header '${h}': expected 'Name: value'`);
    args.push("-H", h);
  }
  args.push(run.url);
  return args;
}

/** Reads the Lua hook's line from wrk's stdout; throws naming what is missing or malformed. */
export function parseWrkResult(stdout: string): WrkResult {
  const line = stdout.split("\n").find((l) => l.startsWith(WRK_MARKER));
  if (!line) {
    const tail = stdout.trim().split("\n").slice(-5).join(" | ");
    throw new Error(`wrk printed no '${WRK_MARKER.trim()}' line (was it run with the bench's Lua script?); output: ${tail || "(empty)"}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(line.slice(WRK_MARKER.length));
  } catch (e) {
    throw new Error(`wrk result line is not JSON (${errorMessage(e)}): ${line}`);
  }
  const obj = record(raw, "result");
  const errors = record(obj.errors, "errors");
  const lat = record(obj.latencyUs, "latencyUs");
  const requests = num(obj, "requests");
  const durationUs = num(obj, "durationUs");
  if (durationUs <= 0) throw new Error(`wrk result: durationUs ${durationUs} must be positive`);
  const durationS = durationUs / 1e6;
  return {
    requests,
    durationS,
    rps: requests / durationS,
    bytes: num(obj, "bytes"),
    errors: {
      connect: num(errors, "errors.connect"),
      read: num(errors, "errors.read"),
      write: num(errors, "errors.write"),
      status: num(errors, "errors.status"),
      timeout: num(errors, "errors.timeout"),
    },
    latencyUs: {
      min: num(lat, "latencyUs.min"),
      mean: num(lat, "latencyUs.mean"),
      stdev: num(lat, "latencyUs.stdev"),
      max: num(lat, "latencyUs.max"),
      p50: num(lat, "latencyUs.p50"),
      p90: num(lat, "latencyUs.p90"),
      p99: num(lat, "latencyUs.p99"),
      p999: num(lat, "latencyUs.p999"),
    },
  };
}

/** Total of every error counter. */
export function wrkErrorCount(e: WrkErrors): number {
  return e.connect + e.read + e.write + e.status + e.timeout;
}

/** "connect 3, timeout 1" for the non-zero counters, or "" when there is none. */
export function describeWrkErrors(e: WrkErrors): string {
  return Object.entries(e)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
}

function record(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error(`wrk result: ${what} is not an object`);
  return v as Record<string, unknown>;
}

function num(obj: Record<string, unknown>, path: string): number {
  const key = path.split(".").pop() as string;
  const v = obj[key];
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
    throw new Error(`wrk result: ${path} is ${JSON.stringify(v)}, not a number >= 0`);
  return v;
}
