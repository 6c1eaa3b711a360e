import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { WorkloadInfo } from "../../agent/admin-debug.js";
import { bpfReport, renderBpf } from "../../agent/cli/bpf.js";
import { cgroupPaths, choosePinDir, weftPinDirs } from "../../agent/cli/bpf-locate.js";
import { renderCerts } from "../../agent/cli/certs.js";
import { connectionMatches, renderConnections, shortIdentity } from "../../agent/cli/connections.js";
import { bytes, duration, list, relative } from "../../agent/cli/humanize.js";
import { policyRows, renderWorkloads } from "../../agent/cli/inventory.js";
import { type AgentStatus, renderStatus } from "../../agent/cli/status.js";
import { renderEvent, renderRequest } from "../../agent/cli/tap.js";
import type { ConnectionSnapshot } from "../../agent/proxy/connection-manager.js";
import type { Inspection } from "../../agent/redirect/inspect.js";
import type { AuthorizationPolicy, PeerAuthentication } from "../../controller/api/model.js";
import { snapshot, workload } from "../helpers/mesh-fixture.js";

const dir = mkdtempSync(join(tmpdir(), "weft-cli-render-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("humanize", () => {
  it.each([
    [bytes(0), "0 B"],
    [bytes(1536), "1.5 KiB"],
    [bytes(300 * 1024 * 1024), "300 MiB"],
    [duration(900), "900ms"],
    [duration(192_000), "3m12s"],
    [duration(3_600_000 * 26), "1d2h"],
    [duration(7_200_000), "2h"],
    [relative("2026-01-01T12:30:00Z", Date.parse("2026-01-01T12:00:00Z")), "in 30m"],
    [relative("2026-01-01T11:59:30Z", Date.parse("2026-01-01T12:00:00Z")), "30s ago"],
    [relative(undefined), "-"],
    [list(["a", "b", "c", "d", "e"], 3), "a,b,c +2 more"],
    [list([], 3, "none"), "none"],
  ])("%s", (got, want) => expect(got).toBe(want));
});

const status: AgentStatus = {
  node: "n1",
  version: "0.1.0",
  uptimeSeconds: 192,
  source: "controller",
  synced: false,
  revision: 4,
  appliedVersions: { Workload: "v7" },
  counts: { workloads: 3, localWorkloads: 2, services: 1, authorizationPolicies: 1, peerAuthentications: 0 },
  ready: { ready: false, reasons: ["mesh config not yet synced from the controller", "no valid certificate for spiffe://x (pending)"] },
  components: {
    xds: { target: "10.250.0.1:15012", state: "connecting", since: new Date(Date.now() - 60_000).toISOString(), lastError: "ECONNREFUSED" },
    identity: [{ identity: "spiffe://x", state: "pending", issued: 0 }],
  },
};

describe("status", () => {
  it("shows why the agent is not ready and that the controller is unreachable, one fact per row", () => {
    const text = renderStatus(status, undefined, "/run/weft/agent-n1.sock");
    const lines = text.split("\n");
    expect(lines[0]).toBe("agent         n1  v0.1.0  up 3m12s  (admin /run/weft/agent-n1.sock)");
    expect(lines[1]).toBe("ready         NO");
    expect(lines[2]).toBe("                mesh config not yet synced from the controller");
    expect(text).toMatch(/controller {4}CONNECTING: 10\.250\.0\.1:15012 since 1m ago \(ECONNREFUSED\); serving its last config/);
    expect(text).toMatch(/config {8}NOT SYNCED yet, revision 4; applied: Workload v7/);
    expect(text).toMatch(/certificates {2}1 pending\n {16}spiffe:\/\/x: pending/);
    expect(text).toMatch(/capture {7}off: the agent runs without capture/);
    expect(text).toMatch(/proxy {9}off: the agent runs without a data plane/);
  });
});

