/** Redirect's pure parts: exclusions, the pods file, preflight detection, codecs, route parsing, cluster mapping, errors. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { configCodec, excludeKeyCodec, origCodec, podCodec, tupleCodec } from "../../agent/redirect/abi.js";
import { redirectConfig } from "../../agent/redirect/defaults.js";
import { formatExclude, parseExclude } from "../../agent/redirect/exclude.js";
import { hostInterfaceFromRoute } from "../../agent/redirect/host-interface.js";
import { lockPath } from "../../agent/redirect/lock.js";
import { parsePods } from "../../agent/redirect/pods-file.js";
import { PreflightError, preflight, preflightProblems } from "../../agent/redirect/preflight.js";
import { guardPinIfindex, guardPinName } from "../../agent/redirect/programs.js";
import { BpfRedirector } from "../../agent/redirect/redirector.js";
import { possibleCpus } from "../../agent/redirect/stats.js";
import { BpfError, checkInt, checkPtr } from "../../native/bpf-error.js";
import { clusterPodRedirects } from "../../scripts/cluster/pod-redirects.js";
import type { ClusterState } from "../../scripts/cluster/state.js";

describe("excluded destinations", () => {
  it("parses CIDRs, single addresses, ports and port-only forms into LPM keys", () => {
    expect(parseExclude("10.250.0.0/24")).toEqual({ prefixlen: 56, port: 0, addr: "10.250.0.0" });
    expect(parseExclude("10.96.0.1:443")).toEqual({ prefixlen: 64, port: 443, addr: "10.96.0.1" });
    expect(parseExclude("10.96.0.0/16:53")).toEqual({ prefixlen: 48, port: 53, addr: "10.96.0.0" });
    expect(parseExclude(":15008")).toEqual({ prefixlen: 32, port: 15008, addr: "0.0.0.0" });
    // Host bits beyond the prefix are cleared, or the trie would never match the entry.
    expect(parseExclude("10.250.0.77/24").addr).toBe("10.250.0.0");
  });

  it("formats keys back to the accepted form", () => {
    for (const t of ["10.250.0.0/24", "10.96.0.1:443", "10.96.0.0/16:53", ":15008", "10.1.2.3"])
      expect(formatExclude(parseExclude(t))).toBe(t);
  });

  it("rejects bad forms naming the text", () => {
    expect(() => parseExclude("10.0.0.0/33")).toThrow("excluded destination '10.0.0.0/33': prefix /33 is longer than 32");
    expect(() => parseExclude("10.0.0.1:0")).toThrow("port 0 is not 1-65535");
    expect(() => parseExclude("300.1.1.1")).toThrow("'300.1.1.1' is not an IPv4 address");
    expect(() => parseExclude("example.com")).toThrow("expected a.b.c.d[/len][:port] or :port");
    // A bad exclusion is refused when the Redirector is built, before anything touches the kernel.
    const cfg = redirectConfig({ podCgroupParent: "/a", proxyCgroup: "/b", proxyAddress: "10.0.0.1", excluded: ["10.0.0.0/8", "nope"] });
    expect(() => new BpfRedirector(cfg)).toThrow("excluded destination 'nope'");
  });

  it("encodes the LPM key with the port and address in network order", () => {
    const buf = excludeKeyCodec.encode(parseExclude("10.96.0.1:443"));
    expect(buf.toString("hex")).toBe(`${"40000000"}01bb0000${"0a600001"}`);
  });
});

describe("codecs: byte orders as the programs read them", () => {
  it("ports and addresses are network order, flags and ids host order", () => {
    expect(configCodec.encode({ proxy_ip4: "10.244.1.1", proxy_port: 15001, proxy_mark: 0x7765, pod_level: 3 }).toString("hex")).toBe(
      "0af401013a99000065770000" + "03000000",
    );
    expect(podCodec.encode({ flags: 1, ip4: "10.244.1.2" }).toString("hex")).toBe("010000000af40102");
    const tuple = { saddr: "10.244.1.2", daddr: "10.244.1.1", sport: 40000, dport: 15001 };
    expect(tupleCodec.decode(tupleCodec.encode(tuple))).toEqual(tuple);
    const orig = { ip4: "10.244.2.2", port: 7000, cgroup_id: 123456789012n };
    expect(origCodec.decode(origCodec.encode(orig))).toEqual(orig);
    expect(origCodec.encode(orig).subarray(4, 6).toString("hex")).toBe("1b58");
  });

  it("refuses short buffers and bad addresses", () => {
    expect(() => podCodec.decode(Buffer.alloc(4))).toThrow("codec weft_pod: 4 bytes, expected 8");
    expect(() => podCodec.encode({ flags: 1, ip4: "10.1" })).toThrow("'10.1' is not an IPv4 address");
  });
});

describe("pods file", () => {
  const good = {
    uid: "u1",
    namespace: "default",
    name: "a",
    cgroupPath: "/sys/fs/cgroup/unified/w/pods/default.a",
    ip: "10.244.1.2",
    hostInterface: "weft1",
    capture: true,
    inbound: "strict",
  };

  it("parses an array of pods", () => {
    expect(parsePods(JSON.stringify([good]), "p.json")).toEqual([good]);
    expect(parsePods("[]", "p.json")).toEqual([]);
  });

  it("names the file, the entry and the field for every problem", () => {
    expect(() => parsePods("{", "p.json")).toThrow(/pods file p.json: not valid JSON/);
    expect(() => parsePods("{}", "p.json")).toThrow("pods file p.json: expected a JSON array of pods, got object");
    const bad = [good, { ...good, capture: "yes", inbound: "loose", extra: 1 }, { name: "x" }];
    let message = "";
    try {
      parsePods(JSON.stringify(bad), "p.json");
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain("[1].capture: expected true or false");
    expect(message).toContain("[1].inbound: 'loose' must be off, permissive or strict");
    expect(message).toContain("[1]: unknown field(s) extra");
    expect(message).toContain("[2].uid: missing");
    expect(message).not.toContain("[0]");
  });
});

describe("preflight: kernel and machine detection (injected paths)", () => {
  const dir = mkdtempSync(join(tmpdir(), "weft-preflight-"));
  const objDir = join(dir, "objs");
  const btf = join(dir, "vmlinux");
  writeFileSync(btf, "btf");
  const cg = join(dir, "cg");
  const mounts = (lines: string[]) => {
    const f = join(dir, `mounts-${lines.length}-${Math.random()}`);
    writeFileSync(f, `${lines.join("\n")}\n`);
    return f;
  };
  const cfg = redirectConfig({
    podCgroupParent: join(cg, "pods"),
    proxyCgroup: join(cg, "system"),
    proxyAddress: "10.244.1.1",
    pinDir: "/sys/fs/bpf/t",
    objectDir: objDir,
  });

  it("reports a kernel without BTF and without cgroup v2, each with what to do", () => {
    const problems = preflightProblems(cfg, {
      btf: join(dir, "no-such-btf"),
      mounts: mounts(["bpf /sys/fs/bpf bpf rw 0 0", "cgroup /sys/fs/cgroup/cpu cgroup rw 0 0"]),
      uid: 0,
    });
    expect(problems.some((p) => p.includes("the kernel has no BTF") && p.includes("CONFIG_DEBUG_INFO_BTF=y"))).toBe(true);
    expect(problems.some((p) => p.startsWith("cgroup v2 is not mounted"))).toBe(true);
  });

  it("reports not root, no bpffs, missing objects and missing cgroups", () => {
    const problems = preflightProblems(cfg, { btf, mounts: mounts([`cgroup2 ${cg} cgroup2 rw 0 0`]), uid: 1000 });
    expect(problems.some((p) => p.startsWith("not running as root"))).toBe(true);
    expect(problems.some((p) => p.includes("is not on a bpffs mount"))).toBe(true);
    expect(problems.some((p) => p.includes(`BPF object ${join(objDir, "connect.o")} is missing: build it with 'npm run build'`))).toBe(
      true,
    );
    expect(problems.some((p) => p === `pod cgroup parent ${join(cg, "pods")} does not exist`)).toBe(true);
  });

  it("refuses a proxy cgroup inside the pods' cgroup (it would capture itself)", () => {
    const inside = { ...cfg, proxyCgroup: join(cg, "pods", "proxy") };
    const problems = preflightProblems(inside, {
      btf,
      mounts: mounts([`cgroup2 ${cg} cgroup2 rw 0 0`, "bpf /sys/fs/bpf bpf rw 0 0"]),
      uid: 0,
    });
    expect(problems.some((p) => p.includes("would capture its own connections"))).toBe(true);
  });

  it("throws one PreflightError listing every problem", () => {
    expect(() => preflight(cfg, { btf: join(dir, "none"), mounts: mounts([]), uid: 1000 })).toThrow(PreflightError);
    expect(() => preflight(cfg, { btf: join(dir, "none"), mounts: mounts([]), uid: 1000 })).toThrow(
      /redirect cannot start:\n {2}- not running as root/,
    );
  });
});

describe("host interface of a pod IP", () => {
  it("takes the device of a link-scope route", () => {
    expect(
      hostInterfaceFromRoute("10.244.1.2", '[{"dst":"10.244.1.2","dev":"weft1","prefsrc":"10.244.1.1","flags":[],"uid":0,"cache":[]}]'),
    ).toBe("weft1");
  });

  it("refuses routes via a gateway, local addresses and garbage", () => {
    expect(() => hostInterfaceFromRoute("10.244.2.2", '[{"dst":"10.244.2.2","gateway":"10.250.0.12","dev":"eth0"}]')).toThrow(
      "route to pod 10.244.2.2: goes via gateway 10.250.0.12 on eth0, so the pod is not on this node",
    );
    expect(() => hostInterfaceFromRoute("10.244.1.1", '[{"type":"local","dst":"10.244.1.1","dev":"lo"}]')).toThrow(/local to the node/);
    expect(() => hostInterfaceFromRoute("10.244.1.1", "nope")).toThrow(/could not parse/);
    expect(() => hostInterfaceFromRoute("10.244.1.1", "[]")).toThrow(/no route found/);
  });
});

describe("local cluster pods as PodRedirect[]", () => {
  it("maps a node's pods with their cgroup path and host veth, policy per pod", () => {
    const base = { uid: "", namespace: "default", serviceAccount: "default", labels: {}, slot: 2, createdAt: "" };
    const state = {
      pods: [
        {
          ...base,
          name: "a",
          uid: "ua",
          node: 1,
          ip: "10.244.1.2",
          netns: "w-pod-default.a",
          cgroup: "w/node1/pods/default.a",
          hostVeth: "weft1",
        },
        {
          ...base,
          name: "b",
          uid: "ub",
          node: 1,
          ip: "10.244.1.3",
          netns: "w-pod-default.b",
          cgroup: "w/node1/pods/default.b",
          hostVeth: "weft2",
        },
        {
          ...base,
          name: "c",
          uid: "uc",
          node: 2,
          ip: "10.244.2.2",
          netns: "w-pod-default.c",
          cgroup: "w/node2/pods/default.c",
          hostVeth: "weft3",
        },
      ],
    } as unknown as ClusterState;
    const pods = clusterPodRedirects(state, 1, {
      cgroupRoot: "/sys/fs/cgroup/unified",
      policy: (p) => (p.name === "b" ? { capture: false, inbound: "strict" } : { capture: true, inbound: "off" }),
    });
    expect(pods).toEqual([
      {
        uid: "ua",
        namespace: "default",
        name: "a",
        cgroupPath: "/sys/fs/cgroup/unified/w/node1/pods/default.a",
        ip: "10.244.1.2",
        hostInterface: "weft1",
        capture: true,
        inbound: "off",
      },
      {
        uid: "ub",
        namespace: "default",
        name: "b",
        cgroupPath: "/sys/fs/cgroup/unified/w/node1/pods/default.b",
        ip: "10.244.1.3",
        hostInterface: "weft2",
        capture: false,
        inbound: "strict",
      },
    ]);
    expect(clusterPodRedirects(state, 1, { cgroupRoot: "/cg", policy: () => null })).toEqual([]);
  });
});

describe("libbpf errors", () => {
  it("carry the operation, the errno name and an operator hint", () => {
    const e = new BpfError("attach weft_connect4 to cgroup /x", 1);
    expect(e.message).toBe(
      "attach weft_connect4 to cgroup /x: EPERM: the agent needs CAP_BPF and CAP_NET_ADMIN (and CAP_SYS_ADMIN to attach to cgroups): run it as root or privileged",
    );
    expect(e.errnoName).toBe("EPERM");
    expect(e.code).toBe("WEFT_KERNEL");
    expect(() => checkInt("load x", -2, () => 0)).toThrow(/^load x: ENOENT: not found/);
    expect(() => checkInt("load x", -1, () => 13)).toThrow(/^load x: EACCES/);
    expect(checkInt("ok", 5, () => 0)).toBe(5);
    expect(() => checkPtr("open y", 0n, () => 22)).toThrow(/^open y: EINVAL/);
    expect(() => checkPtr("open y", null, () => 0)).toThrow(/^open y: ENOENT/);
    expect(checkPtr("open y", 42n, () => 0)).toBe(42n);
  });
});

describe("small helpers", () => {
  it("counts possible CPUs from the kernel's list format", () => {
    expect(possibleCpus("0-1\n")).toBe(2);
    expect(possibleCpus("0\n")).toBe(1);
    expect(possibleCpus("0-3,8-11\n")).toBe(12);
  });

  it("names guard pins by ifindex and reads them back", () => {
    expect(guardPinName(17)).toBe("guard_if17");
    expect(guardPinIfindex("guard_if17")).toBe(17);
    expect(guardPinIfindex("link_weft_connect4")).toBeNull();
  });

  it("keeps one lock file per pin directory", () => {
    expect(lockPath("/sys/fs/bpf/weft-a-node1")).toMatch(/sys_fs_bpf_weft-a-node1\.lock$/);
    expect(lockPath("/sys/fs/bpf/weft-a-node1")).not.toBe(lockPath("/sys/fs/bpf/weft-a-node2"));
  });
});
