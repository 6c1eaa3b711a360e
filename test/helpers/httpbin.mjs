// An httpbin-like HTTP server run inside pods by the L7 tests (plain Node, no build step). Its
// behaviour is fixed per pod by arguments, so one pod can be "the endpoint that fails":
//   httpbin.mjs --port <p> [--name <name>] [--delay-ms <d>] [--always <code>]
//               [--fail-first <n> [--fail-code 503]]
//     --name        reported in every answer and in the x-served-by header (default: hostname)
//     --delay-ms    every answer waits d ms first (to hold connections open)
//     --always      every answer has this status (e.g. 500: an endpoint for outlier detection)
//     --fail-first  the first n requests carrying a given x-test-key header get --fail-code, later
//                   ones 200 (retries: one key per test request, so health checks never use
//                   up the failures); requests without x-test-key are never failed
// A request carrying `x-test-close-reused: 1` that arrives on a connection which already served a
// request is answered by closing that connection without a byte (an app's keep-alive timeout
// firing just as a request arrives); on a connection's first request the header does nothing.
// Every other request gets 200 and a JSON echo {name, method, path, host, headers} of what arrived.
// The server records what it received (the last 1,000 requests), queryable from any pod:
//   GET /__stats[?key=<x-test-key>]  -> {name, total, attempts: {key: n}, recent: [{method, path, host, headers, key}]}
//   GET /__health                    -> 200 (neither counted nor recorded)
// Prints "listening <port>" when ready.
import { createServer } from "node:http";
import { hostname } from "node:os";
import { parseArgs } from "node:util";

const { values: o } = parseArgs({
  options: {
    port: { type: "string" },
    name: { type: "string", default: hostname() },
    "delay-ms": { type: "string", default: "0" },
    always: { type: "string" },
    "fail-first": { type: "string", default: "0" },
    "fail-code": { type: "string", default: "503" },
  },
});

function number(flag, text, min, max) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`httpbin: --${flag} '${text}': expected an integer from ${min} to ${max}`);
    process.exit(2);
  }
  return n;
}

const port = number("port", o.port, 1, 65535);
const delayMs = number("delay-ms", o["delay-ms"], 0, 600_000);
const always = o.always === undefined ? undefined : number("always", o.always, 100, 599);
const failFirst = number("fail-first", o["fail-first"], 0, 1_000_000);
const failCode = number("fail-code", o["fail-code"], 100, 599);
const KEEP = 1000;

let total = 0;
const attempts = new Map();
const recent = [];
/** Requests seen per connection. */
const served = new WeakMap();

function reply(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "x-served-by": o.name });
  res.end(text);
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  if (url.pathname === "/__health") return reply(res, 200, { ok: true, name: o.name });
  if (url.pathname === "/__stats") {
    const key = url.searchParams.get("key");
    return reply(res, 200, {
      name: o.name,
      total,
      attempts: Object.fromEntries(attempts),
      recent: key === null ? recent : recent.filter((r) => r.key === key),
    });
  }
  total++;
  const rawKey = req.headers["x-test-key"];
  const key = typeof rawKey === "string" ? rawKey : null;
  if (key !== null) attempts.set(key, (attempts.get(key) ?? 0) + 1);
  const seen = { method: req.method, path: req.url, host: req.headers.host ?? null, headers: req.headers, key };
  recent.push(seen);
  if (recent.length > KEEP) recent.shift();
  req.resume();
  const sock = req.socket;
  const onThisConnection = (served.get(sock) ?? 0) + 1;
  served.set(sock, onThisConnection);
  if (req.headers["x-test-close-reused"] === "1" && onThisConnection > 1) {
    sock.destroy();
    return;
  }
  const answer = () => {
    if (always !== undefined) return reply(res, always, { name: o.name, status: always });
    if (key !== null && (attempts.get(key) ?? 0) <= failFirst)
      return reply(res, failCode, { name: o.name, status: failCode, attempt: attempts.get(key) });
    reply(res, 200, { name: o.name, ...seen, attempt: key === null ? null : attempts.get(key) });
  };
  if (delayMs > 0) setTimeout(answer, delayMs);
  else answer();
});
server.keepAliveTimeout = 30_000;
server.listen(port, "0.0.0.0", () => console.log(`listening ${port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
