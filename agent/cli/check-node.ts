/**
 * `weft check`'s node prerequisites, each a pass/warn/fail line with the fix: kernel version and
 * BTF, cgroup v2, bpffs, capabilities, libbpf, the prebuilt BPF objects, and (for the record)
 * that clang is not needed. Paths and readers are injectable so each verdict is unit-testable.
 */
import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";
import { errorMessage } from "../../common/errors.js";
import { which } from "../../native/exec.js";
import { libbpf } from "../../native/libbpf.js";
import { defaultObjectDir } from "../redirect/defaults.js";
import { OBJECT_FILES } from "../redirect/programs.js";

/** A check's verdict. */
export type CheckStatus = "pass" | "warn" | "fail" | "info";

/** One line of `weft check`. */
export interface CheckResult {
  category: string;
  name: string;
  status: CheckStatus;
  detail: string;
  /** What to do about a warn or fail. */
  fix?: string;
}

/** Where the node checks look (tests point these at fixtures). */
export interface NodeProbe {
  kernelRelease: string;
  btfPath: string;
  mountsText: string;
  /** /proc/<pid>/status text of the process whose capabilities matter. */
  statusText: string;
  objectDir: string;
  loadLibbpf: () => string;
  clang: () => string | null;
}

/** The real machine. */
export function systemProbe(): NodeProbe {
  return {
    kernelRelease: release(),
    btfPath: "/sys/kernel/btf/vmlinux",
    mountsText: readOr("/proc/self/mounts"),
    statusText: readOr("/proc/self/status"),
    objectDir: defaultObjectDir(),
    loadLibbpf: () => {
      const l = libbpf();
      return `${l.libbpf_major_version()}.${l.libbpf_minor_version()}`;
    },
    clang: () => which("clang"),
  };
}

