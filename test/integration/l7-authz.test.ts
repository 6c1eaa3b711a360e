/**
 * Acceptance (issue 12): HTTP authorization at the destination node's proxy, on Bookinfo, with
 * Istio's HTTP authorization task shapes: allow GET to productpage and nothing else; only reviews
 * may GET ratings; not-forms; a header condition; a dry-run DENY that is counted, never enforced.
 * Denied requests get 403 on their own; allowed requests on the same connections go on.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { addService, runDetached } from "../../scripts/cluster/cluster.js";
import { BOOKINFO_NS, BOOKINFO_PORT } from "../../scripts/demo/bookinfo.js";
import { forceDown, probeConnect } from "../helpers/cluster.js";
import {
  applyIn,
  BOOKINFO_CLIENT,
  bookinfoUp,
  deleteIn,
  getOnce,
  httpbinStats,
  ISTIO,
  loadClient,
  nodeOf,
  productpageUrl,
  startHttpbin,
} from "../helpers/l7.js";
import { counterSum, metrics, podIp, vip } from "../helpers/mesh.js";
import { describePrivileged } from "../helpers/privileged.js";
import { waitFor } from "../helpers/wait.js";
import { testClusterName } from "../helpers/weft.js";

const C = testClusterName("la");
const NS = BOOKINFO_NS;
const FIXTURES = [
  "authz-productpage-viewer.yaml",
  "authz-ratings-viewer.yaml",
  "authz-details-not-get.yaml",
  "authz-details-header.yaml",
  "authz-details-dry-run.yaml",
  "authz-ratings-require-jwt.yaml",
];
const TMP = mkdtempSync(join(tmpdir(), "weft-l7-authz-"));
const JWT_FILE = join(TMP, "request-auth.yaml");
const RL_FILE = join(TMP, "rate-limit.yaml");
const RAW_HTTP_FILE = join(TMP, "raw-http.yaml");
const RAW_TCP_FILE = join(TMP, "raw-tcp.yaml");
const NORM_FILE = join(TMP, "deny-secret.yaml");
const PAYLOAD_FILE = join(TMP, "details-jwt.yaml");
/** A port of details-v1 whose Service declares no protocol (port name "raw"). */
const RAW_PORT = 8000;
/** Another such port, for the path normalization test. */
const NORM_PORT = 8001;
/** And one for the JWT payload header test. */
const PAYLOAD_PORT = 8002;

/** An ALLOW AuthorizationPolicy on details' undeclared port. */
function rawPolicyYaml(name: string, rule: string[]): string {
  return [
    "apiVersion: security.istio.io/v1",
    "kind: AuthorizationPolicy",
    "metadata:",
    `  name: ${name}`,
    "spec:",
    "  selector:",
    "    matchLabels:",
    "      app: details",
    "  action: ALLOW",
    "  rules:",
    ...rule,
    "",
  ].join("\n");
}

/** A RateLimitPolicy on ratings. */
function rateLimitYaml(limits: string[]): string {
  return [
    "apiVersion: weft.dev/v1alpha1",
    "kind: RateLimitPolicy",
    "metadata:",
    "  name: ratings-limit",
    "spec:",
    "  selector:",
    "    matchLabels:",
    "      app: ratings",
    ...limits,
    "",
  ].join("\n");
}

/** 50 rps offered to ratings for 10 s from the traffic pod. */
function offer50for10s() {
  return loadClient(C, BOOKINFO_CLIENT, [
    "--url",
    url("ratings", "/ratings/0"),
    "--rps",
    "50",
    "-c",
    "5",
    "-n",
    "100",
    "--max-ms",
    "20000",
  ]);
}
const fixture = (f: string) => join(ISTIO, f);
const url = (app: string, path: string) => `http://${vip(C, NS, app)}:${BOOKINFO_PORT}${path}`;

/** istio_requests_total{reporter="destination"} for a workload and response code, on its node. */
async function destinationCount(workload: string, code: string): Promise<number> {
  const text = await metrics(C, nodeOf(C, NS, workload));
  return counterSum(text, "istio_requests_total", { reporter: "destination", destination_workload: workload, response_code: code });
}

/** Waits until requests with these methods get these statuses (the policy reached the proxy). */
async function waitForStatuses(u: string, expected: Record<string, number>, headers: string[] = []): Promise<void> {
  await waitFor(
    `statuses ${JSON.stringify(expected)} from ${u}`,
    async () => {
      const r = await loadClient(C, BOOKINFO_CLIENT, [
        "--url",
        u,
        "--methods",
        Object.keys(expected).join(","),
        "-n",
        String(Object.keys(expected).length),
        ...headers.flatMap((h) => ["--header", h]),
      ]);
      const want = Object.fromEntries(Object.entries(expected).map(([m, s]) => [`${m} ${s}`, 1]));
      if (JSON.stringify(r.byMethod) !== JSON.stringify(want)) throw new Error(`seen ${JSON.stringify(r.byMethod)}`);
      return true;
    },
    20_000,
    200,
  );
}

