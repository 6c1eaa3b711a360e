import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";
import type { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import type { UpstreamHead } from "../../agent/proxy/l7/exchange.js";
import { H1Pool } from "../../agent/proxy/l7/h1-client.js";
import { isHeadError, parseRequestHead } from "../../agent/proxy/l7/h1-codec.js";

/** A raw upstream: `reply` gets each request's bytes (head and body as sent) and the socket. */
async function upstream(reply: (request: string, sock: Socket) => void) {
  const requests: string[] = [];
  let connections = 0;
  const server: Server = createServer((sock) => {
    connections++;
    let buf = "";
    sock.on("data", (c: Buffer) => {
      buf += c.toString("latin1");
      // One request at a time: a head, then its body by length or up to the last chunk.
      for (;;) {
        const r = parseRequestHead(Buffer.from(buf, "latin1"));
        if (r === "incomplete" || isHeadError(r)) return;
        let end = r.used;
        if (r.head.framing.kind === "length") end += r.head.framing.length;
        if (r.head.framing.kind === "chunked") {
          const last = buf.indexOf("0\r\n\r\n", r.used);
          if (last < 0) return;
          end = last + 5;
        }
        if (buf.length < end) return;
        const one = buf.slice(0, end);
        buf = buf.slice(end);
        requests.push(one);
        reply(one, sock);
      }
    });
    sock.on("error", () => undefined);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  const pool = (settings = {}) =>
    new H1Pool(async () => {
      const s = connect(port, "127.0.0.1");
      await once(s, "connect");
      return s;
    }, settings);
  return { server, requests, pool, connections: () => connections };
}

const head = (method: string, path: string, headers: Record<string, string> = {}): UpstreamHead => ({
  method,
  path,
  authority: "web",
  headers,
});

async function text(body: Readable): Promise<string> {
  let s = "";
  for await (const c of body) s += (c as Buffer).toString();
  return s;
}

async function call(pool: H1Pool, h: UpstreamHead, body?: string[]) {
  const ex = pool.send(h);
  for (const b of body ?? []) ex.body.write(Buffer.from(b));
  ex.body.end();
  const r = await ex.response;
  if (!r.ok) return { failure: r.failure.kind, message: r.failure.error.message };
  return { status: r.response.status, headers: r.response.headers, body: await text(r.response.body), trailers: r.response.trailers() };
}

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

describe("weft's HTTP/1.1 client", () => {
  it("reuses one keep-alive connection for requests in sequence, and sends a body without a length chunked", async () => {
    const up = await upstream((_r, sock) => sock.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"));
    servers.push(up.server);
    const pool = up.pool();
    expect(await call(pool, head("GET", "/a", { "x-a": "1" }))).toMatchObject({ status: 200, body: "ok" });
    expect(await call(pool, head("POST", "/b"), ["hel", "lo"])).toMatchObject({ status: 200, body: "ok" });
    expect(await call(pool, head("PUT", "/c", { "content-length": "3" }), ["abc"])).toMatchObject({ status: 200, body: "ok" });
    expect(up.connections()).toBe(1);
    expect(up.requests[0]).toBe("GET /a HTTP/1.1\r\nhost: web\r\nx-a: 1\r\n\r\n");
    expect(up.requests[1]).toBe("POST /b HTTP/1.1\r\nhost: web\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n");
    expect(up.requests[2]).toBe("PUT /c HTTP/1.1\r\nhost: web\r\ncontent-length: 3\r\n\r\nabc");
  });

  it("reads chunked bodies with trailers, skips 1xx answers, and reads HEAD answers as heads alone", async () => {
    const up = await upstream((r, sock) => {
      if (r.startsWith("HEAD")) sock.write("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n");
      else
        sock.write(
          "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\ngrpc-status: 0\r\n\r\n",
        );
    });
    servers.push(up.server);
    const pool = up.pool();
    expect(await call(pool, head("GET", "/"))).toMatchObject({ status: 200, body: "abc", trailers: { "grpc-status": "0" } });
    expect(await call(pool, head("HEAD", "/"))).toMatchObject({ status: 200, body: "" });
    expect(await call(pool, head("GET", "/"))).toMatchObject({ status: 200, body: "abc" });
    expect(up.connections()).toBe(1);
  });

  it("reads a body delimited by close to its end and does not reuse that connection", async () => {
    const up = await upstream((_r, sock) => sock.end("HTTP/1.1 200 OK\r\n\r\nuntil close"));
    servers.push(up.server);
    const pool = up.pool();
    expect(await call(pool, head("GET", "/"))).toMatchObject({ status: 200, body: "until close" });
    expect(await call(pool, head("GET", "/"))).toMatchObject({ status: 200, body: "until close" });
    expect(up.connections()).toBe(2);
  });

  it("opens a new connection after `connection: close` and after maxRequestsPerConnection", async () => {
    const up = await upstream((r, sock) =>
      sock.write(`HTTP/1.1 200 OK\r\ncontent-length: 1\r\n${r.includes("/bye") ? "connection: close\r\n" : ""}\r\nx`),
    );
    servers.push(up.server);
    const pool = up.pool({ maxRequestsPerConnection: 2 });
    for (const p of ["/bye", "/a", "/b", "/c"]) expect(await call(pool, head("GET", p))).toMatchObject({ status: 200 });
    // /bye closes the first; /a and /b share the second (its limit); /c opens a third.
    expect(up.connections()).toBe(3);
  });

  it("fails an exchange whose connection breaks before the answer (reset) or that gets garbage, and never reuses it", async () => {
    const up = await upstream((r, sock) => {
      if (r.includes("/drop")) sock.destroy();
      else if (r.includes("/garbage")) sock.write("SMTP ready\r\n\r\n");
      else sock.write("HTTP/1.1 204 No Content\r\n\r\n");
    });
    servers.push(up.server);
    const pool = up.pool();
    expect(await call(pool, head("GET", "/drop"))).toMatchObject({ failure: "reset" });
    expect(await call(pool, head("GET", "/garbage"))).toMatchObject({
      failure: "reset",
      message: expect.stringMatching(/bad response head/),
    });
    expect(await call(pool, head("GET", "/fine"))).toMatchObject({ status: 204, body: "" });
    expect(up.connections()).toBe(3);
  });

  it("sends an idempotent request again on a fresh connection when a kept-alive one closes before answering it", async () => {
    // The upstream's idle-timeout race: each connection answers its first request, then closes
    // on the next one without a byte of answer.
    const served = new WeakMap<Socket, number>();
    const up = await upstream((r, sock) => {
      const n = (served.get(sock) ?? 0) + 1;
      served.set(sock, n);
      if (n > 1) sock.destroy();
      else sock.write(`HTTP/1.1 200 OK\r\ncontent-length: ${r.split(" ")[1]?.length ?? 0}\r\n\r\n${r.split(" ")[1]}`);
    });
    servers.push(up.server);
    const pool = up.pool();
    expect(await call(pool, head("GET", "/one"))).toMatchObject({ status: 200, body: "/one" });
    // Sent on the kept-alive connection, lost there, answered on a new one.
    expect(await call(pool, head("GET", "/two"))).toMatchObject({ status: 200, body: "/two" });
    expect(await call(pool, head("DELETE", "/three"))).toMatchObject({ status: 200, body: "/three" });
    expect(up.requests.map((r) => r.split(" ").slice(0, 2).join(" "))).toEqual([
      "GET /one",
      "GET /two",
      "GET /two",
      "DELETE /three",
      "DELETE /three",
    ]);
    expect(up.connections()).toBe(3);
    // Never repeated: a method that is not idempotent, and a request with a body.
    expect(await call(pool, head("POST", "/four", { "content-length": "0" }))).toMatchObject({ failure: "reset" });
    expect(await call(pool, head("POST", "/five"))).toMatchObject({ status: 200 });
    expect(await call(pool, head("PUT", "/six"), ["data"])).toMatchObject({ failure: "reset" });
    expect(up.requests.filter((r) => r.startsWith("POST /four"))).toHaveLength(1);
    expect(up.requests.filter((r) => r.startsWith("PUT /six"))).toHaveLength(1);
  });

  it("does not send a request again when its connection was fresh, or when some answer had arrived", async () => {
    const up = await upstream((r, sock) => {
      if (r.includes("/drop")) sock.destroy();
      else if (r.includes("/half")) sock.end("HTTP/1.1 200 OK\r\ncontent-le");
      else sock.write("HTTP/1.1 204 No Content\r\n\r\n");
    });
    servers.push(up.server);
    const pool = up.pool();
    expect(await call(pool, head("GET", "/drop"))).toMatchObject({ failure: "reset" });
    expect(await call(pool, head("GET", "/fine"))).toMatchObject({ status: 204 });
    expect(await call(pool, head("GET", "/half"))).toMatchObject({ failure: "reset" });
    expect(up.requests.filter((r) => r.startsWith("GET /drop"))).toHaveLength(1);
    expect(up.requests.filter((r) => r.startsWith("GET /half"))).toHaveLength(1);
  });

  it("says connect-failure when no connection can be opened, and refuses fields that would break the request", async () => {
    const dead = new H1Pool(() => Promise.reject(new Error("no route")), {});
    expect(await call(dead, head("GET", "/"))).toMatchObject({ failure: "connect-failure", message: "no route" });
    const up = await upstream((_r, sock) => sock.write("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
    servers.push(up.server);
    expect(await call(up.pool(), head("GET", "/", { "x-a": "1\r\nx-smuggled: 1" }))).toMatchObject({ failure: "connect-failure" });
    expect(up.requests).toHaveLength(0);
  });

  it("skips interim 1xx answers only: an unasked 101 or a status outside 100-599 fails the exchange", async () => {
    const up = await upstream((r, sock) => {
      const ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
      if (r.includes("/switch")) sock.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n${ok}`);
      else if (r.includes("/zero")) sock.write(`HTTP/1.1 000 X\r\n\r\n${ok}`);
      else sock.write(`HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n${ok}`);
    });
    servers.push(up.server);
    const pool = up.pool();
    expect(await call(pool, head("GET", "/hints"))).toMatchObject({ status: 200, body: "ok" });
    expect(await call(pool, head("GET", "/switch"))).toMatchObject({
      failure: "reset",
      message: expect.stringMatching(/switched protocols \(101\)/),
    });
    expect(await call(pool, head("GET", "/zero"))).toMatchObject({
      failure: "reset",
      message: expect.stringMatching(/bad response head: invalid status code 000/),
    });
    expect(await call(pool, head("GET", "/hints"))).toMatchObject({ status: 200, body: "ok" });
    // The connections that carried the bad answers were dropped, never reused.
    expect(up.connections()).toBe(3);
  });

  it("hands over response fields as sent, a repeated Content-Length as its one value", async () => {
    const up = await upstream((_r, sock) =>
      sock.write("HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\nconstructor: y\r\n__proto__: x\r\n\r\nok"),
    );
    servers.push(up.server);
    const r = await call(up.pool(), head("GET", "/"));
    expect(r).toMatchObject({ status: 200, body: "ok" });
    expect(Object.entries(r.headers ?? {})).toEqual([
      ["content-length", "2"],
      ["constructor", "y"],
      ["__proto__", "x"],
    ]);
  });

  it("refuses a request line or fields that would not be written as given", async () => {
    const up = await upstream((_r, sock) => sock.write("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
    servers.push(up.server);
    const pool = up.pool();
    for (const h of [
      head("GET", "/a b"),
      head("GET", "/a\r\nx: 1"),
      head("GET /x HTTP/1.1\r\n", "/"),
      head("GET", "/", { "x-a": "\u010d\u010ax-smuggled: 1" }),
      head("GET", "/", { "x-a": "a\x01" }),
      { ...head("GET", "/"), authority: "web\u010d\u010ax: 1" },
    ]) {
      expect(await call(pool, h), JSON.stringify(h)).toMatchObject({
        failure: "connect-failure",
        message: expect.stringMatching(/invalid/),
      });
    }
    expect(up.requests).toHaveLength(0);
  });

  it("hands a body that came with its head over whole, and streams one that did not", async () => {
    const up = await upstream((r, sock) => {
      if (r.includes("/small")) sock.write("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
      else {
        sock.write("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello");
        setTimeout(() => sock.write("world"), 20);
      }
    });
    servers.push(up.server);
    const pool = up.pool();
    const small = pool.send(head("GET", "/small"));
    small.body.end();
    const a = await small.response;
    expect(a.ok && a.response.whole?.map(String)).toEqual(["hello"]);
    // Asked for anyway, the body is a stream of the same bytes.
    expect(a.ok && (await text(a.response.body))).toBe("hello");
    const big = pool.send(head("GET", "/big"));
    big.body.end();
    const b = await big.response;
    expect(b.ok && b.response.whole).toBeUndefined();
    expect(b.ok && (await text(b.response.body))).toBe("helloworld");
    expect(up.connections()).toBe(1);
  });

  it("abandoning a response mid-body drops its connection; the next request gets a fresh one", async () => {
    const up = await upstream((r, sock) => {
      if (r.includes("/slow")) sock.write("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial");
      else sock.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    });
    servers.push(up.server);
    const pool = up.pool();
    const ex = pool.send(head("GET", "/slow"));
    ex.body.end();
    const r = await ex.response;
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    await once(r.response.body, "data");
    const failed = new Promise<Error>((resolve) => r.response.body.once("error", resolve));
    ex.abort();
    expect((await failed).message).toBe("request abandoned");
    expect(await call(pool, head("GET", "/next"))).toMatchObject({ status: 200, body: "ok" });
    expect(up.connections()).toBe(2);
    expect(pool.size).toBe(1);
  });
});
