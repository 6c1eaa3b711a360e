/**
 * The parts of the open-loop load generator (open-loop.ts) that are pure and unit-tested: where an
 * HTTP/1.1 response ends in a byte stream, and the summary of a run's latencies. Latency is taken
 * from when a request was *due* (its slot in the fixed-rate schedule), not from when it could be
 * written: a path that stalls makes the requests queued behind it late, and they count as late —
 * the coordinated omission a closed-loop tool like wrk hides.
 */
import { percentile } from "./stats.js";

/**
 * Length of the first complete HTTP/1.1 response in buf (head + body), or 0 when it is not all
 * there yet. Bodies must be framed by Content-Length (the bench's nginx answers so); anything else
 * throws, since a response this parser cannot frame would silently skew the numbers.
 */
export function responseLength(buf: Buffer): number {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) return 0;
  const head = buf.subarray(0, end).toString("latin1");
  if (!/^HTTP\/1\.[01] \d{3}/.test(head)) throw new Error(`not an HTTP/1.x response: ${JSON.stringify(head.slice(0, 40))}`);
  const m = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head);
  if (!m) {
    if (/\r\ntransfer-encoding:/i.test(head)) throw new Error("a chunked response: the open-loop client frames Content-Length bodies only");
    throw new Error("a response without Content-Length");
  }
  const total = end + 4 + Number(m[1]);
  return buf.length >= total ? total : 0;
}

/** Status code of a complete response head. */
export function responseStatus(buf: Buffer): number {
  return Number(buf.subarray(9, 12).toString("latin1"));
}

/** What one open-loop run measured. */
export interface OpenLoopResult {
  /** The rate asked for, requests per second. */
  rps: number;
  /** Requests completed inside the measured window, per second. */
  achievedRps: number;
  completed: number;
  /** Requests that failed (error, non-2xx, or not answered by the end). */
  errors: number;
  /** Latency percentiles in µs, from when each request was due. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  /** Most requests ever waiting for a free connection (> 0: the path fell behind the rate). */
  maxBacklog: number;
}

/** Summarises latencies (µs) of the measured window. */
export function summarize(
  latenciesUs: readonly number[],
  rps: number,
  seconds: number,
  errors: number,
  maxBacklog: number,
): OpenLoopResult {
  if (latenciesUs.length === 0) throw new Error("no request completed");
  let max = 0;
  for (const x of latenciesUs) if (x > max) max = x;
  return {
    rps,
    achievedRps: latenciesUs.length / seconds,
    completed: latenciesUs.length,
    errors,
    p50: percentile(latenciesUs, 50),
    p90: percentile(latenciesUs, 90),
    p99: percentile(latenciesUs, 99),
    p999: percentile(latenciesUs, 99.9),
    max,
    maxBacklog,
  };
}
