/**
 * An open-loop HTTP/1.1 load generator, the way fortio and wrk2 measure meshes: requests are due at
 * a fixed rate whatever the path does, spread over keep-alive connections, and each latency counts
 * from when the request was due, so a stall shows up in every request queued behind it.
 *
 *   node dist/bench/lib/open-loop.js <url> <rps> <connections> <seconds> [warm-up seconds]
 *
 * Prints one JSON line (OpenLoopResult). Run inside the client pod by bench/fixed-rate.ts. Timers
 * have millisecond resolution, so a request may leave up to ~1 ms after it was due; that lateness
 * is the same for every variant and cancels in the "added" figures, which subtract direct's.
 */
import { connect, type Socket } from "node:net";
import { type OpenLoopResult, responseLength, responseStatus, summarize } from "./open-loop-core.js";

interface Conn {
  sock: Socket;
  buf: Buffer;
  /** µs the request in flight was due, or null when the connection is free. */
  due: number | null;
}

const [urlText, rpsText, connsText, secondsText, warmText = "1"] = process.argv.slice(2);
const rps = Number(rpsText);
const conns = Number(connsText);
const seconds = Number(secondsText);
const warm = Number(warmText);
if (!urlText || !(rps > 0) || !(conns >= 1) || !(seconds > 0) || !(warm >= 0)) {
  process.stderr.write("usage: open-loop.js <url> <rps> <connections> <seconds> [warm-up seconds]\n");
  process.exit(2);
}
const url = new URL(urlText);
const request = Buffer.from(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: weft-open-loop\r\n\r\n`);
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

const pool: Conn[] = [];
const backlog: number[] = [];
const latencies: number[] = [];
let errors = 0;
let maxBacklog = 0;
let t0 = 0;
let next = 0;
const total = Math.round((warm + seconds) * rps);
const windowStart = () => t0 + warm * 1e6;
const windowEnd = () => t0 + (warm + seconds) * 1e6;
const dueAt = (i: number) => t0 + (i * 1e6) / rps;
const measured = (due: number) => due >= windowStart() && due < windowEnd();

function open(): Conn {
  const c: Conn = { sock: connect({ host: url.hostname, port: Number(url.port || 80), noDelay: true }), buf: Buffer.alloc(0), due: null };
  c.sock.on("data", (d: Buffer) => {
    c.buf = c.buf.length ? Buffer.concat([c.buf, d]) : d;
    for (let n = responseLength(c.buf); n > 0 && c.due !== null; n = responseLength(c.buf)) {
      const status = responseStatus(c.buf);
      c.buf = c.buf.subarray(n);
      if (measured(c.due)) {
        if (status >= 200 && status < 300) latencies.push(nowUs() - c.due);
        else errors++;
      }
      c.due = null;
      dispatch();
    }
  });
  const lost = () => {
    // A connection that dies takes its request with it; a new one takes its place.
    if (c.due !== null && measured(c.due)) errors++;
    c.due = null;
    const i = pool.indexOf(c);
    if (i >= 0 && !finished) pool[i] = open();
  };
  c.sock.on("error", lost);
  c.sock.on("close", lost);
  return c;
}

function dispatch(): void {
  for (const c of pool) {
    if (backlog.length === 0) return;
    if (c.due !== null || c.sock.connecting || c.sock.destroyed) continue;
    c.due = backlog.shift() as number;
    c.sock.write(request);
  }
}

let finished = false;
function pump(): void {
  const now = nowUs();
  while (next < total && dueAt(next) <= now) backlog.push(dueAt(next++));
  dispatch();
  if (backlog.length > maxBacklog) maxBacklog = backlog.length;
  if (next < total) {
    setTimeout(pump, Math.max(0, (dueAt(next) - nowUs()) / 1000));
    return;
  }
  const drained = () => backlog.length === 0 && pool.every((c) => c.due === null);
  const deadline = windowEnd() + 5e6;
  const wait = () => {
    if (!drained() && nowUs() < deadline) {
      setTimeout(wait, 5);
      return;
    }
    finished = true;
    // Whatever is still queued or in flight was not answered in time: a failure, not a silence.
    errors += backlog.filter(measured).length + pool.filter((c) => c.due !== null && measured(c.due)).length;
    const out: OpenLoopResult = summarize(latencies, rps, seconds, errors, maxBacklog);
    process.stdout.write(`${JSON.stringify(out)}\n`);
    for (const c of pool) c.sock.destroy();
    process.exit(0);
  };
  wait();
}

for (let i = 0; i < conns; i++) pool.push(open());
// The schedule starts once every connection is up, so connecting is not part of any latency.
const ready = setInterval(() => {
  if (pool.some((c) => c.sock.connecting)) return;
  clearInterval(ready);
  t0 = nowUs();
  pump();
}, 5);
