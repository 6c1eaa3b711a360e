import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { clockCheck, renderChecks } from "../../agent/cli/check.js";
import { checkCaps, effectiveCaps, isBpfObject, kernelVersion, type NodeProbe, nodeChecks } from "../../agent/cli/check-node.js";
import { isWeftAgent, type Listener, listeners, parseListeners, portChecks, socketOwners } from "../../agent/cli/check-ports.js";
import { OBJECT_FILES } from "../../agent/redirect/programs.js";

const dir = mkdtempSync(join(tmpdir(), "weft-check-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A minimal eBPF ELF header (magic, e_machine = EM_BPF). */
function bpfElf(): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32BE(0x7f454c46, 0);
  b.writeUInt16LE(247, 18);
  return b;
}

const objDir = join(dir, "objs");
mkdirSync(objDir);
for (const f of OBJECT_FILES) writeFileSync(join(objDir, f), bpfElf());
const btf = join(dir, "vmlinux");
writeFileSync(btf, "btf");
const ALL_CAPS = "CapEff:\t000001ffffffffff\n";
const MOUNTS = "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw 0 0\nbpf /sys/fs/bpf bpf rw 0 0\n";

const probe = (over: Partial<NodeProbe> = {}): NodeProbe => ({
  kernelRelease: "6.18.44-generic",
  btfPath: btf,
  mountsText: MOUNTS,
  statusText: ALL_CAPS,
  objectDir: objDir,
  loadLibbpf: () => "1.1",
  clang: () => null,
  ...over,
});
const byName = (p: NodeProbe) => new Map(nodeChecks(p).map((c) => [c.name, c]));

describe("node prerequisites", () => {
  it("all pass on a good node, and clang is only information", () => {
    const r = nodeChecks(probe());
    expect(r.filter((c) => c.status !== "pass").map((c) => [c.name, c.status])).toEqual([["clang", "info"]]);
    expect(byName(probe()).get("clang")?.detail).toMatch(/not needed on nodes: the BPF objects are prebuilt/);
    expect(byName(probe()).get("cgroup v2")?.detail).toBe("mounted at /sys/fs/cgroup/unified (hybrid: v1 controllers mounted too)");
  });

  it.each([
    ["kernel", { kernelRelease: "5.15.0-91-generic" }, "warn", /STRICT guard needs TCX \(6\.6\+\)/, /Linux 6\.6/],
    ["kernel", { kernelRelease: "5.4.0" }, "fail", /too old/, /upgrade to Linux 6\.6/],
    ["BTF", { btfPath: join(dir, "nope") }, "fail", /is missing/, /CONFIG_DEBUG_INFO_BTF=y/],
    ["cgroup v2", { mountsText: "bpf /sys/fs/bpf bpf rw 0 0\n" }, "fail", /not mounted/, /mount -t cgroup2/],
    ["bpffs", { mountsText: "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n" }, "fail", /no bpf filesystem/, /mount -t bpf bpf \/sys\/fs\/bpf/],
    ["capabilities", { statusText: "CapEff:\t0000000000001000\n" }, "fail", /lacks CAP_SYS_ADMIN, CAP_BPF/, /run as root/],
    [
      "libbpf",
      {
        loadLibbpf: () => {
          throw new Error("libbpf.so.1 could not be loaded (not found): run 'apt-get install -y libbpf1'");
        },
      },
      "fail",
      /^libbpf\.so\.1 could not be loaded \(not found\)$/,
      /apt-get install -y libbpf1/,
    ],
    ["BPF objects", { objectDir: join(dir, "empty") }, "fail", /missing or not eBPF objects .*connect\.o/, /npm run build/],
  ] as const)("%s: %s → %s with the fix", (name, over, status, detail, fix) => {
    const c = byName(probe(over as Partial<NodeProbe>)).get(name);
    expect(c?.status).toBe(status);
    expect(c?.detail).toMatch(detail);
    expect(c?.fix).toMatch(fix);
  });

  it("reads versions, capability sets and ELF headers", () => {
    expect(kernelVersion("6.18.44-fc")).toEqual([6, 18]);
    expect(kernelVersion("weird")).toEqual([Number.NaN, Number.NaN]);
    expect(effectiveCaps("Name:\tx\nCapEff:\t0000000000003000\n")).toBe(0x3000n);
    expect(effectiveCaps("nothing")).toBeNull();
    expect(checkCaps(ALL_CAPS, "the agent (pid 7)")).toMatchObject({ category: "agent", status: "pass" });
    const notBpf = join(dir, "x86.o");
    writeFileSync(notBpf, Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(60)]));
    expect(isBpfObject(notBpf)).toBe(false);
    expect(isBpfObject(join(objDir, "connect.o"))).toBe(true);
  });
});

