import { readFileSync } from "node:fs";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawStream } from "../helpers/control-client.js";
import { ControlFixture } from "../helpers/control-fixture.js";
import { namespace, node } from "../helpers/control-objects.js";
import { waitFor } from "../helpers/wait.js";

// The controller's gRPC server under abuse: old TLS, a flood of streams with one node's token.
describe("controller limits", () => {
  let f: ControlFixture;
  let caPem: string;
  const token = (n: string) => readFileSync(join(f.stateDir, "tokens", `${n}.token`), "utf8").trim();
  const hits = async (limit: string) => {
    const m = await f.controller.xds.metrics.registry.getSingleMetric("weft_controller_limit_hits_total")?.get();
    return m?.values.find((v) => v.labels.limit === limit)?.value ?? 0;
  };

  beforeAll(async () => {
    f = await ControlFixture.start([
      namespace("shop", { "weft.dev/mesh": "enabled" }),
      node("n1", "10.250.0.11"),
      node("n2", "10.250.0.12"),
    ]);
    caPem = readFileSync(join(f.stateDir, "ca", "root-cert.pem"), "utf8");
  });
  afterAll(async () => {
    await f?.stop();
  });

  const handshake = (maxVersion: "TLSv1.2" | "TLSv1.3") =>
    new Promise<string>((resolve) => {
      const s = tlsConnect({
        host: "127.0.0.1",
        port: f.controller.port,
        servername: "weft-controller",
        ca: [caPem],
        minVersion: "TLSv1.2",
        maxVersion,
        ALPNProtocols: ["h2"],
      });
      s.once("secureConnect", () => {
        resolve(`connected with ${s.getProtocol()}`);
        s.destroy();
      });
      s.once("error", (e: NodeJS.ErrnoException) => resolve(`refused: ${e.code ?? e.message}`));
    });

  it("speaks only TLS 1.3, before and after its serving certificate is renewed", async () => {
    expect(await handshake("TLSv1.3")).toBe("connected with TLSv1.3");
    expect(await handshake("TLSv1.2")).toMatch(/^refused/);
    // Force the renewal the controller does at half life (it replaces the server's secure context).
    (f.controller as unknown as { renewServingCert(): void }).renewServingCert();
    await waitFor("renewed context in use", async () => (await handshake("TLSv1.3")) === "connected with TLSv1.3");
    expect(await handshake("TLSv1.2")).toMatch(/^refused/);
  });

  it("holds 300 streams with one node's token to its per-node limit, counts the rest, keeps serving others", async () => {
    const rssBefore = process.memoryUsage().rss;
    const logLinesBefore = f.controllerLog.lines.length;
    const flood = Array.from({ length: 300 }, () => rawStream(f.target, caPem, token("n1")));
    try {
      for (const s of flood) s.subscribeAll("n1");
      const limit = 4; // DEFAULT_XDS_LIMITS.maxStreamsPerNode
      await waitFor("every flood stream answered or refused", async () => {
        let settled = 0;
        for (const s of flood) if (s.responses.length > 0) settled++;
        return settled + (await hits("streams_per_node")) >= 300;
      });
      const served = flood.filter((s) => s.responses.length > 0).length;
      expect(served).toBeLessThanOrEqual(limit);
      expect(await hits("streams_per_node")).toBeGreaterThanOrEqual(300 - limit);
      const refused = flood.find((s) => s.responses.length === 0) as (typeof flood)[number];
      expect(await refused.ended).toMatchObject({ code: status.RESOURCE_EXHAUSTED });
      // Another node's agent is served as usual.
      const other = rawStream(f.target, caPem, token("n2"));
      other.subscribeAll("n2");
      await waitFor("n2 served during the flood", () => other.responses.length >= 1);
      other.close();
      // Refusals are logged at a bounded rate, not once each.
      const refusalLines = f.controllerLog.lines.slice(logLinesBefore).filter((l) => /agent stream refused/.test(JSON.stringify(l))).length;
      expect(refusalLines).toBeLessThanOrEqual(30);
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(256 * 1024 * 1024);
    } finally {
      for (const s of flood) s.close();
    }
  });

  it("refuses a stream that sends more than the pre-authentication budget before its credential is checked", async () => {
    const s = rawStream(f.target, caPem, "not-a-token-".repeat(4));
    for (let i = 0; i < 40; i++) s.send({ typeUrl: "x" });
    const err = await s.ended;
    // Either the flood of messages or the bad token ends it; never a served stream.
    expect([status.RESOURCE_EXHAUSTED, status.UNAUTHENTICATED]).toContain(err?.code);
    expect(s.responses).toEqual([]);
    s.close();
  });
});
