/**
 * The demo application `weft up` deploys: a small Bookinfo (productpage → details, reviews v1/v2/v3
 * → ratings) as plain HTTP services that know nothing of the mesh. Like Kubernetes apps, they find
 * services through <NAME>_SERVICE_HOST/_PORT environment variables (the local cluster has no DNS).
 *
 *   node app.js --role productpage|details|reviews|ratings [--version v1] [--port 9080] [--call-timeout-ms 10000]
 *   node app.js --role loadgen --target productpage [--rps 2] [--duration-s 3600]
 *
 * As Istio's Bookinfo, for its traffic-management tasks:
 * - productpage calls details and reviews; reviews v2 and v3 call ratings, v1 does not.
 * - every app copies `end-user`, `x-request-id`, W3C and B3 trace headers to its own calls.
 * - productpage's user comes from `?user=NAME`, an `end-user` header or a `user=NAME` cookie
 *   (Istio's takes a login form; see headers.ts).
 * - productpage answers 200 even when a call failed, reporting each call's status and duration
 *   under `calls` (Istio's page shows "error fetching product reviews"), and says which reviews
 *   version answered in `reviewsVersion` and the `x-weft-reviews-version` header ("none" if none).
 * - every answer lists the propagated headers the app received under `received`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { type CallResult, call } from "./call.js";
import { endUser, forwardHeaders } from "./headers.js";

const { values: opts } = parseArgs({
  options: {
    role: { type: "string" },
    version: { type: "string", default: "v1" },
    port: { type: "string", default: "9080" },
    "call-timeout-ms": { type: "string", default: "10000" },
    target: { type: "string", default: "productpage" },
    rps: { type: "string", default: "2" },
    "duration-s": { type: "string", default: "3600" },
  },
});

const POD = process.env.POD_NAME ?? hostname();
// Longer than any fault the tasks inject (ratings' 7 s delay), so a caller sees the delay, not its own deadline.
const CALL_TIMEOUT_MS = Number(opts["call-timeout-ms"]);

function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "x-served-by": POD,
    "content-length": Buffer.byteLength(text),
    ...extra,
  });
  res.end(text);
}

/** What a call reports on the page: its outcome without the body (shown separately). */
function summary(r: CallResult): Omit<CallResult, "body"> {
  return { status: r.status, ms: r.ms, ...(r.error ? { error: r.error } : {}) };
}

const STARS: Record<string, string> = { v1: "none", v2: "black", v3: "red" };

async function handle(role: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://x");
  if (url.pathname === "/health") return send(res, 200, { ok: true, pod: POD });
  const received = forwardHeaders(req.headers);
  switch (role) {
    case "details":
      return send(res, 200, {
        id: 0,
        title: "The Comedy of Errors",
        author: "William Shakespeare",
        year: 1595,
        pages: 200,
        pod: POD,
        received,
      });
    case "ratings":
      return send(res, 200, { id: 0, ratings: { Reviewer1: 5, Reviewer2: 4 }, pod: POD, received });
    case "reviews": {
      const reviews: Record<string, unknown> = {
        id: 0,
        version: opts.version,
        pod: POD,
        received,
        reviews: [
          { reviewer: "Reviewer1", text: "An extremely entertaining play." },
          { reviewer: "Reviewer2", text: "Absolutely fun." },
        ],
      };
      if (opts.version !== "v1") {
        const r = await call("ratings", "/ratings/0", received, CALL_TIMEOUT_MS);
        reviews.ratingsCall = summary(r);
        reviews.ratings = r.error ? { error: "Ratings service is currently unavailable" } : r.body;
        reviews.stars = STARS[opts.version as string] ?? "black";
      }
      return send(res, 200, reviews);
    }
    case "productpage": {
      const user = endUser(url, req.headers);
      const headers = { ...received };
      if (user) headers["end-user"] = user;
      else delete headers["end-user"];
      const [details, reviews] = await Promise.all([
        call("details", "/details/0", headers, CALL_TIMEOUT_MS),
        call("reviews", "/reviews/0", headers, CALL_TIMEOUT_MS),
      ]);
      const version = reviews.error ? undefined : (reviews.body as { version?: unknown }).version;
      const reviewsVersion = typeof version === "string" ? version : "none";
      return send(
        res,
        200,
        {
          product: "The Comedy of Errors",
          pod: POD,
          user: user ?? null,
          reviewsVersion,
          details: details.error ? { error: "Sorry, product details are currently unavailable" } : details.body,
          reviews: reviews.error ? { error: "Sorry, product reviews are currently unavailable" } : reviews.body,
          calls: { details: summary(details), reviews: summary(reviews) },
          received,
        },
        { "x-weft-reviews-version": reviewsVersion },
      );
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
    const r = await call(opts.target as string, "/productpage", {}, 3000);
    if (r.error) {
      failed++;
      if (failed % 10 === 1) console.error(`loadgen: ${r.error}`);
    } else ok++;
    if ((ok + failed) % 50 === 0) console.log(JSON.stringify({ ok, failed }));
    await new Promise((r) => setTimeout(r, 1000 / rps));
  }
  console.log(JSON.stringify({ ok, failed, done: true }));
}

if (opts.role === "loadgen") {
  await loadgen();
} else if (opts.role && ["productpage", "details", "reviews", "ratings"].includes(opts.role)) {
  if (!(CALL_TIMEOUT_MS > 0)) {
    console.error(`--call-timeout-ms '${opts["call-timeout-ms"]}': expected a positive number of milliseconds`);
    process.exit(2);
  }
  const role = opts.role;
  const server = createServer((req, res) => {
    handle(role, req, res).catch((e: Error) => send(res, 500, { error: e.message }));
  });
  server.keepAliveTimeout = 30_000;
  server.listen(Number(opts.port), "0.0.0.0", () => console.log(`${role} ${opts.version} listening on ${opts.port}`));
  process.on("SIGTERM", () => server.close(() => process.exit(0)));
} else {
  console.error("usage: app.js --role productpage|details|reviews|ratings|loadgen [--version v1] [--port 9080] [--call-timeout-ms 10000]");
  process.exit(2);
}