describe("ports", () => {
  const TCP = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 0100007F:3A98 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0",
    "   1: 0101F40A:3A99 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0 100 0 0 10 0",
    "   2: 0100007F:3A98 0100007F:CA64 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0 100 0 0 10 0",
    "   3: 00000000:3AAC 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 444 1 0 100 0 0 10 0",
  ].join("\n");
  const TCP6 = [
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 00000000000000000000000001000000:3AA0 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0",
  ].join("\n");

  it("parses LISTEN sockets from /proc/net/tcp and tcp6, skipping established ones", () => {
    expect(parseListeners(TCP, false)).toEqual([
      { address: "127.0.0.1", port: 15000, inode: "111" },
      { address: "10.244.1.1", port: 15001, inode: "222" },
      { address: "0.0.0.0", port: 15020, inode: "444" },
    ]);
    expect(parseListeners(TCP6, true)).toEqual([{ address: "0:0:0:0:0:0:0:1", port: 15008, inode: "555" }]);
  });

  it("passes free ports and ports held by the agent; fails a port held by something else, naming it", () => {
    const found: Listener[] = [...parseListeners(TCP, false), ...parseListeners(TCP6, true)];
    const owners = new Map([
      ["111", { pid: 10, command: "node /opt/weft/dist/agent/cli/main.js agent --node n1" }],
      ["222", { pid: 10, command: "node /opt/weft/dist/agent/cli/main.js agent --node n1" }],
      ["444", { pid: 99, command: "envoy -c /etc/envoy.yaml" }],
    ]);
    const r = new Map(portChecks(found, owners, 10, "in the agent's network namespace").map((c) => [c.name, c]));
    expect(r.get("port 15000")).toMatchObject({ status: "pass", detail: "held by the weft agent (pid 10) on 127.0.0.1:15000 (admin API)" });
    expect(r.get("port 15006")).toMatchObject({ status: "pass", detail: "free (inbound plaintext; in the agent's network namespace)" });
    expect(r.get("port 15020")).toMatchObject({ status: "fail", fix: expect.stringMatching(/ss -ltnp 'sport = :15020'/) });
    expect(r.get("port 15020")?.detail).toMatch(
      /in use by pid 99 \(envoy -c \/etc\/envoy.yaml\) on 0\.0\.0\.0:15020: the agent needs it for the Prometheus metrics/,
    );
    expect(r.get("port 15008")).toMatchObject({
      status: "warn",
      detail: "in use on [0:0:0:0:0:0:0:1]:15008 by a process this user cannot see (the agent's, or another's)",
      fix: "run weft check as root to see which process holds it",
    });
  });

  it("recognises the agent by its command line", () => {
    expect(isWeftAgent("/usr/bin/node /usr/lib/weft/dist/agent/cli/main.js agent --node a")).toBe(true);
    expect(isWeftAgent("weft agent --node a")).toBe(true);
    expect(isWeftAgent("weft controller --store x")).toBe(false);
    expect(isWeftAgent("python -m http.server")).toBe(false);
  });

  it("finds a real listener of this process and its owner", async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    try {
      const port = (srv.address() as AddressInfo).port;
      const mine = listeners("self").find((l) => l.port === port);
      expect(mine).toMatchObject({ address: "127.0.0.1", port });
      const owner = socketOwners(new Set([mine?.inode as string])).get(mine?.inode as string);
      expect(owner?.pid).toBe(process.pid);
    } finally {
      srv.close();
    }
  });
});

describe("clock", () => {
  const now = Date.parse("2026-01-01T12:00:00Z");
  const cert = (notBefore: string, notAfter: string) => [
    { identity: "spiffe://cluster.local/ns/a/sa/b", state: "valid" as const, issued: 1, notBefore, notAfter },
  ];

  it("passes when every certificate is valid by this clock; warns when NTP is off", () => {
    expect(clockCheck(cert("2026-01-01T11:00:00Z", "2026-01-02T11:00:00Z"), now, true)).toMatchObject({
      category: "clock",
      status: "pass",
      detail: expect.stringMatching(/1 certificate\(s\) valid .*; NTP synchronized$/),
    });
    expect(clockCheck(cert("2026-01-01T11:00:00Z", "2026-01-02T11:00:00Z"), now, false)).toMatchObject({
      status: "warn",
      fix: expect.stringMatching(/chrony/),
    });
  });

  it("fails a clock behind the CA (not yet valid) or certificates expired by it", () => {
    expect(clockCheck(cert("2026-01-01T12:30:00Z", "2026-01-02T11:00:00Z"), now, true)).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/clock is behind the CA's: .* valid only from 2026-01-01T12:30:00Z \(in 30m\)/),
    });
    expect(clockCheck(cert("2025-12-30T11:00:00Z", "2025-12-31T11:00:00Z"), now, undefined)).toMatchObject({
      status: "fail",
      detail: expect.stringMatching(/expired by this node's clock/),
    });
  });

  it("renders one line per check with the fix under failures, and a summary", () => {
    const text = renderChecks({
      checks: [
        { category: "node", name: "kernel", status: "pass", detail: "Linux 6.18" },
        { category: "node", name: "bpffs", status: "fail", detail: "no bpf filesystem", fix: "mount -t bpf bpf /sys/fs/bpf" },
        { category: "agent", name: "agent", status: "info", detail: "skipped" },
      ],
      facts: {
        cpu: "AMD EPYC",
        cores: 2,
        memoryTotal: 2 ** 34,
        memoryAvailable: 2 ** 33,
        os: "Debian 12",
        kernel: "6.18",
        arch: "x64",
        hostname: "vm",
      },
      summary: { pass: 1, warn: 0, fail: 1, info: 1 },
    });
    expect(text).toBe(
      [
        "node",
        "  PASS  kernel  Linux 6.18",
        "  FAIL  bpffs   no bpf filesystem",
        "                fix: mount -t bpf bpf /sys/fs/bpf",
        "",
        "agent",
        "  INFO  agent   skipped",
        "",
        "node facts",
        "  cpu       AMD EPYC, 2 cores",
        "  memory    16 GiB total, 8.0 GiB available",
        "  os        Debian 12, kernel 6.18, x64",
        "  hostname  vm",
        "",
        "1 passed, 0 warnings, 1 failed",
      ].join("\n"),
    );
  });
});
