import { describe, expect, it } from "vitest";
import { BENCH_CLUSTER, parseBenchArgs, parseVariants, UsageError, wholeNumber } from "../../bench/lib/args.js";
import { haproxyConfig } from "../../bench/lib/haproxy-config.js";
import { roundOrder } from "../../bench/lib/harness.js";
import { nginxConfig } from "../../bench/lib/upstream.js";

describe("bench command line", () => {
  const duration = { flag: "duration", help: "seconds per run", min: 1, max: 120, full: 10, quick: 2 };

  it("defaults: 3 rounds, every variant, the bench cluster; --quick shortens", () => {
    expect(parseBenchArgs([], "http", [duration])).toEqual({
      quick: false,
      rounds: 3,
      variants: [
        "direct",
        "direct-same-node",
        "haproxy",
        "haproxy-http",
        "weft",
        "weft-same-node",
        "weft-l7",
        "weft-l7-authz1",
        "weft-l7-authz",
      ],
      cluster: BENCH_CLUSTER,
      numbers: { duration: 10 },
    });
    expect(parseBenchArgs(["--quick"], "http", [duration])).toMatchObject({ quick: true, rounds: 1, numbers: { duration: 2 } });
    // A script may default to fewer variants (bulk and memory: the L4 paths); --variants still picks any.
    expect(parseBenchArgs([], "bulk", [], ["direct", "haproxy", "weft"]).variants).toEqual(["direct", "haproxy", "weft"]);
    expect(parseBenchArgs(["--variants", "weft-l7"], "bulk", [], ["direct"]).variants).toEqual(["weft-l7"]);
    expect(parseBenchArgs(["--quick", "--rounds", "5", "--duration", "7"], "http", [duration])).toMatchObject({
      rounds: 5,
      numbers: { duration: 7 },
    });
  });

  it("variants come back in report order, whatever order they were asked in", () => {
    expect(parseVariants("weft,direct")).toEqual(["direct", "weft"]);
    expect(parseVariants(" haproxy ")).toEqual(["haproxy"]);
    expect(parseVariants("weft-l7,haproxy-http,weft")).toEqual(["haproxy-http", "weft", "weft-l7"]);
    expect(parseVariants("weft-same-node,weft,direct-same-node")).toEqual(["direct-same-node", "weft", "weft-same-node"]);
    expect(() => parseVariants("direct,envoy")).toThrow(
      /unknown variant 'envoy' \(known: direct, direct-same-node, haproxy, haproxy-http, weft, weft-same-node, weft-l7, weft-l7-authz1, weft-l7-authz\)/,
    );
    expect(() => parseVariants(",")).toThrow(/name at least one/);
  });

  it("bad values name the flag, the value and the accepted range", () => {
    expect(() => parseBenchArgs(["--rounds", "0"], "http")).toThrow(/--rounds '0': expected a whole number from 1 to 20/);
    expect(() => parseBenchArgs(["--duration", "ten"], "http", [duration])).toThrow(/--duration 'ten'/);
    expect(() => parseBenchArgs(["--cluster", "bench"], "http")).toThrow(/--cluster 'bench': expected weft-/);
    expect(() => parseBenchArgs(["--bogus"], "http")).toThrow(UsageError);
    expect(() => parseBenchArgs(["--bogus"], "http")).toThrow(/usage: node dist\/bench\/http.js/);
    expect(() => parseBenchArgs(["--help"], "http", [duration])).toThrow(
      /--duration +seconds per run \(default 10, 2 with --quick; 1–120\)/,
    );
    expect(() => wholeNumber("--n", "1e3", 1, 5000, 1)).toThrow(/--n '1e3'/);
  });
});

describe("HAProxy pair configuration", () => {
  const common = { pem: "/k/node.pem", caFile: "/k/ca.crt", serverName: "node2.weft-bench.local", maxConnections: 9900 };
  const client = haproxyConfig({
    ...common,
    role: "client",
    listen: { host: "10.244.1.1", port: 8080 },
    upstream: { host: "10.250.0.12", port: 16443 },
  });
  const server = haproxyConfig({
    ...common,
    role: "server",
    listen: { host: "10.250.0.12", port: 16443 },
    upstream: { host: "10.244.2.2", port: 8080 },
  });

  it("both halves: TCP mode, one thread, the connection limit", () => {
    for (const cfg of [client, server]) {
      expect(cfg).toMatch(/^\s+mode tcp$/m);
      expect(cfg).toMatch(/^\s+nbthread 1$/m);
      expect(cfg).toMatch(/^\s+maxconn 9900$/m);
      expect(cfg).toMatch(/^\s+ssl-server-verify required$/m);
    }
  });

  it("client half: plaintext in from pods, mutual TLS 1.3 out with the server's name verified", () => {
    expect(client).toMatch(/^\s+bind 10\.244\.1\.1:8080$/m);
    expect(client).toContain(
      "server peer 10.250.0.12:16443 ssl crt /k/node.pem ca-file /k/ca.crt verify required verifyhost node2.weft-bench.local sni str(node2.weft-bench.local) ssl-min-ver TLSv1.3",
    );
  });

  it("server half: requires a client certificate from the CA, TLS 1.3 only, plaintext to the pod", () => {
    expect(server).toContain("bind 10.250.0.12:16443 ssl crt /k/node.pem ca-file /k/ca.crt verify required ssl-min-ver TLSv1.3");
    expect(server).toMatch(/^\s+server pod 10\.244\.2\.2:8080$/m);
  });

  it("refuses a nonsense connection limit", () => {
    expect(() =>
      haproxyConfig({ ...common, maxConnections: 0, role: "client", listen: { host: "a", port: 1 }, upstream: { host: "b", port: 2 } }),
    ).toThrow(/maxConnections 0/);
  });
});

