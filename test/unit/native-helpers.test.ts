import { describe, expect, it } from "vitest";
import { cgroupLevel, parseCgroup2Mount } from "../../native/cgroup.js";
import { MissingToolError, requireTool, run } from "../../native/exec.js";
import { processStartTime } from "../../native/proc.js";

describe("native helpers", () => {
  it("counts a cgroup's level below the v2 root, as the kernel's ancestor lookup does", () => {
    expect(cgroupLevel("/sys/fs/cgroup", "/sys/fs/cgroup")).toBe(0);
    expect(cgroupLevel("/sys/fs/cgroup/kubepods.slice", "/sys/fs/cgroup")).toBe(1);
    expect(cgroupLevel("/sys/fs/cgroup/weft-e1/node1/pods/", "/sys/fs/cgroup")).toBe(3);
    expect(() => cgroupLevel("/tmp/x", "/sys/fs/cgroup")).toThrow(/not under the cgroup v2 root/);
  });

  it("finds the cgroup2 mount in pure and hybrid layouts", () => {
    expect(parseCgroup2Mount("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n")).toBe("/sys/fs/cgroup");
    const hybrid =
      "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
    expect(parseCgroup2Mount(hybrid)).toBe("/sys/fs/cgroup/unified");
    expect(parseCgroup2Mount("proc /proc proc rw 0 0\n")).toBeNull();
  });
  it("names the apt package of a missing tool", () => {
    expect(new MissingToolError("bpftool").message).toMatch(/apt-get install -y bpftool/);
    expect(new MissingToolError("ip").message).toMatch(/apt-get install -y iproute2/);
    expect(() => requireTool("weft-no-such-tool")).toThrow(MissingToolError);
  });
  it("reports a failing command with its stderr", async () => {
    await expect(run("sh", ["-c", "echo boom >&2; exit 3"])).rejects.toThrow(/exited with 3: boom/);
    expect((await run("sh", ["-c", "exit 4"], { allowFailure: true })).code).toBe(4);
  });
  it("reads a live process's start time and none for a dead pid", () => {
    expect(processStartTime(process.pid)).toMatch(/^\d+$/);
    expect(processStartTime(2 ** 22 + 1)).toBeNull();
  });
});