describe("inventory", () => {
  it("lists workloads with mesh membership, capture and the reason", () => {
    const rows: WorkloadInfo[] = [
      {
        namespace: "shop",
        name: "web",
        uid: "u1",
        addresses: ["10.244.1.2"],
        node: "n1",
        local: true,
        serviceAccount: "web",
        identity: "spiffe://cluster.local/ns/shop/sa/web",
        enrolled: true,
        enrolmentReason: "namespace shop has weft.dev/mesh=enabled",
        ready: true,
        services: [],
        mtls: { mode: "STRICT", source: "shop/strict" },
        capture: { state: "failed", error: "no cgroup" },
      },
      {
        namespace: "legacy",
        name: "old",
        uid: "u2",
        addresses: ["10.244.2.2"],
        node: "n2",
        local: false,
        serviceAccount: "old",
        identity: "spiffe://cluster.local/ns/legacy/sa/old",
        enrolled: false,
        enrolmentReason: "pod has weft.dev/mesh=disabled",
        ready: true,
        services: [],
      },
    ];
    expect(renderWorkloads(rows, "n1").split("\n")).toEqual([
      "NAMESPACE  NAME  IP          NODE       MESH  CAPTURE  MTLS    WHY",
      "shop       web   10.244.1.2  n1 (this)  yes   failed   STRICT  namespace shop has weft.dev/mesh=enabled; capture failed: no cgroup",
      "legacy     old   10.244.2.2  n2         no    -        -       pod has weft.dev/mesh=disabled",
    ]);
  });

  it("says which local pods each policy applies to", () => {
    const a = workload({ name: "a", ns: "shop", ip: "10.244.1.2", node: "n1", nodeAddress: "x", labels: { app: "api" } });
    const b = workload({ name: "b", ns: "shop", ip: "10.244.1.3", node: "n1", nodeAddress: "x", labels: { app: "web" } });
    const far = workload({ name: "c", ns: "shop", ip: "10.244.2.2", node: "n2", nodeAddress: "y", labels: { app: "api" } });
    const allowApi: AuthorizationPolicy = {
      key: "shop/allow-api",
      name: "allow-api",
      namespace: "shop",
      scope: { kind: "workload", selector: { app: "api" } },
      action: "ALLOW",
      rules: [],
    };
    const strict: PeerAuthentication = {
      key: "weft-system/strict",
      name: "strict",
      namespace: "weft-system",
      scope: { kind: "mesh" },
      mode: "STRICT",
      portLevelMtls: {},
    };
    const rows = policyRows({ ...snapshot("n1", [a, b, far], [], [allowApi]), peerAuthentications: [strict] });
    expect(rows).toEqual([
      {
        kind: "AuthorizationPolicy",
        namespace: "shop",
        name: "allow-api",
        scope: "app=api",
        detail: "ALLOW, 0 rules (allows nothing)",
        appliesTo: ["shop/a"],
      },
      {
        kind: "PeerAuthentication",
        namespace: "weft-system",
        name: "strict",
        scope: "mesh",
        detail: "mTLS STRICT",
        appliesTo: ["shop/a", "shop/b"],
      },
    ]);
  });
});

describe("certs", () => {
  it("shows expiry and renewal relative to now, and the roots' roles", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    const text = renderCerts(
      {
        certificates: [
          {
            identity: "spiffe://cluster.local/ns/a/sa/b",
            state: "valid",
            issued: 1,
            serial: "AB",
            notAfter: "2026-01-02T00:00:00.000Z",
            renewAt: "2026-01-01T12:00:00.000Z",
          },
        ],
        trustBundle: [
          {
            subject: "O=weft\nCN=root",
            sha256: "0123456789abcdef0123",
            notBefore: "x",
            notAfter: "2036-01-01T00:00:00.000Z",
            signing: true,
          },
        ],
      },
      now,
    );
    expect(text.split("\n")).toEqual([
      "IDENTITY                          STATE  SERIAL  NOT-AFTER                 EXPIRES  RENEWAL",
      "spiffe://cluster.local/ns/a/sa/b  valid  AB      2026-01-02T00:00:00.000Z  in 1d    in 12h",
      "",
      "TRUST BUNDLE ROOT  SHA256             NOT-AFTER                 EXPIRES   ROLE",
      "O=weft, CN=root    0123456789abcdef…  2036-01-01T00:00:00.000Z  in 3652d  signing",
    ]);
  });
});