describe("HAProxy pair in HTTP mode", () => {
  const common = {
    pem: "/w/n.pem",
    caFile: "/w/ca.pem",
    serverName: "node2.weft-bench.local",
    maxConnections: 9900,
    mode: "http" as const,
  };
  const client = haproxyConfig({
    ...common,
    role: "client",
    listen: { host: "10.244.1.1", port: 8090 },
    upstream: { host: "10.250.0.12", port: 16444 },
  });
  const server = haproxyConfig({
    ...common,
    role: "server",
    listen: { host: "10.250.0.12", port: 16444 },
    upstream: { host: "10.244.2.2", port: 8080 },
  });

  it("both halves parse HTTP, keep connections alive and share idle server connections", () => {
    for (const cfg of [client, server]) {
      expect(cfg).toMatch(/^\s+mode http$/m);
      expect(cfg).not.toMatch(/^\s+mode tcp$/m);
      expect(cfg).toMatch(/^\s+option http-keep-alive$/m);
      expect(cfg).toMatch(/^backend out\n\s+http-reuse always$/m);
    }
  });

  it("keeps the TCP pair's TLS settings", () => {
    expect(client).toMatch(
      /server peer 10\.250\.0\.12:16444 ssl crt \/w\/n\.pem ca-file \/w\/ca\.pem verify required verifyhost node2\.weft-bench\.local .*ssl-min-ver TLSv1\.3/,
    );
    expect(server).toMatch(/bind 10\.250\.0\.12:16444 ssl crt \/w\/n\.pem ca-file \/w\/ca\.pem verify required ssl-min-ver TLSv1\.3/);
  });
});

describe("nginx upstream configuration", () => {
  const cfg = nginxConfig({
    prefix: "/w/nginx-direct",
    webRoot: "/w/www",
    listenIp: "10.244.2.2",
    port: 8080,
    statusPort: 8081,
    maxConnections: 10612,
    fileLimit: 12148,
  });

  it("one worker serving the web root on the pod address, keep-alive that outlasts a measurement", () => {
    expect(cfg).toMatch(/^worker_processes 1;$/m);
    expect(cfg).toContain("listen 10.244.2.2:8080 backlog=4096;");
    expect(cfg).toContain("root /w/www;");
    expect(cfg).toContain("worker_connections 10612;");
    expect(cfg).toContain("worker_rlimit_nofile 12148;");
    expect(cfg).toContain("keepalive_requests 100000000;");
    expect(cfg).toContain("sendfile on;");
  });

  it("status only on the pod's loopback, so no path ever carries it; state kept in the prefix", () => {
    expect(cfg).toMatch(/listen 127\.0\.0\.1:8081;\s+location \/ \{ stub_status; \}/);
    expect(cfg).toContain("pid /w/nginx-direct/nginx.pid;");
    expect(cfg).toContain("client_body_temp_path /w/nginx-direct/tmp/client_body;");
    expect(cfg).not.toMatch(/\/var\//);
  });
});

describe("the order variants run in per round", () => {
  it("changes each round so no variant always goes first and neighbours meet in both orders", () => {
    const names = ["direct", "haproxy", "weft", "weft-l7", "authz1", "authz"];
    const rounds = [0, 1, 2, 3].map((r) => roundOrder(names, r));
    for (const order of rounds) expect([...order].sort()).toEqual([...names].sort());
    expect(new Set(rounds.slice(0, 3).map((o) => o[0])).size).toBe(3);
    for (let i = 0; i + 1 < names.length; i++) {
      const a = names[i] as string;
      const b = names[i + 1] as string;
      const before = rounds.slice(0, 3).map((o) => o.indexOf(a) < o.indexOf(b));
      expect(before, `${a} / ${b}`).toContain(true);
      expect(before, `${a} / ${b}`).toContain(false);
    }
  });
});
