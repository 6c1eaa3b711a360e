import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import type { Downstream } from "../../agent/proxy/l7/downstream.js";
import { H1Server } from "../../agent/proxy/l7/h1-server.js";
import { waitFor } from "../helpers/wait.js";

interface Seen {
  method: string;
  path: string;
  authority: string;
  headers: Record<string, string | string[]>;
  body: string;
}

/** A server whose handler answers with what it saw; `answer` overrides the reply. */
async function serve(answer?: (down: Downstream, seen: Seen) => void) {
  const seen: Seen[] = [];
  const handedOver: string[] = [];
  const limits: string[] = [];
  const h1 = new H1Server<string>(
    {
      handle: async (_scope, down) => {
        let body = "";
        down.body.on("data", (c: Buffer) => {
          body += c.toString();
        });
        await once(down.body, "end");
        const s = { method: down.method, path: down.path, authority: down.authority, headers: down.headers, body };
        seen.push(s);
        if (answer) answer(down, s);
        else down.reply(200, `${s.method} ${s.path} ${body}`);
      },
      crashed: () => undefined,
      handOver: (sock: Duplex) => {
        let got = "";
        sock.on("data", (c: Buffer) => {
          got += c.toString();
          handedOver.push(got);
          sock.end("HTTP/1.1 101 Switching Protocols\r\n\r\n");
        });
      },
      limitHit: (limit) => limits.push(limit),
    },
    { headersTimeoutMs: 300 },
  );
  const server: Server = createServer((sock) => h1.adopt(sock, "scope"));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  return { h1, server, port, seen, handedOver, limits };
}

/** Sends raw bytes and collects everything until the server closes (or `until` matches). */
function exchange(port: number, raw: string | string[], until?: (got: string) => boolean): Promise<{ got: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const sock: Socket = connect(port, "127.0.0.1");
    let got = "";
    const parts = Array.isArray(raw) ? raw : [raw];
    sock.once("connect", async () => {
      for (const p of parts) {
        sock.write(p);
        await new Promise((r) => setTimeout(r, 5));
      }
    });
    sock.on("data", (c: Buffer) => {
      got += c.toString("latin1");
      if (until?.(got)) {
        sock.destroy();
        resolve({ got, closed: false });
      }
    });
    sock.on("close", () => resolve({ got, closed: true }));
    sock.on("error", reject);
  });
}

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