function readOr(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

const node = (name: string, status: CheckStatus, detail: string, fix?: string): CheckResult => ({
  category: "node",
  name,
  status,
  detail,
  ...(fix ? { fix } : {}),
});

/** Kernel release → [major, minor] (NaN when unreadable). */
export function kernelVersion(text: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : [Number.NaN, Number.NaN];
}

function checkKernel(p: NodeProbe): CheckResult {
  const [maj, min] = kernelVersion(p.kernelRelease);
  const v = maj * 100 + min;
  if (Number.isNaN(v))
    return node("kernel", "warn", `cannot read the kernel version from '${p.kernelRelease}'`, "weft needs Linux 6.6 or newer");
  if (v >= 606) return node("kernel", "pass", `Linux ${p.kernelRelease}: every capture hook and the TCX guard are supported`);
  if (v >= 508)
    return node(
      "kernel",
      "warn",
      `Linux ${p.kernelRelease}: capture works, but the STRICT guard needs TCX (6.6+), so plaintext cannot be refused`,
      "upgrade to Linux 6.6 or newer for STRICT mTLS",
    );
  return node(
    "kernel",
    "fail",
    `Linux ${p.kernelRelease} is too old: the getsockname/getpeername hooks and cgroup BPF links need 5.8, the guard 6.6`,
    "upgrade to Linux 6.6 or newer",
  );
}

function checkBtf(p: NodeProbe): CheckResult {
  try {
    const size = statSync(p.btfPath).size;
    return node("BTF", "pass", `${p.btfPath} present (${Math.round(size / 1024)} KiB): the CO-RE objects relocate against it`);
  } catch {
    return node(
      "BTF",
      "fail",
      `${p.btfPath} is missing: weft's programs are CO-RE and need the kernel's BTF`,
      "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels are)",
    );
  }
}

interface Mount {
  point: string;
  type: string;
}

function mounts(text: string): Mount[] {
  return text
    .split("\n")
    .map((l) => l.split(" "))
    .filter((f) => f.length >= 3)
    .map((f) => ({ point: (f[1] as string).replace(/\\040/g, " "), type: f[2] as string }));
}

function checkCgroup(p: NodeProbe): CheckResult {
  const all = mounts(p.mountsText);
  const v2 = all.filter((m) => m.type === "cgroup2").sort((a, b) => a.point.length - b.point.length)[0];
  if (!v2)
    return node(
      "cgroup v2",
      "fail",
      "cgroup v2 is not mounted: the capture hooks attach to cgroup v2 directories",
      "mount it ('mount -t cgroup2 none /sys/fs/cgroup/unified') or boot with systemd.unified_cgroup_hierarchy=1",
    );
  const hybrid = all.some((m) => m.type === "cgroup");
  return node("cgroup v2", "pass", `mounted at ${v2.point}${hybrid ? " (hybrid: v1 controllers mounted too)" : ""}`);
}

function checkBpffs(p: NodeProbe): CheckResult {
  const bpf = mounts(p.mountsText).filter((m) => m.type === "bpf");
  if (bpf.length === 0)
    return node(
      "bpffs",
      "fail",
      "no bpf filesystem is mounted: programs and maps cannot be pinned, so capture would not survive an agent restart",
      "mount -t bpf bpf /sys/fs/bpf",
    );
  return node("bpffs", "pass", `mounted at ${bpf.map((m) => m.point).join(", ")}`);
}

/** Capability bits weft's agent needs. */
export const CAPS = { CAP_NET_ADMIN: 12, CAP_SYS_ADMIN: 21, CAP_BPF: 39 } as const;

/** The effective capability set from /proc/<pid>/status text. */
export function effectiveCaps(statusText: string): bigint | null {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(statusText);
  return m ? BigInt(`0x${m[1]}`) : null;
}

/** Checks a process's capabilities (this shell's, or the agent's when its pid is visible). */
export function checkCaps(statusText: string, whose = "this process"): CheckResult {
  const caps = effectiveCaps(statusText);
  const own = whose === "this process";
  const name = "capabilities";
  const result = (status: CheckStatus, detail: string, fix?: string): CheckResult => ({
    ...node(name, status, detail, fix),
    category: own ? "node" : "agent",
  });
  if (caps === null) return result("warn", `cannot read the capabilities of ${whose}`, "check /proc/<pid>/status is readable");
  const missing = Object.entries(CAPS)
    .filter(([, bit]) => (caps & (1n << BigInt(bit))) === 0n)
    .map(([n]) => n);
  if (missing.length === 0) return result("pass", `${whose} has CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN`);
  return result(
    "fail",
    `${whose} lacks ${missing.join(", ")}: loading and attaching eBPF programs, and entering pod network namespaces, need them`,
    "run as root (sudo), or give the agent's container privileged: true (or those capabilities)",
  );
}

function checkLibbpf(p: NodeProbe): CheckResult {
  try {
    return node("libbpf", "pass", `libbpf.so.1 loads (version ${p.loadLibbpf()})`);
  } catch (e) {
    return node("libbpf", "fail", errorMessage(e).replace(/: run 'apt-get.*$/, ""), "apt-get install -y libbpf1");
  }
}

/** True when a file starts like an eBPF ELF object (ELF magic, e_machine EM_BPF = 247). */
export function isBpfObject(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const head = Buffer.alloc(20);
    if (readSync(fd, head, 0, 20, 0) < 20) return false;
    return head.readUInt32BE(0) === 0x7f454c46 && head.readUInt16LE(18) === 247;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function checkObjects(p: NodeProbe): CheckResult {
  const bad = OBJECT_FILES.filter((f) => !isBpfObject(join(p.objectDir, f)));
  if (bad.length === 0) return node("BPF objects", "pass", `${OBJECT_FILES.length} prebuilt objects in ${p.objectDir}`);
  return node(
    "BPF objects",
    "fail",
    `missing or not eBPF objects in ${p.objectDir}: ${bad.join(", ")}`,
    "build them where the sources are ('npm run build' or 'bash scripts/build-bpf') and ship bpf/build/ with weft, or set WEFT_BPF_OBJECT_DIR",
  );
}

function checkClang(p: NodeProbe): CheckResult {
  const path = p.clang();
  return node(
    "clang",
    "info",
    `not needed on nodes: the BPF objects are prebuilt (clang is a build-time tool)${path ? `; installed at ${path}` : ""}`,
  );
}

/** Every node prerequisite, in the order an operator fixes them. */
export function nodeChecks(p: NodeProbe = systemProbe()): CheckResult[] {
  return [
    checkKernel(p),
    checkBtf(p),
    checkCgroup(p),
    checkBpffs(p),
    checkCaps(p.statusText),
    checkLibbpf(p),
    checkObjects(p),
    checkClang(p),
  ];
}
