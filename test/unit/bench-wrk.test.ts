import { describe, expect, it } from "vitest";
import { describeWrkErrors, parseWrkResult, WRK_LUA, WRK_MARKER, wrkArgs, wrkErrorCount } from "../../bench/lib/wrk.js";

// What wrk 4.1 printed on this machine with WRK_LUA (human summary, then the hook's line).
const REAL_OUTPUT = `Running 1s test @ http://127.0.0.1:18999/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   281.84us  702.26us   9.28ms   92.95%
    Req/Sec    17.61k     6.76k   31.88k    70.00%
  17514 requests in 1.00s, 19.19MB read
Requests/sec:  17508.22
Transfer/sec:     19.19MB
WEFT_WRK_RESULT {"requests":17514,"durationUs":1000330,"bytes":20123586,"errors":{"connect":0,"read":0,"write":0,"status":0,"timeout":0},"latencyUs":{"min":23,"mean":281.838,"stdev":702.257,"max":9285,"p50":87,"p90":529,"p99":3606,"p999":7118}}
`;

describe("wrk output", () => {
  it("reads exact numbers from the Lua hook's line", () => {
    const r = parseWrkResult(REAL_OUTPUT);
    expect(r.requests).toBe(17514);
    expect(r.durationS).toBeCloseTo(1.00033);
    expect(r.rps).toBeCloseTo(17514 / 1.00033);
    expect(r.bytes).toBe(20123586);
    expect(r.latencyUs).toEqual({ min: 23, mean: 281.838, stdev: 702.257, max: 9285, p50: 87, p90: 529, p99: 3606, p999: 7118 });
    expect(wrkErrorCount(r.errors)).toBe(0);
    expect(describeWrkErrors(r.errors)).toBe("");
  });

  it("counts and names errors", () => {
    const r = parseWrkResult(REAL_OUTPUT.replace('"connect":0', '"connect":3').replace('"timeout":0', '"timeout":1'));
    expect(wrkErrorCount(r.errors)).toBe(4);
    expect(describeWrkErrors(r.errors)).toBe("connect 3, timeout 1");
  });

  it("says what is wrong with output it cannot use", () => {
    expect(() => parseWrkResult("Running 1s test\nunable to connect to 10.244.2.2:8080 Connection refused\n")).toThrow(
      /printed no 'WEFT_WRK_RESULT' line.*Connection refused/,
    );
    expect(() => parseWrkResult("")).toThrow(/\(empty\)/);
    expect(() => parseWrkResult(`${WRK_MARKER}{"requests":1`)).toThrow(/not JSON/);
    expect(() => parseWrkResult(REAL_OUTPUT.replace('"p99":3606', '"p99":"x"'))).toThrow(/latencyUs.p99 is "x"/);
    expect(() => parseWrkResult(REAL_OUTPUT.replace('"durationUs":1000330', '"durationUs":0'))).toThrow(/durationUs 0 must be positive/);
    expect(() => parseWrkResult(REAL_OUTPUT.replace(/"errors":\{[^}]*\},/, ""))).toThrow(/errors is not an object/);
  });

  it("the Lua hook prints the marker the parser looks for, with every field", () => {
    expect(WRK_LUA).toContain(`"${WRK_MARKER}{`);
    for (const f of ["requests", "durationUs", "connect", "timeout", "p50", "p99", "p999"]) expect(WRK_LUA).toContain(`\\"${f}\\"`);
  });
});

describe("wrk arguments", () => {
  const base = { url: "http://10.244.2.2:8080/1k", connections: 50, threads: 1, durationS: 10, timeoutS: 5, scriptPath: "/tmp/x.lua" };

  it("builds the command line, headers before the URL", () => {
    expect(wrkArgs({ ...base, headers: ["Connection: close"] })).toEqual([
      "-t",
      "1",
      "-c",
      "50",
      "-d",
      "10s",
      "--timeout",
      "5s",
      "-s",
      "/tmp/x.lua",
      "-H",
      "Connection: close",
      "http://10.244.2.2:8080/1k",
    ]);
  });

  it("rejects numbers and strings that would make a meaningless run", () => {
    expect(() => wrkArgs({ ...base, connections: 0 })).toThrow(/connections 0/);
    expect(() => wrkArgs({ ...base, durationS: 1.5 })).toThrow(/duration 1.5/);
    expect(() => wrkArgs({ ...base, threads: 2, connections: 1 })).toThrow(/threads 2 > connections 1/);
    expect(() => wrkArgs({ ...base, url: "10.244.2.2:8080/1k" })).toThrow(/expected http:\/\/host:port\/path/);
    expect(() => wrkArgs({ ...base, headers: ["Connection close"] })).toThrow(/header 'Connection close'/);
  });
});
