/**
 * Run inside a client pod: opens N keep-alive connections through a path, makes one request on
 * each (so every proxy has really set the connection up end to end), then holds them idle.
 *
 *   node dist/bench/lib/hold-connections.js <host> <port> <path> <count> <maxHoldSeconds>
 *
 * stdout, one JSON line each: {"ready":true,"open":N,"ms":…} once all are idle; {"done":true,
 * "closedEarly":k} when it stops. It stops when stdin closes (its parent is done or gone), on
 * SIGTERM, or after maxHoldSeconds, whichever is first: it never outlives the benchmark.
 */
import net from "node:net";
import { errorMessage } from "../../common/errors.js";

const [host, portText, path, countText, holdText] = process.argv.slice(2);
const port = Number(portText);
const count = Number(countText);
const maxHoldS = Number(holdText);
if (
  !host ||
  !path?.startsWith("/") ||
  !(port > 0 && port < 65536) ||
  !(count >= 1 && count <= 100_000) ||
  !(maxHoldS >= 1 && maxHoldS <= 3600)
) {
  process.stderr.write("usage: hold-connections.js <host> <port> </path> <count 1-100000> <maxHoldSeconds 1-3600>\n");
  process.exit(2);
}

/** Connections opened at once: enough to be quick, few enough not to look like a SYN flood to the path. */
const IN_FLIGHT = 64;
const CONNECT_TIMEOUT_MS = 10_000;
const sockets: net.Socket[] = [];
let holding = false;
let closedEarly = 0;
const started = performance.now();

function say(obj: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function finish(code: number, extra: Record<string, unknown> = {}): never {
  say({ done: true, closedEarly, ...extra });
  for (const s of sockets) s.destroy();
  process.exit(code);
}

/** Opens one connection and completes one request on it; resolves once the response is whole. */
function openOne(): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, noDelay: true });
    sockets.push(s);
    let buf = Buffer.alloc(0);
    let need = -1;
    const timer = setTimeout(() => s.destroy(new Error(`no response within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
    s.on("connect", () => s.write(`GET ${path} HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n`));
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (need < 0) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.subarray(0, end).toString("latin1");
        const len = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        if (!/^HTTP\/1\.1 200 /.test(head) || !len) {
          s.destroy(new Error(`unexpected response: ${head.split("\r\n")[0]}${len ? "" : " (no Content-Length)"}`));
          return;
        }
        need = end + 4 + Number(len[1]);
      }
      if (buf.length >= need) {
        clearTimeout(timer);
        s.off("data", onData);
        buf = Buffer.alloc(0);
        resolve();
      }
    };
    s.on("data", onData);
    s.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on("close", () => {
      clearTimeout(timer);
      if (holding) closedEarly++;
      else reject(new Error("closed before the response"));
    });
  });
}

process.on("SIGTERM", () => finish(0));
process.stdin.on("end", () => finish(0));
process.stdin.on("error", () => finish(0));
process.stdin.resume();
setTimeout(() => finish(0, { timedOut: true }), maxHoldS * 1000).unref();

let next = 0;
async function worker(): Promise<void> {
  while (next < count) {
    next++;
    await openOne();
  }
}
try {
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, count) }, worker));
} catch (e) {
  say({ error: `${errorMessage(e)} (after ${sockets.length} of ${count} connections)` });
  finish(1);
}
holding = true;
say({ ready: true, open: sockets.length, ms: Math.round(performance.now() - started) });
