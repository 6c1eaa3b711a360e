import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  assertWritable,
  BodyDecoder,
  type HeadError,
  isHeadError,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  type ResponseHead,
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

  it("lower-cases every name, in any spelling, whether or not it is one of the common ones", () => {
    const h = head("GET / HTTP/1.1\r\nHOST: web\r\nContent-Type: a\r\nCONTENT-LENGTH: 0\r\nX-Custom-Thing: b\r\nuser-agent: c\r\n\r\n");
    expect(h.headers).toEqual({ host: "web", "content-type": "a", "content-length": "0", "x-custom-thing": "b", "user-agent": "c" });
  });

  it("refuses a field line without a colon on it, even when a later line has one", () => {
    expect(error("GET / HTTP/1.1\r\nHost: web\r\nno-colon-here\r\nX-A: 1\r\n\r\n").error).toMatch(
      /header line without a name: "no-colon-here"/,
    );
    expect(error("GET / HTTP/1.1\r\n: v\r\n\r\n").error).toMatch(/without a name/);
  });

  it("waits for the end of the head, skips empty lines before it, and bounds its size", () => {
    expect(req("GET / HTTP/1.1\r\nhost: a\r\n")).toBe("incomplete");
    expect(head("\r\n\r\nGET / HTTP/1.1\r\nhost: a\r\n\r\n").method).toBe("GET");
    expect(error(`GET / HTTP/1.1\r\nx: ${"a".repeat(17_000)}`).status).toBe(431);
    expect(error(`GET / HTTP/1.1\r\nx: ${"a".repeat(17_000)}\r\n\r\n`).status).toBe(431);
  });

  it("counts empty lines before the request line against the head limit (431), whatever the bytes' split", () => {
    expect(head(`${"\r\n".repeat(100)}GET / HTTP/1.1\r\nhost: a\r\n\r\n`).method).toBe("GET");
    // An endless stream of CRLFs is refused once it passes the limit, not held until the timeout.
    const crlfs = error("\r\n".repeat(9000));
    expect(crlfs.status).toBe(431);
    expect(crlfs.error).toMatch(/larger than 16384 bytes \(with 9000 empty lines before it\)/);
    expect(error(`${"\r\n".repeat(8200)}GET / HTTP/1.1\r\nhost: a\r\n\r\n`).status).toBe(431);
    // A head of exactly the limit: every prefix of it is incomplete, the whole of it parses.
    const max = 64;
    const line = "GET / HTTP/1.1\r\nx: ";
    const exact = Buffer.from(`${line}${"a".repeat(max - line.length)}\r\n\r\n`, "latin1");
    for (let n = 1; n < exact.length; n++) expect(parseRequestHead(exact.subarray(0, n), max), String(n)).toBe("incomplete");
    const whole = parseRequestHead(exact, max);
    expect(whole !== "incomplete" && !isHeadError(whole)).toBe(true);
    const over = Buffer.from(`${line}${"a".repeat(max - line.length + 1)}\r\n\r\n`, "latin1");
    expect((parseRequestHead(over, max) as HeadError).status).toBe(431);
  });

  it("trims only SP and HTAB around field values and refuses control characters in them", () => {
    const cases: [string, RegExp][] = [
      ["POST / HTTP/1.1\r\nTransfer-Encoding: \x0bchunked\r\n\r\n", /invalid character in header Transfer-Encoding/],
      ["POST / HTTP/1.1\r\nTransfer-Encoding: chunked\x0c\r\n\r\n", /invalid character in header Transfer-Encoding/],
      ["POST / HTTP/1.1\r\nTransfer-Encoding: chunked\xa0\r\n\r\n", /invalid Transfer-Encoding/],
      ["POST / HTTP/1.1\r\nTransfer-Encoding: \xa0chunked\r\n\r\n", /invalid Transfer-Encoding/],
      ["POST / HTTP/1.1\r\nContent-Length: \x0b5\r\n\r\n", /invalid character in header Content-Length/],
      ["POST / HTTP/1.1\r\nContent-Length: 5\xa0\r\n\r\n", /invalid Content-Length/],
      ["POST / HTTP/1.1\r\nContent-Length: \xa05\r\n\r\n", /invalid Content-Length/],
      ["GET / HTTP/1.1\r\nx: a\x01b\r\n\r\n", /invalid character in header x/],
      ["GET / HTTP/1.1\r\nx: a\x7f\r\n\r\n", /invalid character in header x/],
      ["GET / HTTP/1.1\r\nx: a\x1bb\r\n\r\n", /invalid character in header x/],
      ["GET / HTTP/1.1\r\nx: a\rb\r\n\r\n", /invalid character in header x/],
    ];
    for (const [raw, why] of cases) {
      const e = error(raw);
      expect(e.status, JSON.stringify(raw)).toBe(400);
      expect(e.error, JSON.stringify(raw)).toMatch(why);
    }
    const h = head("POST / HTTP/1.1\r\nx: \t a\tb \t\r\ny: caf\xe9\xa0\r\nContent-Length:\t5 \r\nz:\r\n\r\n");
    expect(h.headers).toEqual({ x: "a\tb", y: "caf\xe9\xa0", "content-length": "5", z: "" });
    expect(h.framing).toEqual({ kind: "length", length: 5 });
    expect(head("POST / HTTP/1.1\r\nTransfer-Encoding: ,\tchunked ,\r\n\r\n").framing).toEqual({ kind: "chunked" });
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
    expect(head("POST / HTTP/1.1\r\ncontent-length: 0, 0\r\n\r\n").framing).toEqual({ kind: "none" });
    expect(head("POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n").framing).toEqual({ kind: "none" });
    expect(head("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").framing).toEqual({ kind: "chunked" });
    expect(head("GET / HTTP/1.0\r\n\r\n").minor).toBe(0);
  });

  it("forwards a repeated Content-Length as the one length it was framed by (RFC 9110 §8.6)", () => {
    for (const [fields, value] of [
      ["content-length: 5, 5\r\n", "5"],
      ["content-length: 5\r\nContent-Length: 5\r\n", "5"],
      ["content-length: 5 ,\t5,5\r\n", "5"],
      ["content-length: 007\r\n", "7"],
      ["content-length: 0, 0\r\n", "0"],
    ]) {
      expect(head(`POST / HTTP/1.1\r\n${fields}\r\n`).headers["content-length"], fields).toBe(value);
    }
  });

  it("reads every field name as sent, `__proto__` and Object.prototype's names included", () => {
    const h = head("GET / HTTP/1.1\r\n__proto__: x\r\nconstructor: y\r\ntoString: z\r\nhasOwnProperty: w\r\n\r\n");
    expect(Object.getPrototypeOf(h.headers)).toBeNull();
    expect(Object.entries(h.headers)).toEqual([
      ["__proto__", "x"],
      ["constructor", "y"],
      ["tostring", "z"],
      ["hasownproperty", "w"],
    ]);
    expect(head("GET / HTTP/1.1\r\n\r\n").headers.constructor).toBeUndefined();
    expect(head("GET / HTTP/1.1\r\n\r\n").headers.toString).toBeUndefined();
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

  it("refuses status codes outside 100-599", () => {
    for (const line of ["HTTP/1.1 000 X", "HTTP/1.1 099 X", "HTTP/1.1 600 X", "HTTP/1.1 999", "HTTP/1.0 042 Y"]) {
      const r = parseResponseHead(Buffer.from(`${line}\r\ncontent-length: 0\r\n\r\n`));
      expect(r !== "incomplete" && isHeadError(r) && r, line).toEqual({
        error: expect.stringMatching(/invalid status code \d{3}/),
        status: 502,
      });
    }
    expect(res("HTTP/1.1 100 Continue\r\n\r\n").status).toBe(100);
    expect(res("HTTP/1.1 599 X\r\n\r\n").status).toBe(599);
  });

  it("checks a response's framing fields by RFC 9110 rules too", () => {
    // No trimming of VT/FF/NBSP, a coding that is not a token, a repeated length made one.
    expect(() => res("HTTP/1.1 200 OK\r\ntransfer-encoding: \x0bchunked\r\n\r\n")).toThrow(/invalid character/);
    expect(responseFraming("GET", res("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\xa0\r\n\r\n"))).toMatch(/invalid Transfer-Encoding/);
    expect(responseFraming("GET", res("HTTP/1.1 200 OK\r\ncontent-length: 5\xa0\r\n\r\n"))).toMatch(/invalid Content-Length/);
    expect(() => res("HTTP/1.1 200 OK\r\nx: \x01\r\n\r\n")).toThrow(/invalid character in header x/);
    const framed = (method: string, raw: string): [unknown, ResponseHead] => {
      const h = res(raw);
      return [responseFraming(method, h), h];
    };
    const [f, h] = framed("GET", "HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\ncontent-length: 3\r\n\r\n");
    expect(f).toEqual({ kind: "length", length: 3 });
    expect(h.headers["content-length"]).toBe("3");
    const [fh, hh] = framed("HEAD", "HTTP/1.1 200 OK\r\ncontent-length: 10, 10\r\n\r\n");
    expect(fh).toEqual({ kind: "none" });
    expect(hh.headers["content-length"]).toBe("10");
    expect(framed("GET", "HTTP/1.1 304 Not Modified\r\ncontent-length: 5, 6\r\n\r\n")[0]).toMatch(/invalid Content-Length/);
    const proto = res("HTTP/1.1 200 OK\r\nconstructor: y\r\n__proto__: x\r\n\r\n");
    expect(Object.entries(proto.headers)).toEqual([
      ["constructor", "y"],
      ["__proto__", "x"],
    ]);
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
      [" 5\r\nhello\r\n", /invalid chunk size/],
      ["5\x0b\r\nhello\r\n", /invalid chunk size/],
      ["5\xa0\r\nhello\r\n", /invalid chunk size/],
      ["+5\r\nhello\r\n", /invalid chunk size/],
      ["5;a=b\rc\r\nhello\r\n", /invalid character in chunk extension/],
      ["5;a=\x01\r\nhello\r\n", /invalid character in chunk extension/],
      ["5\r\nhello\r\n0\r\nx: \x0b1\r\n\r\n", /trailers: invalid character in header x/],
    ] as const) {
      const { d } = decodeAll({ kind: "chunked" }, [Buffer.from(wire, "latin1")]);
      expect(d.error, wire).toMatch(why);
      expect(d.done).toBe(false);
    }
  });

  it("reads a chunk size followed by BWS and extensions, and gives trailers a map without a prototype", () => {
    const { data, d } = decodeAll({ kind: "chunked" }, [
      Buffer.from('5 \t;a=b ; c="d\te"\r\nhello\r\n1\t\r\n!\r\n0\r\nconstructor: 1\r\n\r\n', "latin1"),
    ]);
    expect(d.error).toBeUndefined();
    expect(data).toBe("hello!");
    expect(d.trailers?.constructor).toBe("1");
    expect(Object.getPrototypeOf(d.trailers)).toBeNull();
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

describe("writing fields", () => {
  it("refuses what the parser would refuse, and code points latin1 would cut to a control byte", () => {
    for (const v of ["a\r\nb: 1", "a\0", "a\x01", "a\x0b", "a\x7f", "\u010d\u010ax-smuggled: 1", "\u0100"]) {
      expect(() => assertWritable({ x: v }), JSON.stringify(v)).toThrow(/invalid character in header x/);
      expect(() => assertWritable({ x: ["ok", v] }), JSON.stringify(v)).toThrow(/invalid character in header x/);
    }
    expect(() => assertWritable({ x: "a\tb c\xe9", y: 5, z: undefined })).not.toThrow();
  });
});