const conn: ConnectionSnapshot = {
  id: 7,
  direction: "outbound",
  mode: "hbone",
  src: { ip: "10.244.1.2", port: 40000 },
  dst: { ip: "10.96.0.10", port: 80 },
  target: { ip: "10.244.2.2", port: 8080 },
  srcWorkload: "shop/web",
  srcIdentity: "spiffe://cluster.local/ns/shop/sa/web",
  dstWorkload: "shop/api",
  dstIdentity: "spiffe://cluster.local/ns/shop/sa/api",
  service: "shop/api",
  startedAt: "2026-01-01T00:00:00.000Z",
  ageMs: 65_000,
  bytesReceived: 2048,
  bytesSent: 10,
};

describe("connections and tap", () => {
  it("renders a connection row with workloads, identities, bytes and age", () => {
    expect(renderConnections([conn]).split("\n")[1]).toBe(
      "7   out  hbone  shop/web  shop/sa/web  shop/api 10.244.2.2:8080  shop/sa/api  shop/api  2.0 KiB/10 B  1m5s  -",
    );
    expect(renderConnections([{ ...conn, mode: "same-node", splice: "kernel" }]).split("\n")[1]).toMatch(
      /^7\s+out\s+same-node \(kernel\)\s+shop\/web/,
    );
    expect(renderConnections([])).toBe("no live connections");
    expect(shortIdentity("spiffe://td/ns/a/sa/b")).toBe("a/sa/b");
  });

  it("filters by pod (name, ns/name, IP) and namespace", () => {
    expect(connectionMatches(conn, "web", undefined)).toBe(true);
    expect(connectionMatches(conn, "shop/api", undefined)).toBe(true);
    expect(connectionMatches(conn, "10.244.2.2", undefined)).toBe(true);
    expect(connectionMatches(conn, "other", undefined)).toBe(false);
    expect(connectionMatches(conn, undefined, "legacy")).toBe(false);
    expect(connectionMatches(conn, "web", "legacy")).toBe(false);
  });

  it("renders tap events: open with the policy, close with bytes, duration and flags", () => {
    const at = "2026-01-01T10:11:12.345Z";
    expect(renderEvent({ type: "open", at, connection: { ...conn, policy: "allowed by shop/p" } })).toBe(
      "10:11:12.345  OPEN   out hbone       shop/web (10.244.1.2:40000) -> shop/api (10.244.2.2:8080) via shop/api [shop/sa/web -> shop/sa/api]  policy: allowed by shop/p",
    );
    expect(
      renderEvent({ type: "close", at, connection: conn, responseFlags: "DENY", error: "destination refused the tunnel: HTTP 403" }),
    ).toMatch(/CLOSE .* 2\.0 KiB in, 10 B out, 1m5s {2}flags: DENY {2}error: destination refused the tunnel: HTTP 403$/);
    const coded = renderEvent({
      type: "close",
      at,
      connection: conn,
      responseFlags: "DENY",
      error: "destination refused the tunnel: HTTP 403 WEFT_AUTHZ_DENIED (an authorization policy denied the connection)",
      errorCode: "WEFT_AUTHZ_DENIED",
    });
    expect(coded).toMatch(/error: destination refused the tunnel: HTTP 403 WEFT_AUTHZ_DENIED .* \[WEFT_AUTHZ_DENIED\]$/);
  });
});

