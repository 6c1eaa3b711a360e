/**
 * Acceptance (issue 11): Gateway API HTTPRoute for mesh traffic (GAMMA: parentRef is the Service
 * the client calls), done by the client's node proxy: weighted split, header match, URLRewrite,
 * RequestHeaderModifier and RequestMirror. The backends echo what reached them (httpbin.mjs).
 */
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { forceDown } from "../helpers/cluster.js";
import { applyIn, GATEWAY_API, getOnce, type HttpbinStats, httpbinStats, loadClient, percent, startHttpbin } from "../helpers/l7.js";
import { meshUp, podIp, vip } from "../helpers/mesh.js";
import { describePrivileged } from "../helpers/privileged.js";
import { waitFor } from "../helpers/wait.js";
import { testClusterName } from "../helpers/weft.js";

const C = testClusterName("lh");
const NS = "gamma";
const PORT = 8080;
const CLIENT = `${NS}/client`;
const route = (f: string) => join(GATEWAY_API, f);
const url = (path = "/get") => `http://${vip(C, NS, "echo")}:${PORT}${path}`;
const svc = (name: string, selector: Record<string, string>) => ({
  ns: NS,
  name,
  port: PORT,
  targetPort: PORT,
  selector,
  appProtocol: "http",
});

/** The echo a backend answers with. */
type Echo = HttpbinStats["recent"][number] & { name: string };

async function echo(path: string, headers: string[] = []): Promise<Echo> {
  const r = await getOnce(C, CLIENT, url(path), headers);
  if (r.status !== 200) throw new Error(`GET ${path}: HTTP ${r.status} ${r.error ?? ""}`);
  return r.body as Echo;
}

