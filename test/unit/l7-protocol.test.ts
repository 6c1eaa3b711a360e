import { once } from "node:events";
import { connect, createServer, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { classify, portHandling, sniff } from "../../agent/proxy/l7/protocol.js";

describe("protocol selection", () => {
  it.each([
    ["http", "l7"],
    ["http2", "l7"],
    ["grpc", "l7"],
    ["tcp", "l4"],
    ["auto", "sniff"],
  ] as const)("a %s port is handled %s", (proto, expected) => {
    expect(portHandling(proto)).toBe(expected);
  });

  it.each([
    ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", "http1"],
    ["POST /api/v1?x=1 HTTP/1.0\r\n", "http1"],
    ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "http2"],
    ["PRI * HTTP/2.0\r\n", "more"],
    ["GE", "more"],
    ["GET /index.html HT", "more"],
    ["\x16\x03\x01\x02\x00\x01", "tcp"],
    ["SSH-2.0-OpenSSH_9.2\r\n", "tcp"],
    ["hello world\n", "tcp"],
    ["get / HTTP/1.1\r\n", "tcp"],
    ["GET / HTTP/3.0\r\n", "tcp"],
    // Empty lines before a request line are skipped, as HTTP/1.1 servers skip them.
    ["\r\nGET /c HTTP/1.1\r\n", "http1"],
    ["\r\n\n\r\nGET /c HTTP/1.1\r\n", "http1"],
    ["\r\n\r\n", "more"],
    ["\r\nGE", "more"],
    [`${"\r\n".repeat(5000)}GET / HTTP/1.1\r\n`, "tcp"],
  ])("classifies %j as %s", (text, expected) => {
    expect(classify(Buffer.from(text, "latin1"))).toBe(expected);
  });
});

describe("sniffing a live connection", () => {
  const servers: ReturnType<typeof createServer>[] = [];
  afterEach(() => {
    for (const s of servers) s.close();
    servers.length = 0;
  });

  async function pair(): Promise<{ server: Socket; client: Socket }> {
    const srv = createServer();
    servers.push(srv);
    srv.listen(0, "127.0.0.1");
    await once(srv, "listening");
    const addr = srv.address() as { port: number };
    const client = connect(addr.port, "127.0.0.1");
    const [server] = (await once(srv, "connection")) as [Socket];
    return { server, client };
  }

  function readAll(sock: Socket): Promise<string> {
    return new Promise((resolve) => {
      let out = "";
      sock.setEncoding("latin1");
      sock.on("data", (d: string) => {
        out += d;
      });
      sock.once("end", () => resolve(out));
      sock.resume();
    });
  }

  it("recognises HTTP/1 sent in pieces and leaves every byte for the next reader", async () => {
    const { server, client } = await pair();
    const verdict = sniff(server, 5000);
    client.write("GE");
    await new Promise((r) => setTimeout(r, 20));
    client.end("T / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(await verdict).toBe("http1");
    expect(await readAll(server)).toBe("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    client.destroy();
  });

  it("gives a silent (server-first) client to TCP after the wait, and later bytes still arrive", async () => {
    const { server, client } = await pair();
    expect(await sniff(server, 30)).toBe("tcp");
    const got = readAll(server);
    client.end("late bytes");
    expect(await got).toBe("late bytes");
  });

  it("says closed when the client leaves while its bytes are still ambiguous", async () => {
    const { server, client } = await pair();
    const verdict = sniff(server, 5000);
    client.end("GE");
    expect(await verdict).toBe("closed");
  });
});