describe("bpf", () => {
  it("chooses the pin directory: flag, agent, default, node, the only one — or lists several", () => {
    const root = join(dir, "bpffs");
    mkdirSync(join(root, "n1"), { recursive: true });
    writeFileSync(join(root, "n1", "weft_meta"), "");
    mkdirSync(join(root, "unrelated"));
    expect(choosePinDir({ pinDir: "/x" }, root)).toEqual({ dir: "/x", how: "--pin-dir" });
    expect(choosePinDir({ agentPinDir: "/y" }, root)).toEqual({ dir: "/y", how: "the agent's --pin-dir" });
    expect(choosePinDir({}, root)).toEqual({ dir: join(root, "n1"), how: "the only weft pin directory" });
    mkdirSync(join(root, "n2"));
    writeFileSync(join(root, "n2", "weft_meta"), "");
    expect(weftPinDirs(root)).toEqual([join(root, "n1"), join(root, "n2")]);
    expect(choosePinDir({ node: "n2" }, root)).toEqual({ dir: join(root, "n2"), how: "node n2" });
    expect(() => choosePinDir({}, root)).toThrow(/several weft pin directories .*n1, .*n2\): choose one with --pin-dir/);
    mkdirSync(join(root, "weft"));
    writeFileSync(join(root, "weft", "weft_meta"), "");
    expect(choosePinDir({}, root)).toEqual({ dir: join(root, "weft"), how: "default" });
  });

  it("finds cgroup directories by id (inode) and names pods in the report", () => {
    const cg = join(dir, "cg");
    mkdirSync(join(cg, "node1", "pods", "shop.web"), { recursive: true });
    const podId = String(statSync(join(cg, "node1", "pods", "shop.web"), { bigint: true }).ino);
    const parentId = String(statSync(join(cg, "node1", "pods"), { bigint: true }).ino);
    expect(cgroupPaths(cg, new Set([podId, "999999999"]))).toEqual(new Map([[podId, join(cg, "node1", "pods", "shop.web")]]));
    const s: Inspection = {
      pinDir: "/sys/fs/bpf/n1",
      exists: true,
      state: "compatible",
      links: [
        { pin: "guard_if3", linkId: 2, progId: 20, progName: "weft_tcx_guard", kind: "tcx", ifindex: 3, attachType: 46 },
        { pin: "link_weft_connect4", linkId: 1, progId: 10, progName: "weft_connect4", kind: "cgroup", cgroupId: parentId, attachType: 10 },
      ],
      maps: [{ name: "weft_pods", id: 5, entries: 1 }],
      pods: [{ cgroupId: podId, flags: 1, ip: "10.244.1.2" }],
      guard: [{ ip: "10.244.1.2", mode: "strict", ifindex: 3 }],
      excluded: [":22"],
      stats: { captured: 12, not_enrolled: 0 },
    };
    const r = bpfReport(s, "--pin-dir", "not reachable", new Map([["10.244.1.2", "shop/web"]]), cg);
    expect(r.pods).toEqual([
      { cgroupId: podId, cgroup: join(cg, "node1", "pods", "shop.web"), pod: "shop/web", ip: "10.244.1.2", capture: true, guard: "strict" },
    ]);
    const text = renderBpf(r, cg);
    expect(text).toMatch(/^pin directory \/sys\/fs\/bpf\/n1 \(--pin-dir\): compatible\nagent: not reachable/);
    // Cgroup hooks are listed before the guards.
    expect(text.indexOf("weft_connect4")).toBeLessThan(text.indexOf("weft_tcx_guard"));
    expect(text).toMatch(/cgroup node1\/pods \(id \d+\)/);
    expect(text).toMatch(/shop\/web {6}node1\/pods\/shop\.web {2}\d+ +10\.244\.1\.2 {2}yes {6}strict/);
    expect(text).toMatch(/excluded from capture: :22/);
    expect(text).toMatch(/decision counters: captured=12$/);
    expect(renderBpf({ ...r, exists: false, state: "empty" }, cg)).toMatch(/nothing pinned/);
  });

  it("renders a tapped HTTP request: route, status, upstream, attempts and flags", () => {
    const at = "2026-01-01T10:11:12.345Z";
    const request = {
      method: "GET",
      path: "/reviews/0",
      authority: "reviews:9080",
      status: 503,
      grpcStatus: "",
      flags: "URX" as const,
      durationMs: 310,
      route: "VirtualService/bookinfo/reviews#http[0]",
      upstream: "10.244.2.4:9080",
      upstreamCluster: "bookinfo/reviews:9080|v2",
      attempts: 3,
      requestId: "abc",
      source: "bookinfo/productpage-v1",
      destinationWorkload: "bookinfo/reviews-v2",
      bytesSent: 0,
      bytesReceived: 0,
    };
    expect(renderRequest({ type: "request", at, request })).toBe(
      "10:11:12.345  REQ    GET reviews:9080/reviews/0 -> 503  bookinfo/productpage-v1 -> bookinfo/reviews-v2 (10.244.2.4:9080)  route VirtualService/bookinfo/reviews#http[0]  310ms  attempts: 3  flags: URX  id abc",
    );
  });
});
