/**
 * Redirect's bad cases, each with a clear error and nothing else disturbed: not root, missing
 * objects, pinned state from an incompatible ABI (replaced, never read), a second owner of the
 * pin directory, unresolvable pods, a bad pods file.
 */
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { redirectConfig } from "../../agent/redirect/defaults.js";
import { inspect } from "../../agent/redirect/inspect.js";
import { BpfRedirector } from "../../agent/redirect/redirector.js";
import type { PodRedirect } from "../../agent/redirect/types.js";
import { createCgroup } from "../../native/cgroup.js";
import { run } from "../../native/exec.js";
import { forceDown } from "../helpers/cluster.js";
import { describePrivileged } from "../helpers/privileged.js";
import { bpftoolLinkIds, writePods } from "../helpers/redirect-cluster.js";
import { waitFor } from "../helpers/wait.js";
import { ROOT, testClusterName, WEFT_BIN, weft, weftSpawn } from "../helpers/weft.js";

const AS_NOBODY = ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"];

describePrivileged("redirect: clear errors for bad cases", () => {
  // Named like a cluster so `weft cluster down --name` also finds these cgroups and pins.
  const name = testClusterName("re");
  const pinDir = `/sys/fs/bpf/${name}-node1`;
  const dir = mkdtempSync(join(tmpdir(), "weft-redirect-err-"));
  let pods = "";
  let system = "";
  let podCgroups: string[] = [];
  const cfg = () => redirectConfig({ podCgroupParent: pods, proxyCgroup: system, proxyAddress: "10.244.1.1", pinDir });
  const open: BpfRedirector[] = [];

  beforeAll(async () => {
    await forceDown(name);
    pods = createCgroup(`${name}/node1/pods`);
    system = createCgroup(`${name}/node1/system`);
    podCgroups = [createCgroup(`${name}/node1/pods/default.a`), createCgroup(`${name}/node1/pods/default.b`)];
  });
  afterEach(async () => {
    for (const r of open.splice(0)) await r.uninstall().catch(() => undefined);
  });
  afterAll(async () => {
    await forceDown(name);
    rmSync(dir, { recursive: true, force: true });
  });

  function pod(i: number, extra: Partial<PodRedirect> = {}): PodRedirect {
    return {
      uid: `u${i}`,
      namespace: "default",
      name: `p${i}`,
      cgroupPath: podCgroups[i] as string,
      ip: `10.244.1.${i + 2}`,
      hostInterface: "",
      capture: true,
      inbound: "off",
      ...extra,
    };
  }

  it("says it needs root, and libbpf's EPERM names the capabilities", async () => {
    const args = [
      "redirect",
      "serve",
      "--pods",
      join(dir, "p.json"),
      "--pod-cgroup-parent",
      pods,
      "--proxy-cgroup",
      system,
      "--proxy-address",
      "10.244.1.1",
      "--pin-dir",
      pinDir,
    ];
    const r = await run("setpriv", [...AS_NOBODY, process.execPath, WEFT_BIN, ...args], { allowFailure: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/weft redirect serve must run as root/);

    const script = `const { BpfObject } = await import(${JSON.stringify(join(ROOT, "dist", "native", "bpf-object.js"))});
      try { const o = BpfObject.open(${JSON.stringify(join(ROOT, "bpf", "build", "connect.o"))}); o.load(); console.log("loaded"); } catch (e) { console.log(e.name + ": " + e.message); }`;
    const lib = await run("setpriv", [...AS_NOBODY, process.execPath, "--input-type=module", "-e", script], { allowFailure: true });
    expect(lib.stdout).toMatch(/^BpfError: load BPF object .*connect\.o.*: EPERM: the agent needs CAP_BPF and CAP_NET_ADMIN/m);
    expect(existsSync(pinDir)).toBe(false);
  });

  it("names a missing object file and how to build it, pinning nothing", async () => {
    const r = await weft([
      "redirect",
      "serve",
      "--pods",
      join(dir, "p.json"),
      "--pod-cgroup-parent",
      pods,
      "--proxy-cgroup",
      system,
      "--proxy-address",
      "10.244.1.1",
      "--pin-dir",
      pinDir,
      "--object-dir",
      join(dir, "no-objects"),
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`BPF object ${join(dir, "no-objects", "connect.o")} is missing: build it with 'npm run build'`);
    expect(r.stderr).not.toMatch(/not running as root|cgroup/);
    expect(existsSync(pinDir)).toBe(false);
  });

  it("replaces pinned state of another ABI version instead of reading it", async () => {
    // What an older agent with another layout could have left: ABI 999, a 12-byte pod value.
    await run("mkdir", ["-p", pinDir]);
    await run("bpftool", [
      "map",
      "create",
      join(pinDir, "weft_meta"),
      "type",
      "array",
      "key",
      "4",
      "value",
      "16",
      "entries",
      "1",
      "name",
      "weft_meta",
    ]);
    const meta = ["0x74", "0x66", "0x65", "0x77", "0xe7", "0x03", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0"]; // magic 'weft' LE, ABI 999
    await run("bpftool", ["map", "update", "pinned", join(pinDir, "weft_meta"), "key", "0", "0", "0", "0", "value", ...meta]);
    await run("bpftool", [
      "map",
      "create",
      join(pinDir, "weft_pods"),
      "type",
      "hash",
      "key",
      "8",
      "value",
      "12",
      "entries",
      "16",
      "name",
      "weft_pods",
    ]);

    const seen = inspect(pinDir);
    expect(seen.state).toBe("incompatible");
    expect(seen.reason).toBe("pinned state has ABI version 999, this agent speaks 1");
    expect(seen.pods).toEqual([]); // never read with the wrong layout

    const r = new BpfRedirector(cfg());
    open.push(r);
    await r.start();
    expect(r.lastStart?.replaced).toBe("pinned state has ABI version 999, this agent speaks 1");
    expect(r.lastStart?.created).toHaveLength(8);
    const after = inspect(pinDir);
    expect(after.state).toBe("compatible");
    const res = await r.reconcile([pod(0)]);
    expect(res.enrolled).toEqual(["u0"]);
    expect(inspect(pinDir).pods).toEqual([{ cgroupId: expect.any(String), flags: 1, ip: "10.244.1.2" }]);
  });

  it("replaces state whose ABI number matches but whose map layout does not, and a pin dir without weft_meta", async () => {
    const r = new BpfRedirector(cfg());
    await r.start();
    r.close();
    // Same ABI, but weft_tuples swapped for a map of another shape.
    rmSync(join(pinDir, "weft_tuples"));
    await run("bpftool", [
      "map",
      "create",
      join(pinDir, "weft_tuples"),
      "type",
      "hash",
      "key",
      "12",
      "value",
      "24",
      "entries",
      "8",
      "name",
      "weft_tuples",
    ]);
    expect(inspect(pinDir).reason).toMatch(
      /^pinned map weft_tuples is type 1 key 12 value 24 max 8, expected type 9 key 12 value 16 max 65536/,
    );
    const again = new BpfRedirector(cfg());
    open.push(again);
    await again.start();
    expect(again.lastStart?.replaced).toMatch(/pinned map weft_tuples/);
    await again.uninstall();
    open.pop();

    await run("mkdir", ["-p", pinDir]);
    await run("bpftool", [
      "map",
      "create",
      join(pinDir, "something"),
      "type",
      "array",
      "key",
      "4",
      "value",
      "4",
      "entries",
      "1",
      "name",
      "something",
    ]);
    const third = new BpfRedirector(cfg());
    open.push(third);
    await third.start();
    expect(third.lastStart?.replaced).toMatch(/no weft_meta among the pins/);
  });

  it("on restart, detaches links of hooks this version does not have (same ABI)", async () => {
    const first = new BpfRedirector(cfg());
    await first.start();
    first.close();
    // A link pinned under a name no hook of this version uses, as an older build could leave.
    renameSync(join(pinDir, "link_weft_getpeer6"), join(pinDir, "link_weft_retired"));
    const retiredId = inspect(pinDir).links.find((l) => l.pin === "link_weft_retired")?.linkId;
    expect(retiredId).toBeGreaterThan(0);
    const second = new BpfRedirector(cfg());
    open.push(second);
    await second.start();
    expect(second.lastStart?.created).toEqual(["weft_getpeer6"]);
    expect(second.lastStart?.swapped).toHaveLength(7);
    expect(inspect(pinDir).links.map((l) => l.pin)).not.toContain("link_weft_retired");
    expect(await bpftoolLinkIds()).not.toContain(retiredId);
  });

  it("refuses a second live owner of the pin directory", async () => {
    const a = new BpfRedirector(cfg());
    open.push(a);
    await a.start();
    const b = new BpfRedirector(cfg());
    await expect(b.start()).rejects.toThrow(/is managed by another live process/);
    expect(inspect(pinDir).state).toBe("compatible");
  });

  it("reports pods it cannot resolve and applies the rest; a failed pod keeps its entries", async () => {
    const r = new BpfRedirector(cfg());
    open.push(r);
    await r.start();
    expect((await r.reconcile([pod(0), pod(1)])).enrolled.sort()).toEqual(["u0", "u1"]);
    const res = await r.reconcile([
      pod(0),
      pod(1, { cgroupPath: join(pods, "default.gone") }),
      pod(2, { cgroupPath: podCgroups[1] as string, inbound: "strict", hostInterface: "weft-nope0" }),
      pod(3, { ip: "10.244.1.300", cgroupPath: podCgroups[0] as string }),
    ]);
    expect(res.failed.map((f) => f.uid).sort()).toEqual(["u1", "u2", "u3"]);
    expect(res.failed.find((f) => f.uid === "u1")?.error).toBe(
      `default/p1: cgroup ${join(pods, "default.gone")} does not exist (pod gone, or a wrong --pod-cgroup-parent)`,
    );
    expect(res.failed.find((f) => f.uid === "u2")?.error).toMatch(/look up interface 'weft-nope0': ENODEV/);
    expect(res.failed.find((f) => f.uid === "u3")?.error).toBe("default/p3: ip '10.244.1.300' is not an IPv4 address");
    // u1 failed to resolve: its entry stays (no silent fail-open); nothing else changed.
    expect(res.removed).toEqual([]);
    expect(
      inspect(pinDir)
        .pods.map((p) => p.ip)
        .sort(),
    ).toEqual(["10.244.1.2", "10.244.1.3"]);
  });

  it("serve rejects a bad pods file whole and keeps the last good set", async () => {
    const file = join(dir, "serve-pods.json");
    writePods(file, [pod(0)]);
    const child = weftSpawn([
      "redirect",
      "serve",
      "--pods",
      file,
      "--pod-cgroup-parent",
      pods,
      "--proxy-cgroup",
      system,
      "--proxy-address",
      "10.244.1.1",
      "--pin-dir",
      pinDir,
    ]);
    let out = "";
    child.stdout?.on("data", (d) => {
      out += d;
    });
    child.stderr?.on("data", (d) => {
      out += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    try {
      await waitFor("serve applied the file", () => inspect(pinDir).pods.length === 1, 15_000);
      writeFileSync(file, '[{"uid": "u9", "capture": "yes"}');
      await waitFor("rejection logged", () => out.includes("pods file rejected"), 10_000);
      expect(out).toContain(`pods file ${file}: not valid JSON`);
      writeFileSync(file, JSON.stringify([{ ...pod(1), inbound: "loose" }]));
      await waitFor("second rejection logged", () => out.includes("[0].inbound: 'loose' must be off, permissive or strict"), 10_000);
      expect(inspect(pinDir).pods.map((p) => p.ip)).toEqual(["10.244.1.2"]);
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
    expect(readFileSync(file, "utf8")).toContain("loose");
    // SIGTERM leaves the pins: capture goes on without the process.
    expect(inspect(pinDir).links).toHaveLength(8);
    await weft(["agent", "uninstall", "--pin-dir", pinDir]);
    expect(existsSync(pinDir)).toBe(false);
  });
});