describePrivileged("L7: HTTP authorization at the destination (Istio's HTTP authorization task on Bookinfo)", () => {
  beforeAll(async () => {
    await bookinfoUp(C);
    // The clients' calls take the source's L7 path (a DestinationRule applies), so a request the
    // destination refuses outright is answered 403 by the source proxy rather than reset at L4.
    await applyIn(C, NS, join(ISTIO, "destination-rule-all.yaml"));
  }, 180_000);

  afterAll(async () => {
    await forceDown(C);
    rmSync(TMP, { recursive: true, force: true });
  });

  afterEach(async () => {
    for (const f of FIXTURES) await deleteIn(C, NS, fixture(f));
    for (const f of [JWT_FILE, RL_FILE, RAW_HTTP_FILE, RAW_TCP_FILE, NORM_FILE, PAYLOAD_FILE]) {
      try {
        await deleteIn(C, NS, f);
      } catch {
        // not applied in this test
      }
    }
  });

  it("allows GET to productpage and denies POST with 403, request by request on the same connections", async () => {
    await applyIn(C, NS, fixture("authz-productpage-viewer.yaml"));
    const u = productpageUrl(C);
    await waitForStatuses(u, { GET: 200, POST: 403 });
    const before = await destinationCount("productpage-v1", "403");
    // Two keep-alive connections, each alternating GET and POST: every POST denied on its own.
    const r = await loadClient(C, BOOKINFO_CLIENT, ["--url", u, "--methods", "GET,POST", "-c", "2", "-n", "20"]);
    expect(r.byMethod).toEqual({ "GET 200": 20, "POST 403": 20 });
    expect(r.errors).toEqual({});
    await waitFor(
      "20 denials counted by the destination",
      async () => (await destinationCount("productpage-v1", "403")) >= before + 20,
      10_000,
      100,
    );
    expect(await destinationCount("productpage-v1", "403")).toBe(before + 20);
  });

  it("lets reviews GET ratings while the traffic pod may not", async () => {
    await applyIn(C, NS, fixture("authz-ratings-viewer.yaml"));
    const direct = url("ratings", "/ratings/0");
    await waitForStatuses(direct, { GET: 403 });
    const p = await waitFor(
      "a reviews version that calls ratings",
      async () => {
        const r = await getOnce(C, BOOKINFO_CLIENT, productpageUrl(C));
        const body = r.body as { reviewsVersion?: string; reviews?: { ratingsCall?: { status: number } } };
        if (body.reviewsVersion !== "v2" && body.reviewsVersion !== "v3") throw new Error(`reviews ${body.reviewsVersion}`);
        return body;
      },
      20_000,
      50,
    );
    expect(p.reviews?.ratingsCall?.status).toBe(200);
  });

  it("denies every method but GET to details outside /health (notMethods, notPaths)", async () => {
    await applyIn(C, NS, fixture("authz-details-not-get.yaml"));
    await waitForStatuses(url("details", "/details/0"), { GET: 200, POST: 403, PUT: 403 });
    await waitForStatuses(url("details", "/health"), { GET: 200, POST: 200 });
  });

  it("allows details only with the x-token header the policy names", async () => {
    await applyIn(C, NS, fixture("authz-details-header.yaml"));
    await waitForStatuses(url("details", "/details/0"), { GET: 403 });
    await waitForStatuses(url("details", "/details/0"), { GET: 200 }, ["x-token:admin"]);
    await waitForStatuses(url("details", "/details/0"), { GET: 403 }, ["x-token:guest"]);
  });

  it("dry-run DENY denies nothing and counts exactly the requests it matched", async () => {
    const node = nodeOf(C, NS, "details-v1");
    const dry = async () =>
      counterSum(await metrics(C, node), "weft_authz_dry_run_total", { policy: `${NS}/details-dry-run`, result: "deny" });
    await applyIn(C, NS, fixture("authz-details-dry-run.yaml"));
    const u = url("details", "/details/0");
    await waitFor(
      "the dry-run policy counting",
      async () => {
        await getOnce(C, BOOKINFO_CLIENT, u);
        return (await dry()) > 0;
      },
      20_000,
      200,
    );
    const before = await dry();
    const r = await loadClient(C, BOOKINFO_CLIENT, ["--url", u, "--methods", "GET,POST", "-c", "3", "-n", "10"]);
    expect(r.byMethod).toEqual({ "GET 200": 15, "POST 200": 15 });
    await waitFor("15 would-deny outcomes", async () => (await dry()) >= before + 15, 10_000, 100);
    expect(await dry()).toBe(before + 15);
  });

  it("JWT: no token 403, valid 200, expired / wrong issuer / wrong audience 401, keys from a jwksUri served in the mesh", async () => {
    const ISS = "https://issuer.bookinfo.test";
    const { publicKey, privateKey } = await generateKeyPair("RS256");
    const jwksFile = join(TMP, "jwks.json");
    writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256" }] }));
    // The key server: a process in the details pod, behind a Service of its own.
    const server = `require("node:http").createServer((q, s) => { s.writeHead(200, { "content-type": "application/json" }); s.end(require("node:fs").readFileSync(${JSON.stringify(jwksFile)})); }).listen(9090)`;
    await runDetached(C, `${NS}/details-v1`, [process.execPath, "-e", server], { what: "jwks server" });
    await addService(C, {
      namespace: NS,
      name: "keys",
      ports: [{ name: "http", port: 9090, targetPort: 9090, protocol: "TCP", appProtocol: "http" }],
      selector: { app: "details" },
    });
    writeFileSync(
      JWT_FILE,
      [
        "apiVersion: security.istio.io/v1",
        "kind: RequestAuthentication",
        "metadata:",
        "  name: ratings-jwt",
        "spec:",
        "  selector:",
        "    matchLabels:",
        "      app: ratings",
        "  jwtRules:",
        `    - issuer: ${JSON.stringify(ISS)}`,
        '      audiences: ["ratings"]',
        `      jwksUri: "http://keys.${NS}.svc.cluster.local:9090/jwks.json"`,
        "",
      ].join("\n"),
    );
    await applyIn(C, NS, JWT_FILE);
    await applyIn(C, NS, fixture("authz-ratings-require-jwt.yaml"));
    const token = (o: { iss?: string; aud?: string; exp?: number } = {}) =>
      new SignJWT({})
        .setProtectedHeader({ alg: "RS256", kid: "k1" })
        .setIssuer(o.iss ?? ISS)
        .setSubject("alice")
        .setAudience(o.aud ?? "ratings")
        .setExpirationTime(o.exp ?? Math.floor(Date.now() / 1000) + 600)
        .sign(privateKey);
    const u = url("ratings", "/ratings/0");
    const bearer = async (t: Promise<string>) => [`authorization:Bearer ${await t}`];
    await waitForStatuses(u, { GET: 200 }, await bearer(token()));
    await waitForStatuses(u, { GET: 403 });
    await waitForStatuses(u, { GET: 401 }, await bearer(token({ exp: Math.floor(Date.now() / 1000) - 60 })));
    await waitForStatuses(u, { GET: 401 }, await bearer(token({ iss: "https://evil.test" })));
    await waitForStatuses(u, { GET: 401 }, await bearer(token({ aud: "other" })));
  });

  it("rate limit: 10 rps on ratings under 50 rps for 10 s accepts 95–115, the rest 429 RL; an override raises one client's limit", async () => {
    writeFileSync(RL_FILE, rateLimitYaml(["  total:", "    requestsPerSecond: 10", "    burst: 10"]));
    await applyIn(C, NS, RL_FILE);
    const u = url("ratings", "/ratings/0");
    await waitFor(
      "the limit in force",
      async () => {
        const r = await loadClient(C, BOOKINFO_CLIENT, ["--url", u, "-c", "4", "-n", "10"]);
        if (!r.codes[429]) throw new Error(`codes ${JSON.stringify(r.codes)}`);
        return true;
      },
      20_000,
      200,
    );
    const node = nodeOf(C, NS, "ratings-v1");
    const rl = async () =>
      counterSum(await metrics(C, node), "istio_requests_total", {
        reporter: "destination",
        destination_workload: "ratings-v1",
        response_code: "429",
        response_flags: "RL",
      });
    const before = await rl();
    const r = await offer50for10s();
    expect(r.requests).toBe(500);
    const accepted = r.codes[200] ?? 0;
    expect(accepted).toBeGreaterThanOrEqual(95);
    expect(accepted).toBeLessThanOrEqual(115);
    expect(r.codes[429]).toBe(500 - accepted);
    await waitFor("429s counted with flag RL", async () => (await rl()) >= before + 500 - accepted, 10_000, 100);

    // Per client: 10 rps each, but the traffic pod's identity may send 30.
    writeFileSync(
      RL_FILE,
      rateLimitYaml([
        "  perClient:",
        "    requestsPerSecond: 10",
        "    burst: 10",
        "  overrides:",
        `    - clients: ["cluster.local/ns/${NS}/sa/traffic"]`,
        "      limit:",
        "        requestsPerSecond: 30",
        "        burst: 30",
      ]),
    );
    await applyIn(C, NS, RL_FILE);
    await waitFor(
      "the override in force",
      async () => {
        const x = await loadClient(C, BOOKINFO_CLIENT, ["--url", u, "-c", "4", "-n", "6"]);
        if ((x.codes[200] ?? 0) < 20) throw new Error(`codes ${JSON.stringify(x.codes)}`);
        return true;
      },
      20_000,
      500,
    );
    const raised = await offer50for10s();
    expect(raised.codes[200] ?? 0).toBeGreaterThanOrEqual(285);
    expect(raised.codes[200] ?? 0).toBeLessThanOrEqual(345);
  });

  it("checks HTTP rules per request on a port that declares no protocol (sniffed); other bytes there get the L4 decision", async () => {
    await startHttpbin(C, `${NS}/details-v1`, RAW_PORT);
    await addService(C, {
      namespace: NS,
      name: "details-raw",
      ports: [{ name: "raw", port: RAW_PORT, targetPort: RAW_PORT, protocol: "TCP" }],
      selector: { app: "details" },
    });
    const raw = `http://${vip(C, NS, "details-raw")}:${RAW_PORT}`;
    // Only GET /allowed: a rule only an HTTP-aware check can allow.
    writeFileSync(
      RAW_HTTP_FILE,
      rawPolicyYaml("details-raw-get", [
        "    - to:",
        "        - operation:",
        "            methods: [GET]",
        "            paths: [/allowed]",
        `            ports: ["${RAW_PORT}"]`,
      ]),
    );
    await applyIn(C, NS, RAW_HTTP_FILE);
    await waitForStatuses(`${raw}/allowed`, { GET: 200, POST: 403 });
    // Request by request on the same keep-alive connection.
    const r = await loadClient(C, BOOKINFO_CLIENT, ["--url", `${raw}/allowed`, "--methods", "GET,POST", "-c", "1", "-n", "10"]);
    expect(r.byMethod).toEqual({ "GET 200": 5, "POST 403": 5 });
    expect((await getOnce(C, BOOKINFO_CLIENT, `${raw}/other`)).status).toBe(403);
    // Bytes that are not HTTP cannot meet an HTTP rule: refused (fail closed), the pod never sees them.
    const refused = await probeConnect(C, BOOKINFO_CLIENT, vip(C, NS, "details-raw"), RAW_PORT, "hello, not http\n");
    expect(refused.reply ?? "").toBe("");
    // An L4 rule for the traffic pod lets them through to the pod (httpbin answers them 400).
    writeFileSync(
      RAW_TCP_FILE,
      rawPolicyYaml("details-raw-traffic", [
        "    - from:",
        "        - source:",
        "            principals: [cluster.local/ns/bookinfo/sa/traffic]",
        "      to:",
        "        - operation:",
        `            ports: ["${RAW_PORT}"]`,
      ]),
    );
    await applyIn(C, NS, RAW_TCP_FILE);
    const spliced = await waitFor(
      "non-HTTP bytes spliced to the pod once an L4 rule allows them",
      async () => {
        const p = await probeConnect(C, BOOKINFO_CLIENT, vip(C, NS, "details-raw"), RAW_PORT, "hello, not http\n");
        if (!p.reply?.startsWith("HTTP/1.1 400")) throw new Error(`reply ${JSON.stringify(p)}`);
        return p;
      },
      20_000,
      200,
    );
    expect(spliced.reply).toMatch(/^HTTP\/1\.1 400/);
  });

  it("authorizes and forwards the canonical path: traversal, escapes, doubled slashes and backslashes do not get past a DENY", async () => {
    writeFileSync(
      NORM_FILE,
      [
        "apiVersion: security.istio.io/v1",
        "kind: AuthorizationPolicy",
        "metadata:",
        "  name: details-deny-secret",
        "spec:",
        "  selector:",
        "    matchLabels:",
        "      app: details",
        "  action: DENY",
        "  rules:",
        "    - to:",
        "        - operation:",
        "            paths: [/secret*]",
        `            ports: ["${NORM_PORT}"]`,
        "",
      ].join("\n"),
    );
    await applyIn(C, NS, NORM_FILE);
    await addService(C, {
      namespace: NS,
      name: "details-norm",
      ports: [{ name: "raw", port: NORM_PORT, targetPort: NORM_PORT, protocol: "TCP" }],
      selector: { app: "details" },
    });
    const pod = podIp(C, NS, "details-v1");
    const hosts = [vip(C, NS, "details-norm"), pod];
    // Raw requests (a URL library would resolve the dots itself): through the Service address,
    // and to the pod's own address, which no route names, so only the destination reads them.
    const send = (host: string, target: string) =>
      probeConnect(C, BOOKINFO_CLIENT, host, NORM_PORT, `GET ${target} HTTP/1.1\r\nhost: details-norm\r\n\r\n`);
    const until = (host: string, target: string, status: number) =>
      waitFor(
        `${status} for ${target} at ${host}`,
        async () => {
          const r = await send(host, target);
          if (!r.reply?.startsWith(`HTTP/1.1 ${status}`)) throw new Error(`reply ${JSON.stringify(r)}`);
          return r;
        },
        20_000,
        200,
      );
    // The DENY is in force before the app listens, so nothing it denies can have reached it.
    for (const host of hosts) await until(host, "/secret", 403);
    await startHttpbin(C, `${NS}/details-v1`, NORM_PORT);
    for (const host of hosts) {
      const ok = await until(host, "/public/./a/../ok?q=/../secret", 200);
      for (const target of ["/public/../secret", "/%73ecret", "//secret", "/public\\..\\secret", "/x/%2e%2E/secret/key", "/./secret"]) {
        const r = await send(host, target);
        expect(r.reply, `${host} ${target}`).toMatch(/^HTTP\/1\.1 403/);
      }
      const echo = JSON.parse((ok.reply as string).slice((ok.reply as string).indexOf("\r\n\r\n") + 4)) as { path: string };
      expect(echo.path, host).toBe("/public/ok?q=/../secret");
      const bad = await send(host, "/a%zz");
      expect(bad.reply, host).toMatch(/^HTTP\/1\.1 400 [\s\S]*bad percent-encoding/);
    }
    // The app saw only the allowed request, in its canonical spelling.
    const seen = (await httpbinStats(C, BOOKINFO_CLIENT, pod, NORM_PORT)).recent.map((r) => r.path);
    expect(seen.length).toBeGreaterThanOrEqual(hosts.length);
    expect(new Set(seen)).toEqual(new Set(["/public/ok?q=/../secret"]));
  });

  it("a JWT payload header the client wrote itself never reaches the app (outputPayloadToHeader)", async () => {
    const iss = "https://issuer.bookinfo.test";
    const { publicKey } = await generateKeyPair("RS256");
    const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256" }] });
    writeFileSync(
      PAYLOAD_FILE,
      [
        "apiVersion: security.istio.io/v1",
        "kind: RequestAuthentication",
        "metadata:",
        "  name: details-jwt",
        "spec:",
        "  selector:",
        "    matchLabels:",
        "      app: details",
        "  jwtRules:",
        `    - issuer: ${JSON.stringify(iss)}`,
        `      jwks: ${JSON.stringify(jwks)}`,
        "      outputPayloadToHeader: x-jwt-payload",
        "",
      ].join("\n"),
    );
    await startHttpbin(C, `${NS}/details-v1`, PAYLOAD_PORT);
    await addService(C, {
      namespace: NS,
      name: "details-jwt",
      ports: [{ name: "http", port: PAYLOAD_PORT, targetPort: PAYLOAD_PORT, protocol: "TCP", appProtocol: "http" }],
      selector: { app: "details" },
    });
    const forged = Buffer.from(JSON.stringify({ iss, sub: "admin" })).toString("base64url");
    const u = `http://${vip(C, NS, "details-jwt")}:${PAYLOAD_PORT}/whoami`;
    const seenHeaders = async () => {
      const last = await getOnce(C, BOOKINFO_CLIENT, u, [`x-jwt-payload:${forged}`]);
      if (last.status !== 200) throw new Error(`HTTP ${last.status} ${last.error ?? ""}`);
      return (last.body as { headers: Record<string, string> }).headers;
    };
    // Before the rule is in force the header is the client's business and reaches the app.
    expect((await waitFor("httpbin answers", seenHeaders, 20_000, 200))["x-jwt-payload"]).toBe(forged);
    await applyIn(C, NS, PAYLOAD_FILE);
    await waitFor(
      "the client's payload header dropped once the rule is in force",
      async () => (await seenHeaders())["x-jwt-payload"] === undefined,
      20_000,
      200,
    );
    for (let i = 0; i < 5; i++) expect((await seenHeaders())["x-jwt-payload"]).toBeUndefined();
  });
});