describe("weft's HTTP/1.1 server", () => {
  it("answers pipelined requests in order on one connection, bodies by length and chunked", async () => {
    const s = await serve();
    servers.push(s.server);
    const raw =
      "GET /one HTTP/1.1\r\nhost: a\r\n\r\n" +
      "POST /two HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello" +
      "POST /three HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    const { got } = await exchange(s.port, raw, (g) => g.includes("POST /three abcde"));
    const bodies = [...got.matchAll(/\r\n\r\n([^\r]*?)(?=HTTP\/1\.1|$)/g)].map((m) => m[1]);
    expect(bodies).toEqual(["GET /one ", "POST /two hello", "POST /three abcde"]);
    expect(s.seen.map((x) => x.authority)).toEqual(["a", "a", "a"]);
    // Hop-by-hop fields stay on their hop.
    expect(s.seen[2]?.headers["transfer-encoding"]).toBeUndefined();
  });

  it("takes heads and bodies split across many writes", async () => {
    const s = await serve();
    servers.push(s.server);
    const parts = ["PO", "ST /x HTTP/1.1\r\nho", "st: b\r\ncontent-le", "ngth: 3\r\n\r", "\nab", "c"];
    const { got } = await exchange(s.port, parts, (g) => g.endsWith("POST /x abc"));
    expect(got).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });

  it("answers a head it cannot read with its status and reason, then closes; the handler never runs", async () => {
    const s = await serve();
    servers.push(s.server);
    const cases: [string, RegExp][] = [
      [
        "POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\nabc",
        /^HTTP\/1\.1 400 Bad Request[\s\S]*both Transfer-Encoding and Content-Length/,
      ],
      ["GET / HTTP/3\r\n\r\n", /^HTTP\/1\.1 505 HTTP Version Not Supported/],
      [`GET / HTTP/1.1\r\nx: ${"a".repeat(20_000)}\r\n\r\n`, /^HTTP\/1\.1 431 /],
      ["GET / HTTP/1.1\r\nhost: a\r\n", /^HTTP\/1\.1 408 [\s\S]*not complete in time/],
    ];
    for (const [raw, want] of cases) {
      const r = await exchange(s.port, raw);
      expect(r.got, raw.slice(0, 40)).toMatch(want);
      expect(r.got).toMatch(/connection: close/);
      expect(r.closed).toBe(true);
    }
    expect(s.seen).toHaveLength(0);
    // The fixed limits are counted (weft_limit_hits_total); malformed requests are not limits.
    expect(s.limits).toEqual(["http1_head_size", "http1_head_timeout"]);
  });

  it("hands the handler the canonical path, and the absolute-form target's host as the authority", async () => {
    const s = await serve();
    servers.push(s.server);
    const raw =
      "GET /public/../admin HTTP/1.1\r\nhost: a\r\n\r\n" +
      "GET //a/%2e%2E/%61dmin/./x?q=/../y HTTP/1.1\r\nhost: a\r\n\r\n" +
      "GET http://b:8080/p\\..\\q HTTP/1.1\r\nhost: a\r\n\r\n";
    await exchange(s.port, raw, (g) => g.split("HTTP/1.1 200").length === 4);
    expect(s.seen.map((x) => x.path)).toEqual(["/admin", "/admin/x?q=/../y", "/q"]);
    expect(s.seen.map((x) => x.authority)).toEqual(["a", "a", "b:8080"]);
  });

  it("answers 400 to a target it cannot make canonical or a second Host, and the handler never sees them", async () => {
    const s = await serve();
    servers.push(s.server);
    for (const [target, why] of [
      ["/a%zzb", /bad percent-encoding "%zz"/],
      ["/a%00b", /%00 in the path/],
      ["/a#frag", /fragment/],
      ["relative/path", /is not a path/],
    ] as const) {
      const r = await exchange(s.port, `GET ${target} HTTP/1.1\r\nhost: a\r\n\r\n`);
      expect(r.got, target).toMatch(/^HTTP\/1\.1 400 Bad Request/);
      expect(r.got, target).toMatch(why);
      expect(r.closed).toBe(true);
    }
    const lower = await exchange(s.port, "get /x HTTP/1.1\r\nhost: a\r\n\r\n");
    expect(lower.got).toMatch(/^HTTP\/1\.1 400 [\s\S]*not upper-case/);
    const twoHosts = await exchange(s.port, "GET /x HTTP/1.1\r\nhost: a\r\nhost: admin\r\n\r\n");
    expect(twoHosts.got).toMatch(/^HTTP\/1\.1 400 [\s\S]*more than one Host/);
    expect(s.seen).toHaveLength(0);
  });

  it("routes on one spelling of the Host (lower case, no trailing dot) and answers 400 to a missing or unusable one", async () => {
    const s = await serve();
    servers.push(s.server);
    await exchange(
      s.port,
      "GET /a HTTP/1.1\r\nhost: ADMIN.shop.svc.cluster.local.\r\n\r\nGET /b HTTP/1.1\r\nhost: Web:8080\r\n\r\nGET /c HTTP/1.1\r\nhost: [::1]:80\r\n\r\n",
      (g) => g.split("HTTP/1.1 200").length === 4,
    );
    expect(s.seen.map((x) => x.authority)).toEqual(["admin.shop.svc.cluster.local", "web:8080", "[::1]:80"]);
    for (const [head, why] of [
      ["", /missing Host header/],
      ["host: \r\n", /missing Host header/],
      ["host: u@admin.shop\r\n", /is not a host\[:port\]/],
      ["host: admin shop\r\n", /is not a host\[:port\]/],
      ["host: admin/x\r\n", /is not a host\[:port\]/],
      ["host: a:99999\r\n", /above 65535/],
      ["host: a:8x\r\n", /is not a host\[:port\]/],
      ["host: .\r\n", /is not a host\[:port\]/],
    ] as const) {
      const r = await exchange(s.port, `GET /x HTTP/1.1\r\n${head}\r\n`);
      expect(r.got, head).toMatch(/^HTTP\/1\.1 400 Bad Request/);
      expect(r.got, head).toMatch(why);
    }
    expect(s.seen).toHaveLength(3);
  });

  it("passes response trailers on without the fields RFC 9110 keeps out of trailers", async () => {
    const s = await serve((down) => {
      const w = down.start(200, { "content-type": "text/plain" });
      w.write(Buffer.from("abc"));
      w.end({
        "grpc-status": "0",
        "x-checksum": "1",
        "content-length": "99",
        "transfer-encoding": "chunked",
        "set-cookie": ["s=1"],
        location: "http://evil/",
      });
    });
    servers.push(s.server);
    const r = await exchange(s.port, "GET / HTTP/1.1\r\nhost: a\r\n\r\n", (g) =>
      g.endsWith("\r\n0\r\ngrpc-status: 0\r\nx-checksum: 1\r\n\r\n"),
    );
    expect(r.got).toMatch(/\r\n3\r\nabc\r\n0\r\ngrpc-status: 0\r\nx-checksum: 1\r\n\r\n$/);
  });

  it("hands Upgrade, CONNECT, HTTP/1.0 and Expect requests to node:http with every byte already read", async () => {
    const s = await serve();
    servers.push(s.server);
    const raws = [
      "GET /ws HTTP/1.1\r\nhost: a\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\nEXTRA",
      "CONNECT a:443 HTTP/1.1\r\nhost: a:443\r\n\r\n",
      "GET / HTTP/1.0\r\n\r\n",
      "PUT / HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 1\r\n\r\n",
    ];
    for (const raw of raws) {
      const r = await exchange(s.port, raw);
      expect(r.got).toMatch(/^HTTP\/1\.1 101/);
    }
    await waitFor("every request handed over", async () => raws.every((raw) => s.handedOver.some((h) => h.startsWith(raw))), 5000);
    expect(s.seen).toHaveLength(0);
  });

  it("a request after a served one is handed over too, from its own first byte", async () => {
    const s = await serve();
    servers.push(s.server);
    const second = "GET /ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n";
    const r = await exchange(s.port, `GET /first HTTP/1.1\r\nhost: a\r\n\r\n${second}`);
    expect(r.got).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*GET \/first HTTP\/1\.1 101/);
    expect(s.handedOver[0]).toBe(second);
  });

  it("closes after a response when the client asks and when draining, and keeps the connection otherwise", async () => {
    const s = await serve((down) => {
      down.reply(200, "ok");
    });
    servers.push(s.server);
    const asked = await exchange(s.port, "GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n");
    expect(asked.got).toMatch(/connection: close\r\n/);
    expect(asked.closed).toBe(true);
    const kept = await exchange(s.port, "GET / HTTP/1.1\r\nhost: a\r\n\r\n", (g) => g.endsWith("ok"));
    expect(kept.got).not.toMatch(/connection: close/);
    s.h1.drain();
    const drained = await exchange(s.port, "GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    expect(drained.got).toMatch(/connection: close\r\n/);
    expect(drained.closed).toBe(true);
  });

  it("answers before the body has arrived: the response says close and the connection ends", async () => {
    const h1 = new H1Server<string>(
      {
        handle: async (_scope, down) => {
          down.reply(413, "too big");
        },
        crashed: () => undefined,
        handOver: () => undefined,
        limitHit: () => undefined,
      },
      { headersTimeoutMs: 1000 },
    );
    const server = createServer((sock) => h1.adopt(sock, "x"));
    servers.push(server);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const r = await exchange(
      (server.address() as { port: number }).port,
      "POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 100000\r\n\r\nabc",
    );
    expect(r.got).toMatch(/^HTTP\/1\.1 413 Content Too Large\r\n[\s\S]*connection: close/);
    expect(r.closed).toBe(true);
  });

  it("streams a response without a length as chunks with trailers, and sends no body to HEAD", async () => {
    const s = await serve((down) => {
      const w = down.start(200, { "content-type": "text/plain", "x-bad": undefined });
      w.write(Buffer.from("abc"));
      w.write(Buffer.from("de"));
      w.end({ "grpc-status": "0" });
    });
    servers.push(s.server);
    const r = await exchange(s.port, "GET / HTTP/1.1\r\nhost: a\r\n\r\n", (g) => g.endsWith("\r\n\r\n") && g.includes("grpc-status"));
    expect(r.got).toBe(
      "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\ngrpc-status: 0\r\n\r\n",
    );
    const h = await exchange(s.port, "HEAD / HTTP/1.1\r\nhost: a\r\n\r\nGET / HTTP/1.1\r\nhost: a\r\n\r\n", (g) =>
      g.endsWith("0\r\ngrpc-status: 0\r\n\r\n"),
    );
    // The HEAD answer is its head alone; the next response follows it directly.
    expect(h.got).toMatch(/^HTTP\/1\.1 200 OK\r\ncontent-type: text\/plain\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  });

  it("streams a large body of full frames intact, and the next keep-alive response after it", async () => {
    const frame = 16 * 1024;
    const frames = 64;
    const s = await serve((down, seen) => {
      if (seen.path === "/small") {
        down.reply(200, "after");
        return;
      }
      // A run of full frames in one turn, as an upstream's HTTP/2 DATA frames arrive: coalesced.
      const w = down.start(200, { "content-length": String(frame * frames) });
      for (let i = 0; i < frames; i++) w.write(Buffer.alloc(frame, 97 + (i % 26)));
      w.end();
    });
    servers.push(s.server);
    const r = await exchange(s.port, ["GET /big HTTP/1.1\r\nhost: a\r\n\r\n", "GET /small HTTP/1.1\r\nhost: a\r\n\r\n"], (g) =>
      g.endsWith("after"),
    );
    const headEnd = r.got.indexOf("\r\n\r\n") + 4;
    const body = r.got.slice(headEnd, headEnd + frame * frames);
    for (let i = 0; i < frames; i++) expect(body.slice(i * frame, (i + 1) * frame)).toBe(String.fromCharCode(97 + (i % 26)).repeat(frame));
    expect(r.got.slice(headEnd + frame * frames)).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nafter$/);
  });

  it("refuses to write a field that would break the message, and drops the connection", async () => {
    const s = await serve((down) => {
      down.start(200, { "x-injected": "a\r\nset-cookie: evil=1" }).end();
    });
    servers.push(s.server);
    const r = await exchange(s.port, "GET / HTTP/1.1\r\nhost: a\r\n\r\n");
    expect(r.got).toBe("");
    expect(r.closed).toBe(true);
  });

  it("tells the handler when the client goes away before the response", async () => {
    let gone = false;
    const s = await serve((down) => {
      down.onGone(() => {
        gone = true;
      });
    });
    servers.push(s.server);
    const sock = connect(s.port, "127.0.0.1");
    sock.write("GET /slow HTTP/1.1\r\nhost: a\r\n\r\n");
    await waitFor("request seen", async () => s.seen.some((x) => x.path === "/slow"), 5000);
    sock.destroy();
    await waitFor("handler told the client is gone", async () => gone, 5000);
  });
});
