import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  BodyDecoder,
  type HeadError,
  isHeadError,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  responseFraming,
  wantsClose,
} from "../../agent/proxy/l7/h1-codec.js";

const req = (s: string) => parseRequestHead(Buffer.from(s, "latin1"));

function head(s: string): RequestHead {
  const r = req(s);
  if (r === "incomplete" || isHeadError(r)) throw new Error(`not parsed: ${JSON.stringify(r)}`);
  return r.head;
}

function error(s: string): HeadError {
  const r = req(s);
  if (r === "incomplete" || !isHeadError(r)) throw new Error(`parsed: ${JSON.stringify(r)}`);
  return r;
}

describe("HTTP/1.1 request heads", () => {
  it("parses the request line and fields, names lower-cased, repeats joined as Node joins them", () => {
    const raw =
      "GET /a?b=1 HTTP/1.1\r\nHost: web\r\nX-A: 1\r\nx-a: 2\r\nCookie: a=1\r\nCookie: b=2\r\nSet-Cookie: s=1\r\nSet-Cookie: t=2\r\n\r\nrest";
    const r = req(raw);
    expect(r).not.toBe("incomplete");
    if (r === "incomplete" || isHeadError(r)) return;
    expect(r.used).toBe(raw.length - 4);
    expect(r.head).toMatchObject({ method: "GET", target: "/a?b=1", minor: 1, framing: { kind: "none" } });
    expect(r.head.headers).toEqual({ host: "web", "x-a": "1, 2", cookie: "a=1; b=2", "set-cookie": ["s=1", "t=2"] });
  });

  it("waits for the end of the head, skips empty lines before it, and bounds its size", () => {
    expect(req("GET / HTTP/1.1\r\nhost: a\r\n")).toBe("incomplete");
    expect(head("\r\n\r\nGET / HTTP/1.1\r\nhost: a\r\n\r\n").method).toBe("GET");
    expect(error(`GET / HTTP/1.1\r\nx: ${"a".repeat(17_000)}`).status).toBe(431);
    expect(error(`GET / HTTP/1.1\r\nx: ${"a".repeat(17_000)}\r\n\r\n`).status).toBe(431);
  });

  it("refuses what cannot be framed or read one way only (request smuggling), naming the problem", () => {
    const cases: [string, number, RegExp][] = [
      ["POST / HTTP/1.1\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n", 400, /both Transfer-Encoding and Content-Length/],
      ["POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n", 400, /unsupported Transfer-Encoding/],
      ["POST / HTTP/1.1\r\ntransfer-encoding: chunked, gzip\r\n\r\n", 400, /unsupported Transfer-Encoding/],
      ["POST / HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n", 400, /invalid Content-Length/],
      ["POST / HTTP/1.1\r\ncontent-length: -1\r\n\r\n", 400, /invalid Content-Length/],
      ["POST / HTTP/1.1\r\ncontent-length: 0x10\r\n\r\n", 400, /invalid Content-Length/],
      ["GET / HTTP/1.1\r\nx: a\r\n b\r\n\r\n", 400, /obs-fold/],
      ["GET / HTTP/1.1\nhost: a\r\n\r\n", 400, /bare LF/],
      ["GET / HTTP/1.1\r\nbad name: a\r\n\r\n", 400, /invalid header name/],
      ["GET / HTTP/1.1\r\n: a\r\n\r\n", 400, /without a name/],
      ["GET / HTTP/1.1\r\nx: a\0b\r\n\r\n", 400, /invalid character/],
      ["G(T / HTTP/1.1\r\n\r\n", 400, /invalid method/],
      ["GET  / HTTP/1.1\r\n\r\n", 400, /request target|malformed/],
      ["GET / HTTP/2.0\r\n\r\n", 505, /unsupported version/],
      ["GET /\r\n\r\n", 400, /malformed request line/],
    ];
    for (const [raw, status, why] of cases) {
      const e = error(raw);
      expect(e.status, raw).toBe(status);
      expect(e.error, raw).toMatch(why);
    }
  });

  it("frames bodies by Content-Length (same value repeated is one length) or chunked coding", () => {
    expect(head("POST / HTTP/1.1\r\ncontent-length: 5, 5\r\n\r\n").framing).toEqual({ kind: "length", length: 5 });
    expect(head("POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n").framing).toEqual({ kind: "none" });
    expect(head("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").framing).toEqual({ kind: "chunked" });
    expect(head("GET / HTTP/1.0\r\n\r\n").minor).toBe(0);
  });
});

