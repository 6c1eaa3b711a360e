import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { carryUpgrade, recordUpgrade, type UpgradeOutcome } from "../../agent/proxy/l7/upgrade.js";
import type { ResponseFlag } from "../../agent/telemetry/labels.js";
import { waitFor } from "../helpers/wait.js";

// carryUpgrade between two real socket pairs on loopback: "client" is the proxy's side of the
// client's connection, "tunnel" its connection to the upstream. Each test scripts the upstream.

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** A connected pair: [the end the code under test holds, the far end]. */
async function pair(): Promise<[Socket, Socket]> {
  const server = createServer();
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const near = connect((server.address() as { port: number }).port, "127.0.0.1");
  const [far] = (await once(server, "connection")) as [Socket];
  await once(near, "connect");
  far.on("error", () => undefined);
  return [near, far];
}

const REQUEST = {
  method: "GET",
  head: Buffer.from("GET /ws HTTP/1.1\r\nhost: web\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n"),
  asked: ["echo"],
};

async function setUp(answerMs?: number) {
  const [client, app] = await pair();
  const [tunnel, upstream] = await pair();
  const outcomes: UpgradeOutcome[] = [];
  carryUpgrade(client, tunnel, REQUEST, Buffer.alloc(0), (o) => outcomes.push(o), answerMs);
  await new Promise<void>((r) => upstream.once("data", () => r()));
  let got = "";
  app.on("data", (d: Buffer) => {
    got += d.toString("latin1");
  });
  return { client, app, tunnel, upstream, outcomes, got: () => got };
}

describe("carryUpgrade: every way an upgrade can end ends both connections, once, without an unhandled error", () => {
  it("the client resets while the answer is awaited: the tunnel closes, no crash", async () => {
    const t = await setUp();
    t.app.resetAndDestroy();
    await waitFor("the tunnel closed", () => t.tunnel.destroyed && t.outcomes.length === 1);
    expect(t.outcomes).toEqual([{ kind: "failed", status: 499, reason: "client went away before the upgrade was answered" }]);
  });

  it("the client goes away while a declining answer streams: the tunnel closes, no crash", async () => {
    const t = await setUp();
    t.upstream.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n");
    await waitFor("the relayed chunk", () => t.got().includes("hello"));
    t.app.resetAndDestroy();
    const timer = setInterval(() => {
      if (!t.upstream.destroyed) t.upstream.write("5\r\nmore!\r\n");
    }, 5);
    try {
      await waitFor("the tunnel closed", () => t.tunnel.destroyed && t.outcomes.length === 1);
    } finally {
      clearInterval(timer);
    }
    expect(t.outcomes).toEqual([{ kind: "answered", status: 200 }]);
  });

  it("the upstream resets mid-answer: the client is reset, not left open with a cut body", async () => {
    const t = await setUp();
    t.upstream.write("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial");
    await waitFor("the relayed part", () => t.got().includes("partial"));
    t.upstream.resetAndDestroy();
    await waitFor("the client connection closed", () => t.app.destroyed || t.app.readableEnded);
    await waitFor("done", () => t.outcomes.length === 1);
    expect(t.client.destroyed).toBe(true);
  });

  it("keeps a HEAD answer's Content-Length, and answers 504 when the upstream says nothing in time", async () => {
    const [client, app] = await pair();
    const [tunnel, upstream] = await pair();
    const outcomes: UpgradeOutcome[] = [];
    carryUpgrade(client, tunnel, { ...REQUEST, method: "HEAD" }, Buffer.alloc(0), (o) => outcomes.push(o));
    await once(upstream, "data");
    let got = "";
    app.on("data", (d: Buffer) => {
      got += d.toString("latin1");
    });
    upstream.write("HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n");
    await waitFor("the relayed head", () => outcomes.length === 1);
    await waitFor("the head", () => got.endsWith("\r\n\r\n"));
    expect(got).toMatch(/^HTTP\/1.1 200 OK\r\n/);
    expect(got).toContain("content-length: 42\r\n");

    const t = await setUp(50);
    await waitFor("the 504", () => t.got().startsWith("HTTP/1.1 504 "));
    await waitFor("done", () => t.outcomes.length === 1);
    expect(t.outcomes[0]).toMatchObject({ kind: "failed", status: 504 });
    expect(t.tunnel.destroyed).toBe(true);
  });

  it("a switched tunnel is reported once it has closed, with the bytes it carried each way, as a 101 request", async () => {
    const t = await setUp();
    const answer = "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n";
    t.upstream.write(answer);
    await waitFor("the 101", () => t.got() === answer);
    t.upstream.on("data", (d: Buffer) => t.upstream.write(d));
    t.app.write("ping");
    await waitFor("the echo", () => t.got().endsWith("ping"));
    // Running: nothing reported yet, as the tunnel's duration and bytes are not known.
    expect(t.outcomes).toEqual([]);
    t.app.end();
    t.upstream.on("end", () => t.upstream.end());
    await waitFor("the tunnel over", () => t.outcomes.length === 1);
    expect(t.outcomes).toEqual([{ kind: "switched", fromClient: 4, toClient: answer.length + 4, clean: true }]);
    const ev = { status: 0, flags: "-" as const, bytesSent: 0, bytesReceived: 0 };
    recordUpgrade(ev, t.outcomes[0] as UpgradeOutcome);
    expect(ev).toEqual({ status: 101, flags: "-", bytesSent: answer.length + 4, bytesReceived: 4 });
    const failed = { status: 0, flags: "-" as ResponseFlag, bytesSent: 0, bytesReceived: 0 };
    recordUpgrade(failed, { kind: "failed", status: 504, reason: "slow" });
    expect(failed).toEqual({ status: 504, flags: "UT", reason: "slow", bytesSent: 0, bytesReceived: 0 });
  });
});