describePrivileged("L7: Gateway API HTTPRoute (GAMMA) in the source node proxy", () => {
  beforeAll(async () => {
    await meshUp(
      C,
      [
        { ns: NS, name: "client", node: 1 },
        { ns: NS, name: "echo-v1", node: 2, labels: { app: "echo", version: "v1" } },
        { ns: NS, name: "echo-v2", node: 2, labels: { app: "echo", version: "v2" } },
        { ns: NS, name: "echo-mirror", node: 1, labels: { app: "echo-mirror" } },
      ],
      [NS],
      [
        svc("echo", { app: "echo" }),
        svc("echo-v1", { app: "echo", version: "v1" }),
        svc("echo-v2", { app: "echo", version: "v2" }),
        svc("echo-mirror", { app: "echo-mirror" }),
      ],
    );
    for (const p of ["echo-v1", "echo-v2", "echo-mirror"]) await startHttpbin(C, `${NS}/${p}`, PORT);
    await waitFor(
      "echo backends answering through the mesh",
      async () => {
        const r = await loadClient(C, CLIENT, ["--url", url("/__health"), "-n", "20", "--no-keepalive"]);
        if (r.codes["200"] !== 20 || !r.byHeader["echo-v1"] || !r.byHeader["echo-v2"]) throw new Error(JSON.stringify(r));
        return true;
      },
      30_000,
      200,
    );
  }, 180_000);

  afterAll(async () => {
    await forceDown(C);
  });

  it("splits 80/20 between echo-v1 and echo-v2 within ±3 points over 2,000 requests", async () => {
    await applyIn(C, NS, route("httproute-split-80-20.yaml"));
    const split = (n: number, c: number, extra: string[] = []) =>
      loadClient(C, CLIENT, ["--url", url(), "-c", String(c), "-n", String(n / c), "--max-ms", "120000", ...extra]);
    await waitFor(
      "the 80/20 route in effect",
      async () => {
        // New connections, so connections pinned to one backend cannot pass for the split.
        const r = await split(200, 10, ["--no-keepalive"]);
        if (percent(r.byHeader, "echo-v1") < 70) throw new Error(`backends seen: ${JSON.stringify(r.byHeader)}`);
        return true;
      },
      20_000,
      200,
    );
    const r = await split(2000, 20);
    expect(r.codes).toEqual({ 200: 2000 });
    expect(Math.abs(percent(r.byHeader, "echo-v1") - 80)).toBeLessThanOrEqual(3);
    expect(Math.abs(percent(r.byHeader, "echo-v2") - 20)).toBeLessThanOrEqual(3);
  });

  it("routes by header: x-canary: true to echo-v2, everything else to echo-v1", async () => {
    await applyIn(C, NS, route("httproute-header-match.yaml"));
    const run = (headers: string[]) =>
      loadClient(C, CLIENT, ["--url", url(), "-c", "5", "-n", "20", ...headers.flatMap((h) => ["--header", h])]);
    await waitFor(
      "the header route in effect",
      async () => {
        const r = await run(["x-canary:true"]);
        if (Object.keys(r.byHeader).join() !== "echo-v2") throw new Error(`backends seen: ${JSON.stringify(r.byHeader)}`);
        return true;
      },
      20_000,
      200,
    );
    expect((await run(["x-canary:true"])).byHeader).toEqual({ "echo-v2": 100 });
    expect((await run([])).byHeader).toEqual({ "echo-v1": 100 });
    expect((await run(["x-canary:false"])).byHeader).toEqual({ "echo-v1": 100 });
  });

  it("rewrites the path prefix and the host (URLRewrite), and only under the matched prefix", async () => {
    await applyIn(C, NS, route("httproute-url-rewrite.yaml"));
    const seen = await waitFor(
      "the rewrite in effect",
      async () => {
        const e = await echo("/old/books?id=1");
        if (e.path !== "/new/books?id=1") throw new Error(`backend saw path ${e.path} host ${e.host}`);
        return e;
      },
      20_000,
      200,
    );
    expect(seen.name).toBe("echo-v1");
    expect(seen.host).toBe("echo-rewritten");
    const untouched = await echo("/other/books");
    expect(untouched.path).toBe("/other/books");
    expect(untouched.host).toBe(`${vip(C, NS, "echo")}:${PORT}`);
  });

  it("adds, sets and removes request headers (RequestHeaderModifier)", async () => {
    await applyIn(C, NS, route("httproute-header-modifier.yaml"));
    const seen = await waitFor(
      "the header modifier in effect",
      async () => {
        const e = await echo("/headers", ["x-set:from-client", "x-removed:yes", "x-kept:yes"]);
        if (e.headers["x-added"] !== "by-route") throw new Error(`backend saw headers ${JSON.stringify(e.headers)}`);
        return e;
      },
      20_000,
      200,
    );
    expect(seen.headers["x-added"]).toBe("by-route");
    expect(seen.headers["x-set"]).toBe("from-route");
    expect(seen.headers["x-removed"]).toBeUndefined();
    expect(seen.headers["x-kept"]).toBe("yes");
  });

  it("mirrors every request to echo-mirror while the client gets echo-v1's answer (RequestMirror)", async () => {
    const mirror = podIp(C, NS, "echo-mirror");
    await applyIn(C, NS, route("httproute-mirror.yaml"));
    let n = 0;
    const key = await waitFor(
      "the mirror in effect",
      async () => {
        const k = `mirror-${++n}`;
        const e = await echo("/mirrored", [`x-test-key:${k}`]);
        if (e.name !== "echo-v1") throw new Error(`answered by ${e.name}`);
        const got = await waitFor(
          `mirror copy of ${k}`,
          async () => (await httpbinStats(C, CLIENT, mirror, PORT, k)).recent.length > 0,
          1500,
          100,
        ).catch(() => false);
        if (!got) throw new Error(`echo-mirror received nothing for ${k}`);
        return k;
      },
      25_000,
      200,
    );
    const first = await httpbinStats(C, CLIENT, mirror, PORT, key);
    expect(first.recent).toHaveLength(1);
    expect(first.recent[0]?.path).toBe("/mirrored");
    // A burst: every request is mirrored once, and every answer still comes from echo-v1.
    const burstKey = `${key}-burst`;
    const r = await loadClient(C, CLIENT, ["--url", url("/mirrored"), "-c", "5", "-n", "10", "--header", `x-test-key:${burstKey}`]);
    expect(r.codes).toEqual({ 200: 50 });
    expect(r.byHeader).toEqual({ "echo-v1": 50 });
    await waitFor(
      "50 mirrored copies",
      async () => (await httpbinStats(C, CLIENT, mirror, PORT, burstKey)).attempts[burstKey] === 50,
      10_000,
      100,
    );
    expect((await httpbinStats(C, CLIENT, mirror, PORT, burstKey)).recent.every((x) => x.path === "/mirrored")).toBe(true);
  });
});
