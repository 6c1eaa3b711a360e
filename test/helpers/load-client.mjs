// A fortio-like load client run inside pods by the L7 tests (plain Node, no build step):
//   load-client.mjs --url <url> [-c <connections>] [-n <requests per connection>]
//                   [--header name:value ...] [--count-header x-served-by]
//                   [--timeout-ms 10000] [--max-ms 120000] [--seq] [--last] [--no-keepalive]
//                   [--methods GET,POST] [--rps 50] [--until-file <path>]
// c workers, each on its own HTTP/1.1 keep-alive connection (a new one only if the server closes
// it), send n GETs each, one after another. Bounded: no request starts after --max-ms.
// --no-keepalive: a new connection for every request (so even an L4 balancer spreads them).
// --until-file: no request starts once that file exists (load for as long as a test needs it).
// Prints one JSON line:
//   {requests, codes: {"200": n, ...}, byHeader: {value: n}, errors: {code: n}, ms,
//    seq?: [[status, headerValue], ...] (in completion order), last?: {status, headers, body, ms}}
// A request that got no response counts under errors (status 0), e.g. ECONNRESET or ETIMEDOUT.
import { existsSync } from "node:fs";
import { Agent, request } from "node:http";
import { parseArgs } from "node:util";

const { values: o } = parseArgs({
  options: {
    url: { type: "string" },
    c: { type: "string", short: "c", default: "1" },
    n: { type: "string", short: "n", default: "1" },
    header: { type: "string", multiple: true, default: [] },
    "count-header": { type: "string", default: "x-served-by" },
    "timeout-ms": { type: "string", default: "10000" },
    "max-ms": { type: "string", default: "120000" },
    seq: { type: "boolean", default: false },
    last: { type: "boolean", default: false },
    "no-keepalive": { type: "boolean", default: false },
    // Methods taken in turn, request by request on each connection ("GET 200" counts in byMethod).
    methods: { type: "string", default: "GET" },
    // Offered load: request starts paced to this many a second across all connections.
    rps: { type: "string" },
    "until-file": { type: "string" },
  },
});

function fail(msg) {
  console.error(`load-client: ${msg}`);
  process.exit(2);
}
if (!o.url) fail("--url is required");
const url = new URL(o.url);
const c = Number(o.c);
const n = Number(o.n);
const timeoutMs = Number(o["timeout-ms"]);
const maxMs = Number(o["max-ms"]);
for (const [flag, v] of [
  ["c", c],
  ["n", n],
  ["timeout-ms", timeoutMs],
  ["max-ms", maxMs],
])
  if (!Number.isInteger(v) || v < 1) fail(`-${flag.length > 1 ? "-" : ""}${flag}: expected a positive integer`);
const headers = {};
for (const h of o.header) {
  const i = h.indexOf(":");
  if (i <= 0) fail(`--header '${h}': expected name:value`);
  headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
}
const countHeader = o["count-header"].toLowerCase();
const rps = o.rps === undefined ? 0 : Number(o.rps);
if (o.rps !== undefined && !(rps > 0)) fail("--rps: expected a positive number");
let slot = 0;
const methods = o.methods.split(",").map((m) => m.trim().toUpperCase());
const byMethod = {};

const started = Date.now();
const codes = {};
const byHeader = {};
const errors = {};
const seq = [];
let last;
let requests = 0;

function one(agent, method) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const ms = () => Math.round(Number(process.hrtime.bigint() - t0) / 1e5) / 10;
    const req = request(url, { method, headers, agent, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => {
        body += d;
      });
      res.on("end", () => {
        const status = res.statusCode ?? 0;
        const value = res.headers[countHeader];
        const tag = typeof value === "string" ? value : "";
        codes[status] = (codes[status] ?? 0) + 1;
        byMethod[`${method} ${status}`] = (byMethod[`${method} ${status}`] ?? 0) + 1;
        byHeader[tag] = (byHeader[tag] ?? 0) + 1;
        if (o.seq) seq.push([status, tag]);
        if (o.last) {
          let parsed = body;
          try {
            parsed = JSON.parse(body);
          } catch {}
          last = { status, headers: res.headers, body: parsed, ms: ms() };
        }
        resolve();
      });
      res.on("error", (e) => {
        errors[e.code ?? "ERR"] = (errors[e.code ?? "ERR"] ?? 0) + 1;
        resolve();
      });
    });
    req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
    req.on("error", (e) => {
      const code = e.code ?? "ERR";
      errors[code] = (errors[code] ?? 0) + 1;
      codes[0] = (codes[0] ?? 0) + 1;
      if (o.seq) seq.push([0, code]);
      if (o.last) last = { status: 0, error: code, ms: ms() };
      resolve();
    });
    req.end();
  });
}

async function worker() {
  const agent = o["no-keepalive"] ? false : new Agent({ keepAlive: true, maxSockets: 1 });
  const untilFile = o["until-file"];
  for (let i = 0; i < n && Date.now() - started < maxMs && !(untilFile && existsSync(untilFile)); i++) {
    if (rps > 0) {
      const wait = started + (slot++ * 1000) / rps - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    requests++;
    await one(agent, methods[i % methods.length]);
  }
  if (agent) agent.destroy();
}

await Promise.all(Array.from({ length: c }, worker));
console.log(
  JSON.stringify({
    requests,
    codes,
    byHeader,
    byMethod,
    errors,
    ms: Date.now() - started,
    ...(o.seq ? { seq } : {}),
    ...(o.last ? { last } : {}),
  }),
);
