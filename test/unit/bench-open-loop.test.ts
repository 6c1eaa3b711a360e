/**
 * The open-loop generator of bench/fixed-rate.ts: it frames responses exactly, and — what makes it
 * open loop — a request queued behind a stalled one is timed from when it was due, not from when
 * a connection was free to send it.
 */
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OpenLoopResult, responseLength, responseStatus, summarize } from "../../bench/lib/open-loop-core.js";

const GENERATOR = join(import.meta.dirname, "..", "..", "dist", "bench", "lib", "open-loop.js");

function generate(url: string, rps: number, conns: number, seconds: number): Promise<OpenLoopResult> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [GENERATOR, url, String(rps), String(conns), String(seconds), "0"]);
    let out = "";
    let err = "";
    c.stdout.on("data", (d) => {
      out += d;
    });
    c.stderr.on("data", (d) => {
      err += d;
    });
    c.on("error", reject);
    c.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out.trim())) : reject(new Error(`exit ${code}: ${err}`))));
  });
}

describe("open-loop generator: framing", () => {
  const res = (head: string, body = "") => Buffer.from(`${head}\r\n\r\n${body}`);
  it("finds the end of a Content-Length response, and waits for a partial one", () => {
    const one = res("HTTP/1.1 200 OK\r\nContent-Length: 5", "hello");
    expect(responseLength(one)).toBe(one.length);
    expect(responseLength(Buffer.concat([one, Buffer.from("HTTP/1.1 200")]))).toBe(one.length);
    expect(responseLength(one.subarray(0, one.length - 1))).toBe(0);
    expect(responseLength(Buffer.from("HTTP/1.1 200 OK\r\nContent-Le"))).toBe(0);
    expect(responseStatus(res("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0"))).toBe(503);
  });
  it("refuses what it cannot frame rather than mis-timing it", () => {
    expect(() => responseLength(res("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"))).toThrow(/chunked/);
    expect(() => responseLength(res("HTTP/1.1 200 OK"))).toThrow(/without Content-Length/);
    expect(() => responseLength(res("SSH-2.0-x"))).toThrow(/not an HTTP/);
  });
  it("summarizes percentiles and the achieved rate", () => {
    const s = summarize([100, 200, 300, 400, 500], 10, 0.5, 1, 2);
    expect(s).toMatchObject({ rps: 10, achievedRps: 10, completed: 5, errors: 1, p50: 300, max: 500, maxBacklog: 2 });
    expect(() => summarize([], 10, 1, 0, 0)).toThrow(/no request completed/);
  });
});

describe("open-loop generator: timing from when a request was due", () => {
  let server: Server;
  let url = "";
  let stallNext = false;
  beforeAll(async () => {
    server = createServer((req, res) => {
      const answer = () => res.writeHead(200, { "content-length": "2" }).end("ok");
      if (req.url === "/stall" && stallNext) {
        stallNext = false;
        setTimeout(answer, 400);
      } else answer();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((r) => server.close(r)));

  it("sends the asked rate and answers every request", async () => {
    const r = await generate(`${url}/ok`, 100, 2, 1);
    expect(r.errors).toBe(0);
    expect(r.completed).toBe(100);
  });

  it("counts the requests queued behind a 400 ms stall as late (one connection at 50 rps)", async () => {
    stallNext = true;
    const r = await generate(`${url}/stall`, 50, 1, 1);
    expect(r.errors).toBe(0);
    expect(r.completed).toBe(50);
    // The stalled request and the ~20 due during the stall wait behind it: a closed-loop tool
    // would time those from when they were sent and report them as fast.
    expect(r.maxBacklog).toBeGreaterThanOrEqual(10);
    expect(r.max).toBeGreaterThanOrEqual(400_000);
    expect(r.p90).toBeGreaterThanOrEqual(200_000);
  });
});
