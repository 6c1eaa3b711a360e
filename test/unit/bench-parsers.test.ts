import { describe, expect, it } from "vitest";
import { cpuModel, firstLine, parseHaproxyOpenssl } from "../../bench/lib/machine.js";
import { parseSClientBrief } from "../../bench/lib/pki.js";
import { parseOpenFilesLimit, parseStatCpuTicks, parseStatusKb } from "../../bench/lib/proc-stats.js";
import { checkTransfer, parseCurlTransfer } from "../../bench/lib/transfer.js";
import { parseStubStatus } from "../../bench/lib/upstream.js";
import { l7RequestCount } from "../../bench/variants/weft.js";

describe("/proc parsers", () => {
  // A comm with spaces and a ')' must not shift the fields.
  const stat = "4158 (haproxy (x) y) S 1 4158 4158 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 1 0 98765 12345678 2345 18446744073709551615";

  it("utime + stime from /proc/<pid>/stat, whatever the command name holds", () => {
    expect(parseStatCpuTicks(stat)).toBe(325);
    expect(() => parseStatCpuTicks("garbage")).toThrow(/no '\)'/);
    expect(() => parseStatCpuTicks("1 (x) S 1")).toThrow(/utime\/stime/);
  });

  it("VmRSS / VmHWM from /proc/<pid>/status, in bytes", () => {
    const status = "Name:\thaproxy\nVmPeak:\t  100 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   18392 kB\nThreads:\t1\n";
    expect(parseStatusKb(status, "VmRSS")).toBe(18392 * 1024);
    expect(parseStatusKb(status, "VmHWM")).toBe(40960 * 1024);
    expect(() => parseStatusKb("Name:\tx\n", "VmRSS")).toThrow(/no VmRSS line/);
  });

  it("open-files limit from /proc/<pid>/limits, unlimited included", () => {
    const limits = [
      "Limit                     Soft Limit           Hard Limit           Units     ",
      "Max processes             95872                95872                processes ",
      "Max open files            20000                20000                files     ",
    ].join("\n");
    expect(parseOpenFilesLimit(limits)).toEqual({ soft: 20000, hard: 20000 });
    expect(parseOpenFilesLimit("Max open files            1024                 unlimited            files     ").hard).toBe(
      Number.MAX_SAFE_INTEGER,
    );
    expect(() => parseOpenFilesLimit("Max processes 1 1 processes")).toThrow(/no 'Max open files'/);
  });
});

describe("tool output parsers", () => {
  it("nginx stub_status", () => {
    const text = "Active connections: 1 \nserver accepts handled requests\n 19 19 47 \nReading: 0 Writing: 1 Waiting: 0 \n";
    expect(parseStubStatus(text)).toEqual({ active: 1, accepts: 19, handled: 19, requests: 47 });
    expect(() => parseStubStatus("<html>404 Not Found</html>")).toThrow(/not nginx stub_status output: <html>404/);
  });

  it("curl --write-out of a transfer, and its checks", () => {
    const t = parseCurlTransfer("200 1073741824 0.912345\n");
    expect(t).toEqual({ status: 200, bytes: 1073741824, seconds: 0.912345 });
    expect(() => checkTransfer(t, 1073741824, "haproxy")).not.toThrow();
    expect(() => checkTransfer(t, 2048, "haproxy")).toThrow(/haproxy: received 1073741824 bytes, expected 2048/);
    expect(() => checkTransfer({ ...t, status: 502 }, 1073741824, "haproxy")).toThrow(/HTTP 502, expected 200/);
    expect(() => parseCurlTransfer("000 0 0.001")).not.toThrow();
    expect(() => parseCurlTransfer("200 10 0")).toThrow(/transfer time of 0 s/);
    expect(() => parseCurlTransfer("curl: (7) Failed to connect")).toThrow(/expected '<status> <bytes> <seconds>'/);
  });

  it("openssl s_client -brief: protocol, cipher, verification", () => {
    const out = [
      "CONNECTION ESTABLISHED",
      "Protocol version: TLSv1.3",
      "Ciphersuite: TLS_AES_256_GCM_SHA384",
      "Peer certificate: CN = node2.weft-bench.local",
      "Hash used: SHA256",
      "Signature type: ECDSA",
      "Verification: OK",
      "Verified peername: node2.weft-bench.local",
      "Server Temp Key: X25519, 253 bits",
    ].join("\n");
    expect(parseSClientBrief(out)).toEqual({
      protocol: "TLSv1.3",
      cipher: "TLS_AES_256_GCM_SHA384",
      peerSignature: "ECDSA",
      verified: true,
    });
    expect(parseSClientBrief(out.replace("Verification: OK", "Verification error: unable to get local issuer certificate")).verified).toBe(
      false,
    );
    expect(() => parseSClientBrief("40F7:error:8000006F:system library:BIO_connect:Connection refused\nconnect:errno=111")).toThrow(
      /TLS handshake did not complete: .*errno=111/,
    );
  });

  it("machine facts", () => {
    expect(cpuModel("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n")).toBe("AMD EPYC 7B13");
    expect(cpuModel("")).toBe("unknown");
    expect(
      parseHaproxyOpenssl("Built with OpenSSL version : OpenSSL 3.0.11\nRunning on OpenSSL version : OpenSSL 3.0.22 25 Aug 2026\n"),
    ).toBe("OpenSSL 3.0.22 25 Aug 2026");
    expect(parseHaproxyOpenssl("HAProxy version 2.6")).toBeNull();
    expect(firstLine("\n  nginx version: nginx/1.22.1 \nmore")).toBe("nginx version: nginx/1.22.1");
  });
});

describe("the L7 proof: istio_requests_total for a namespace", () => {
  it("sums the namespace's request series and ignores others and other metrics", () => {
    const text = [
      "# TYPE istio_requests_total counter",
      'istio_requests_total{reporter="source",destination_service_namespace="bench-weft-l7",response_code="200"} 41',
      'istio_requests_total{reporter="source",destination_service_namespace="bench-weft-l7",response_code="503"} 1',
      'istio_requests_total{reporter="source",destination_service_namespace="bench-weft",response_code="200"} 7',
      'istio_request_bytes_count{destination_service_namespace="bench-weft-l7"} 99',
    ].join("\n");
    expect(l7RequestCount(text, "bench-weft-l7")).toBe(42);
    expect(l7RequestCount(text, "bench-weft")).toBe(7);
    expect(l7RequestCount(text, "other")).toBe(0);
  });
});
