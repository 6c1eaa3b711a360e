/**
 * Acceptance (issue 11): gRPC (grpc-js over h2c in pods) through the node proxies: calls on one
 * HTTP/2 connection routed per call by metadata and by weight, and the grpc-status of each call in
 * the request metrics (label grpc_response_status).
 */
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { forceDown } from "../helpers/cluster.js";
import { applyIn, fqdn, grpcClient, ISTIO, nodeOf, percent, sourceRequests, startGrpcServer } from "../helpers/l7.js";
import { meshUp, vip } from "../helpers/mesh.js";
import { describePrivileged } from "../helpers/privileged.js";
import { waitFor } from "../helpers/wait.js";
import { testClusterName } from "../helpers/weft.js";

const C = testClusterName("lg");
const NS = "grpc";
const PORT = 50051;
const CLIENT = `${NS}/client`;
const target = () => `${vip(C, NS, "grpc-echo")}:${PORT}`;
// Each caller on its own HTTP/2 connection: a connection pinned to one endpoint (L4) can then
// never pass for per-call routing; the proxy must route every call on each connection.
const calls = (c: number, n: number, extra: string[] = []) =>
  grpcClient(C, CLIENT, [
    "--target",
    target(),
    "-c",
    String(c),
    "-n",
    String(n),
    "--max-ms",
    "120000",
    "--connection-per-caller",
    ...extra,
  ]);

describePrivileged("L7: gRPC over h2c routed per call by the source node proxy", () => {
  beforeAll(async () => {
    await meshUp(
      C,
      [
        { ns: NS, name: "client", node: 1 },
        { ns: NS, name: "grpc-echo-v1", node: 2, labels: { app: "grpc-echo", version: "v1" } },
        { ns: NS, name: "grpc-echo-v2", node: 2, labels: { app: "grpc-echo", version: "v2" } },
      ],
      [NS],
      [{ ns: NS, name: "grpc-echo", port: PORT, targetPort: PORT, selector: { app: "grpc-echo" }, appProtocol: "grpc" }],
    );
    await startGrpcServer(C, `${NS}/grpc-echo-v1`, PORT, "v1");
    await startGrpcServer(C, `${NS}/grpc-echo-v2`, PORT, "v2");
    await waitFor(
      "both versions answering through the mesh",
      async () => {
        // One client per attempt: with no route the L4 path pins a connection to one endpoint.
        const seen = new Set<string>();
        for (let i = 0; i < 6; i++) for (const v of Object.keys((await calls(1, 1)).versions)) seen.add(v);
        if (seen.size < 2) throw new Error(`versions seen: ${[...seen].join()}`);
        return true;
      },
      30_000,
      200,
    );
    await applyIn(C, NS, join(ISTIO, "destination-rule-grpc.yaml"));
  }, 180_000);

  afterAll(async () => {
    await forceDown(C);
  });

  it("routes calls with x-user: tester to v2 and all others to v1, per call on each connection", async () => {
    await applyIn(C, NS, join(ISTIO, "virtual-service-grpc-header.yaml"));
    await waitFor(
      "the header route in effect",
      async () => {
        const r = await calls(4, 10, ["--metadata", "x-user:tester"]);
        const other = await calls(4, 10);
        if (Object.keys(r.versions).join() !== "v2" || Object.keys(other.versions).join() !== "v1")
          throw new Error(`versions seen: tester ${JSON.stringify(r.versions)}, others ${JSON.stringify(other.versions)}`);
        return true;
      },
      20_000,
      200,
    );
    expect(await calls(5, 20, ["--metadata", "x-user:tester"])).toMatchObject({ versions: { v2: 100 }, statuses: { 0: 100 } });
    expect(await calls(5, 20)).toMatchObject({ versions: { v1: 100 }, statuses: { 0: 100 } });
    expect((await calls(5, 20, ["--metadata", "x-user:other"])).versions).toEqual({ v1: 100 });
  });

  it("splits calls 80/20 between v1 and v2 within ±3 points over 2,000 calls", async () => {
    await applyIn(C, NS, join(ISTIO, "virtual-service-grpc-weight.yaml"));
    await waitFor(
      "the weighted route in effect",
      async () => {
        const r = await calls(4, 50);
        const v1 = percent(r.versions, "v1");
        if (v1 < 70 || v1 === 100) throw new Error(`versions seen: ${JSON.stringify(r.versions)}`);
        return true;
      },
      20_000,
      200,
    );
    const r = await calls(20, 100);
    expect(r.statuses).toEqual({ 0: 2000 });
    expect(Math.abs(percent(r.versions, "v1") - 80)).toBeLessThanOrEqual(3);
    expect(Math.abs(percent(r.versions, "v2") - 20)).toBeLessThanOrEqual(3);
  });

  it("counts each call's grpc-status in istio_requests_total (grpc_response_status)", async () => {
    const node = nodeOf(C, NS, "client");
    const base = { destination_service: fqdn(NS, "grpc-echo"), request_protocol: "grpc" };
    const ok = { ...base, grpc_response_status: "0" };
    const unavailable = { ...base, grpc_response_status: "14" };
    const notFound = { ...base, grpc_response_status: "5" };
    const before = {
      ok: await sourceRequests(C, node, ok),
      unavailable: await sourceRequests(C, node, unavailable),
      notFound: await sourceRequests(C, node, notFound),
      unavailable200: await sourceRequests(C, node, { ...unavailable, response_code: "200" }),
    };
    expect((await calls(2, 10)).statuses).toEqual({ 0: 20 });
    expect((await calls(2, 5, ["--status", "14"])).statuses).toEqual({ 14: 10 });
    expect((await calls(1, 3, ["--status", "5"])).statuses).toEqual({ 5: 3 });
    await waitFor(
      "grpc statuses counted",
      async () => {
        const now = {
          ok: await sourceRequests(C, node, ok),
          unavailable: await sourceRequests(C, node, unavailable),
          notFound: await sourceRequests(C, node, notFound),
        };
        const delta = {
          ok: now.ok - before.ok,
          unavailable: now.unavailable - before.unavailable,
          notFound: now.notFound - before.notFound,
        };
        if (delta.ok < 20 || delta.unavailable < 10 || delta.notFound < 3) throw new Error(`counted since: ${JSON.stringify(delta)}`);
        return true;
      },
      10_000,
      200,
    );
    // gRPC errors travel in trailers of an HTTP 200: the HTTP code label says 200 for all of them.
    const http200 = await sourceRequests(C, node, { ...unavailable, response_code: "200" });
    expect(http200 - before.unavailable200).toBeGreaterThanOrEqual(10);
  });
});