describe("HTTP/1.1 response heads", () => {
  const res = (s: string) => {
    const r = parseResponseHead(Buffer.from(s, "latin1"));
    if (r === "incomplete" || isHeadError(r)) throw new Error(JSON.stringify(r));
    return r.head;
  };

  it("parses the status and frames the body per RFC 9112 §6.3", () => {
    const h = res("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n");
    expect(h.status).toBe(200);
    expect(responseFraming("GET", h)).toEqual({ kind: "length", length: 3 });
    expect(responseFraming("HEAD", h)).toEqual({ kind: "none" });
    expect(responseFraming("GET", res("HTTP/1.1 204 No Content\r\n\r\n"))).toEqual({ kind: "none" });
    expect(responseFraming("GET", res("HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n"))).toEqual({ kind: "none" });
    expect(responseFraming("GET", res("HTTP/1.1 200 OK\r\n\r\n"))).toEqual({ kind: "close" });
    expect(responseFraming("GET", res("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"))).toEqual({ kind: "chunked" });
    expect(responseFraming("GET", res("HTTP/1.1 200 OK\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n"))).toMatch(/both/);
    expect(res("HTTP/1.1 200\r\n\r\n").status).toBe(200);
  });

  it("refuses a malformed status line", () => {
    const r = parseResponseHead(Buffer.from("HTTP/1.1 2000 OK\r\n\r\n"));
    expect(r !== "incomplete" && isHeadError(r) && r.error).toMatch(/malformed status line/);
  });

  it("says when a connection must close after a message", () => {
    expect(wantsClose({}, 1)).toBe(false);
    expect(wantsClose({}, 0)).toBe(true);
    expect(wantsClose({ connection: "keep-alive" }, 0)).toBe(false);
    expect(wantsClose({ connection: "Keep-Alive, Close" }, 1)).toBe(true);
    expect(wantsClose({ connection: "closed" }, 1)).toBe(false);
  });
});

describe("body decoding", () => {
  function decodeAll(
    framing: ConstructorParameters<typeof BodyDecoder>[0],
    parts: Buffer[],
  ): { data: string; used: number; d: BodyDecoder } {
    const d = new BodyDecoder(framing);
    let data = "";
    let used = 0;
    for (const p of parts) {
      used += d.feed(p, 0, (c) => {
        data += c.toString("latin1");
      });
      if (d.done || d.error) break;
    }
    return { data, used, d };
  }

  it("stops a length-framed body at its length and leaves the rest", () => {
    const { data, used, d } = decodeAll({ kind: "length", length: 5 }, [Buffer.from("hel"), Buffer.from("loGET /")]);
    expect(data).toBe("hello");
    expect(d.done).toBe(true);
    expect(used).toBe(5);
  });

  it("decodes chunked coding split anywhere, with extensions and trailers", () => {
    const wire = "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: 42\r\ngrpc-status: 0\r\n\r\n";
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: wire.length - 1 }), { maxLength: 8 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const parts: Buffer[] = [];
        let at = 0;
        for (const p of [...points, wire.length]) {
          parts.push(Buffer.from(wire.slice(at, p), "latin1"));
          at = p;
        }
        const { data, d, used } = decodeAll({ kind: "chunked" }, parts);
        expect(d.error).toBeUndefined();
        expect(d.done).toBe(true);
        expect(data).toBe("hello world");
        expect(used).toBe(wire.length);
        expect(d.trailers).toEqual({ "x-checksum": "42", "grpc-status": "0" });
      }),
      { numRuns: 300 },
    );
  });

  it("stops at malformed chunked coding", () => {
    for (const [wire, why] of [
      ["zz\r\nhello\r\n", /invalid chunk size/],
      ["5\r\nhello!!\r\n", /longer than its size/],
      ["5\nhello\r\n", /bare LF/],
      [`${"1".repeat(20)}\r\n`, /invalid chunk size/],
      [`5;${"x".repeat(5000)}`, /too long/],
    ] as const) {
      const { d } = decodeAll({ kind: "chunked" }, [Buffer.from(wire, "latin1")]);
      expect(d.error, wire).toMatch(why);
      expect(d.done).toBe(false);
    }
  });

  it("ends a close-delimited body only when the connection closes", () => {
    const d = new BodyDecoder({ kind: "close" });
    let n = 0;
    d.feed(Buffer.from("abc"), 0, (c) => {
      n += c.length;
    });
    expect(d.done).toBe(false);
    expect(d.closed()).toBe(true);
    expect(d.done).toBe(true);
    expect(n).toBe(3);
    expect(new BodyDecoder({ kind: "length", length: 1 }).closed()).toBe(false);
  });
});
