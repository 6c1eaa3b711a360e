/**
 * The demo application `weft up` deploys: a small Bookinfo (productpage → details, reviews v1/v2/v3
 * → ratings) as plain HTTP services that know nothing of the mesh. Like Kubernetes apps, they find
 * services through <NAME>_SERVICE_HOST/_PORT environment variables (the local cluster has no DNS).
 *
 *   node app.js --role productpage|details|reviews|ratings [--version v1] [--port 9080]
 *   node app.js --role loadgen --target productpage [--rps 2] [--duration-s 3600]
 */
import { createServer, get, type IncomingMessage, type ServerResponse } from "node:http";
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { errorMessage } from "../../common/errors.js";

const { values: opts } = parseArgs({
  options: {
    role: { type: "string" },
    version: { type: "string", default: "v1" },
    port: { type: "string", default: "9080" },
    target: { type: "string", default: "productpage" },
    rps: { type: "string", default: "2" },
    "duration-s": { type: "string", default: "3600" },
  },
});

const POD = process.env.POD_NAME ?? hostname();

/** Address of a service from the Kubernetes-style environment. */
function serviceAddr(name: string): { host: string; port: number } {
  const key = name.toUpperCase().replace(/-/g, "_");
  const host = process.env[`${key}_SERVICE_HOST`];
  const port = Number(process.env[`${key}_SERVICE_PORT`] ?? 9080);
  if (!host) throw new Error(`${key}_SERVICE_HOST is not set: cannot find service ${name}`);
  return { host, port };
}

/** GET a JSON document from a service, with a deadline. */
function fetchJson(name: string, path: string, headers: Record<string, string>): Promise<unknown> {
  const { host, port } = serviceAddr(name);
  return new Promise((resolve, reject) => {
    const req = get({ host, port, path, headers, timeout: 3000, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => {
        if ((res.statusCode ?? 500) >= 400) reject(new Error(`${name}${path}: HTTP ${res.statusCode}`));
        else {
          try {
            resolve(JSON.parse(body));
          } catch {
            reject(new Error(`${name}${path}: not JSON`));
          }
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${name}${path}: timed out`)));
    req.on("error", reject);
  });
}

/** Trace headers an app forwards so spans join up (what Bookinfo does). */
function traceHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of ["traceparent", "tracestate", "baggage", "x-request-id"]) {
    const v = req.headers[h];
    if (typeof v === "string") out[h] = v;
  }
  return out;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "x-served-by": POD, "content-length": Buffer.byteLength(text) });
  res.end(text);
}

const STARS: Record<string, string> = { v1: "none", v2: "black", v3: "red" };

async function handle(role: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://x");
  if (url.pathname === "/health") return send(res, 200, { ok: true, pod: POD });
  switch (role) {
    case "details":
      return send(res, 200, { id: 0, title: "The Comedy of Errors", author: "William Shakespeare", year: 1595, pages: 200, pod: POD });
    case "ratings":
      return send(res, 200, { id: 0, ratings: { Reviewer1: 5, Reviewer2: 4 }, pod: POD });
    case "reviews": {
      const reviews: Record<string, unknown> = {
        id: 0,
        version: opts.version,
        pod: POD,
        reviews: [
          { reviewer: "Reviewer1", text: "An extremely entertaining play." },
          { reviewer: "Reviewer2", text: "Absolutely fun." },
        ],
      };
      if (opts.version !== "v1") {
        try {
          reviews.ratings = await fetchJson("ratings", "/ratings/0", traceHeaders(req));
          reviews.stars = STARS[opts.version as string] ?? "black";
        } catch (e) {
          reviews.ratings = { error: errorMessage(e) };
        }
      }
      return send(res, 200, reviews);
    }
    case "productpage": {
      const h = traceHeaders(req);
      const [details, reviews] = await Promise.allSettled([fetchJson("details", "/details/0", h), fetchJson("reviews", "/reviews/0", h)]);
      const val = (r: PromiseSettledResult<unknown>) => (r.status === "fulfilled" ? r.value : { error: errorMessage(r.reason) });
      const ok = details.status === "fulfilled" && reviews.status === "fulfilled";
      return send(res, ok ? 200 : 503, { product: "The Comedy of Errors", pod: POD, details: val(details), reviews: val(reviews) });
    }
    default:
      return send(res, 404, { error: `unknown role ${role}` });
  }
}

/** Bounded demo traffic: requests at a steady rate until the duration is over, then exits. */
async function loadgen(): Promise<void> {
  const rps = Math.max(0.1, Number(opts.rps));
  const until = Date.now() + Number(opts["duration-s"]) * 1000;
  let ok = 0;
  let failed = 0;
  while (Date.now() < until) {
    try {
      await fetchJson(opts.target as string, "/productpage", {});
      ok++;
    } catch (e) {
      failed++;
      if (failed % 10 === 1) console.error(`loadgen: ${errorMessage(e)}`);
    }
    if ((ok + failed) % 50 === 0) console.log(JSON.stringify({ ok, failed }));
    await new Promise((r) => setTimeout(r, 1000 / rps));
  }
  console.log(JSON.stringify({ ok, failed, done: true }));
}

if (opts.role === "loadgen") {
  await loadgen();
} else if (opts.role && ["productpage", "details", "reviews", "ratings"].includes(opts.role)) {
  const role = opts.role;
  const server = createServer((req, res) => {
    handle(role, req, res).catch((e: Error) => send(res, 500, { error: e.message }));
  });
  server.keepAliveTimeout = 30_000;
  server.listen(Number(opts.port), "0.0.0.0", () => console.log(`${role} ${opts.version} listening on ${opts.port}`));
  process.on("SIGTERM", () => server.close(() => process.exit(0)));
} else {
  console.error("usage: app.js --role productpage|details|reviews|ratings|loadgen [--version v1] [--port 9080]");
  process.exit(2);
}
