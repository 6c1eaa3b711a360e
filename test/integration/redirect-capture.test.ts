/**
 * eBPF capture on the local cluster, end to end with real programs: an enrolled pod's connects
 * land on the proxy stand-in with the original destination on both sides; the STRICT guard;
 * enrol/unenrol without touching established connections; restart with programs swapped in
 * place; uninstall leaving nothing behind.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { redirectConfig } from "../../agent/redirect/defaults.js";
import { inspect } from "../../agent/redirect/inspect.js";
import { BpfRedirector } from "../../agent/redirect/redirector.js";
import { cgroup2Root } from "../../native/cgroup.js";
import { netnsPath } from "../../native/netns.js";
import { signal, waitGone } from "../../native/proc.js";
import type { PodPolicy } from "../../scripts/cluster/pod-redirects.js";
import { forceDown, readState, startEcho } from "../helpers/cluster.js";
import { describePrivileged } from "../helpers/privileged.js";
import {
  acceptedView,
  bpftoolLinkIds,
  bpftoolWeftPrograms,
  connectFrom,
  hold,
  nodePods,
  pinDirOf,
  startProxyStandIn,
  startServe,
  waitLog,
  waitPinned,
  writePods,
} from "../helpers/redirect-cluster.js";
import { waitFor } from "../helpers/wait.js";
import { testClusterName, weftOk } from "../helpers/weft.js";

describePrivileged("redirect: eBPF capture on a 2-node cluster", () => {
  const name = testClusterName("rc");
  const pinDir = pinDirOf(name, 1);
  const dir = mkdtempSync(join(tmpdir(), "weft-redirect-"));
  const podsFile = join(dir, "pods.json");
  const ip = (pod: string) => readState(name).pods.find((p) => p.name === pod)?.ip as string;
  let policies: Record<string, PodPolicy> = {};
  let servePid = 0;
  let proxyPid = 0;

  /** Writes the node-1 pods file from `policies` and waits until the maps show it. */
  async function apply(next: Record<string, PodPolicy>): Promise<void> {
    policies = next;
    const pods = nodePods(name, 1, (n) => policies[n] ?? { capture: false, inbound: "off" });
    writePods(podsFile, pods);
    const wantCapture = pods
      .filter((p) => p.capture)
      .map((p) => p.ip)
      .sort();
    const wantGuard = pods
      .filter((p) => p.inbound !== "off")
      .map((p) => `${p.ip}=${p.inbound}`)
      .sort();
    await waitPinned(pinDir, `maps to hold capture ${wantCapture} guard ${wantGuard}`, (s) => {
      const cap = s.pods.map((p) => p.ip).sort();
      const guard = s.guard.map((g) => `${g.ip}=${g.mode}`).sort();
      return JSON.stringify(cap) === JSON.stringify(wantCapture) && JSON.stringify(guard) === JSON.stringify(wantGuard);
    });
  }

  beforeAll(async () => {
    await forceDown(name);
    await weftOk(["cluster", "up", "--name", name, "--nodes", "2", "--pods-per-node", "3"]);
    for (const pod of ["n1-p2", "n1-p3", "n2-p1", "n2-p2"]) await startEcho(name, pod, 7000);
    // A loopback-only echo inside the enrolled pod: loopback must never be captured.
    await weftOk([
      "cluster",
      "exec",
      "--name",
      name,
      "--detach",
      "n1-p1",
      "--",
      process.execPath,
      join(import.meta.dirname, "..", "helpers", "probe.mjs"),
      "echo-server",
      "7002",
      "127.0.0.1",
    ]);
    proxyPid = await startProxyStandIn(name, 1);
    policies = { "n1-p1": { capture: true, inbound: "off" } };
    writePods(
      podsFile,
      nodePods(name, 1, (n) => policies[n] ?? { capture: false, inbound: "off" }),
    );
    servePid = await startServe(name, 1, podsFile, ["--exclude", `${ip("n2-p2")}/32`]);
    await waitLog(name, servePid, "redirect started");
    await waitPinned(pinDir, "n1-p1 enrolled", (s) => s.pods.length === 1);
    // The echo servers are up once a direct connect from a non-enrolled pod works.
    for (const pod of ["n1-p2", "n1-p3", "n2-p1", "n2-p2"]) {
      await waitFor(`echo on ${pod}`, async () => (await connectFrom(name, "n1-p3", ip(pod), 7000, "x")).ok);
    }
  });

  afterAll(async () => {
    await forceDown(name);
    rmSync(dir, { recursive: true, force: true });
  });

  it("lands an enrolled pod's connects (other node and same node) on the proxy, with the original destination on both sides", async () => {
    for (const target of ["n2-p1", "n1-p2"]) {
      const r = await connectFrom(name, "n1-p1", ip(target), 7000, "hello");
      expect(r.ok, JSON.stringify(r)).toBe(true);
      const seen = acceptedView(r);
      // The proxy's accepted socket reports the original destination as its local address (getsockname4)…
      expect(seen, `reply ${r.reply}`).toMatchObject({ local: ip(target), localPort: 7000, remote: ip("n1-p1"), remotePort: r.localPort });
      // …and the app sees the address it dialled as its peer (getpeername4), though it talks to the proxy.
      expect(r.remoteAddress).toBe(ip(target));
      expect(r.remotePort).toBe(7000);
      expect(r.reply?.endsWith("hello")).toBe(true);
    }
    const s = inspect(pinDir);
    expect(s.stats.captured).toBeGreaterThanOrEqual(2);
    expect(s.stats.tuple_recorded).toBeGreaterThanOrEqual(2);
    expect(s.stats.sockname).toBeGreaterThanOrEqual(2);
    expect(s.stats.peername).toBeGreaterThanOrEqual(2);
  });

  it("binds a captured connection to its pod's cgroup: a pod using another pod's address is refused at connect or never recorded", async () => {
    const pod = (args: string[]) => weftOk(["cluster", "exec", "--name", name, "n1-p1", "--", ...args]);
    const victim = ip("n1-p2");
    const before = inspect(pinDir).stats;
    // CAP_NET_ADMIN in the pod: it gives itself the victim's address, as an attacker would.
    await pod(["ip", "addr", "add", `${victim}/32`, "dev", "eth0"]);
    try {
      // Bound explicitly to the victim's address: connect4 refuses (EPERM), nothing reaches the proxy.
      const bound = await connectFrom(name, "n1-p1", ip("n2-p1"), 7000, "spoof", 3000, victim);
      expect(bound, JSON.stringify({ bound, stats: inspect(pinDir).stats })).toMatchObject({ ok: false, code: "EPERM" });
      // Bound to its own address it is captured as usual (the check is not a blanket refusal of bind).
      const own = await connectFrom(name, "n1-p1", ip("n2-p1"), 7000, "own", 3000, ip("n1-p1"));
      expect(acceptedView(own), JSON.stringify(own)).toMatchObject({ local: ip("n2-p1"), remote: ip("n1-p1") });

      // Unbound, but routed to leave from the victim's address: the kernel picks the source after
      // connect4, so sockops refuses to record the tuple and the proxy learns no destination.
      await pod(["ip", "route", "replace", "10.244.1.1/32", "dev", "eth0", "src", victim]);
      const recordedBefore = inspect(pinDir).stats.tuple_recorded ?? 0;
      const routed = await connectFrom(name, "n1-p1", ip("n2-p1"), 7000, "spoof", 2000);
      expect(acceptedView(routed), JSON.stringify(routed)).toBeNull();
      const after = inspect(pinDir).stats;
      expect(after.source_spoofed).toBe((before.source_spoofed ?? 0) + 1);
      expect(after.source_mismatch).toBeGreaterThanOrEqual((before.source_mismatch ?? 0) + 1);
      expect(after.tuple_recorded).toBe(recordedBefore);
    } finally {
      await pod(["ip", "route", "del", "10.244.1.1/32"]).catch(() => undefined);
      await pod(["ip", "addr", "del", `${victim}/32`, "dev", "eth0"]);
    }
    const clean = await connectFrom(name, "n1-p1", ip("n2-p1"), 7000, "clean");
    expect(acceptedView(clean)).toMatchObject({ local: ip("n2-p1"), remote: ip("n1-p1") });
  });

  it("does not capture a non-enrolled pod, the proxy's own connections, loopback or excluded destinations", async () => {
    const plain = await connectFrom(name, "n1-p2", ip("n2-p1"), 7000, "direct");
    expect(plain).toMatchObject({ ok: true, reply: "direct", remoteAddress: ip("n2-p1"), localAddress: ip("n1-p2") });

    // The listener itself dials a pod: it must reach the pod directly (the DIAL answer is the pod's echo).
    const viaProxy = await connectFrom(name, "n1-p1", ip("n2-p1"), 7000, `DIAL ${ip("n1-p3")} 7000\\n`);
    const dial = JSON.parse((viaProxy.reply ?? "").split("\n")[1] ?? "{}");
    expect(dial).toMatchObject({ ok: true, reply: "hello", local: "10.244.1.1" });

    const loop = await connectFrom(name, "n1-p1", "127.0.0.1", 7002, "loop");
    expect(loop).toMatchObject({ ok: true, reply: "loop", remoteAddress: "127.0.0.1" });

    const excluded = await connectFrom(name, "n1-p1", ip("n2-p2"), 7000, "excluded");
    expect(excluded).toMatchObject({ ok: true, reply: "excluded", remoteAddress: ip("n2-p2") });

    const s = inspect(pinDir);
    expect(s.excluded).toEqual([`${ip("n2-p2")}`]);
    expect(s.stats.loopback).toBeGreaterThanOrEqual(1);
    expect(s.stats.excluded).toBeGreaterThanOrEqual(1);
    expect(s.stats.not_enrolled).toBeGreaterThanOrEqual(1);
    expect(s.stats.sock_marked).toBeGreaterThanOrEqual(1);
  });

  it("STRICT drops plaintext SYNs to an enrolled pod from another node or a non-enrolled pod, lets the proxy's marked ones in; PERMISSIVE lets all in", async () => {
    await apply({ "n1-p1": { capture: true, inbound: "off" }, "n1-p2": { capture: false, inbound: "strict" } });
    const tcx = inspect(pinDir).links.filter((l) => l.kind === "tcx");
    expect(tcx).toHaveLength(1);
    expect(tcx[0]?.progName).toBe("weft_tcx_guard");

    const fromOtherNode = await connectFrom(name, "n2-p1", ip("n1-p2"), 7000, "x", 1500);
    expect(fromOtherNode).toMatchObject({ ok: false, code: "ETIMEDOUT" });
    const fromSameNode = await connectFrom(name, "n1-p3", ip("n1-p2"), 7000, "x", 1500);
    expect(fromSameNode).toMatchObject({ ok: false, code: "ETIMEDOUT" });
    // The proxy (sock_create marked its socket) gets through.
    const viaProxy = await connectFrom(name, "n1-p1", ip("n2-p1"), 7000, `DIAL ${ip("n1-p2")} 7000\\n`);
    expect(JSON.parse((viaProxy.reply ?? "").split("\n")[1] ?? "{}")).toMatchObject({ ok: true, reply: "hello" });
    const strictStats = inspect(pinDir).stats;
    expect(strictStats.guard_drop).toBeGreaterThanOrEqual(2);
    expect(strictStats.guard_marked).toBeGreaterThanOrEqual(1);

    await apply({ "n1-p1": { capture: true, inbound: "off" }, "n1-p2": { capture: false, inbound: "permissive" } });
    const permissive = await connectFrom(name, "n2-p1", ip("n1-p2"), 7000, "let in", 1500);
    expect(permissive).toMatchObject({ ok: true, reply: "let in" });
    expect(inspect(pinDir).stats.guard_permissive).toBeGreaterThanOrEqual(1);
  });

  it("enrol and unenrol change only new connects: established ones (captured, direct, inbound) keep flowing", async () => {
    const captured = hold(name, "n1-p1", ip("n2-p1"), 7000);
    const direct = hold(name, "n1-p3", ip("n2-p1"), 7000);
    const inbound = hold(name, "n2-p1", ip("n1-p2"), 7000);
    await Promise.all([captured.connected, direct.connected, inbound.connected]);

    // Unenrol n1-p1, enrol n1-p3, make n1-p2 STRICT (its plaintext inbound connection is established).
    await apply({ "n1-p3": { capture: true, inbound: "off" }, "n1-p2": { capture: false, inbound: "strict" } });

    const now = await connectFrom(name, "n1-p1", ip("n2-p1"), 7000, "now direct");
    expect(now).toMatchObject({ ok: true, reply: "now direct" });
    const enrolled = await connectFrom(name, "n1-p3", ip("n2-p1"), 7000, "now captured");
    expect(acceptedView(enrolled)).toMatchObject({ local: ip("n2-p1"), localPort: 7000, remote: ip("n1-p3") });

    for (const [what, h] of [
      ["captured", captured],
      ["direct", direct],
      ["inbound to a pod turned STRICT", inbound],
    ] as const) {
      const r = await h.stop();
      expect(r, what).toMatchObject({ ok: true, error: null });
      expect(r.pings, what).toBeGreaterThan(5);
    }
    await apply({ "n1-p1": { capture: true, inbound: "off" }, "n1-p2": { capture: false, inbound: "strict" } });
  });

  it("survives SIGKILL: capture continues (failing closed without a proxy), and a new agent swaps programs in place", async () => {
    const before = inspect(pinDir);
    const oldProgIds = before.links.map((l) => l.progId);
    expect(before.links).toHaveLength(9); // 8 cgroup hooks + the guard on n1-p2's veth

    signal(servePid, "SIGKILL");
    expect(await waitGone([servePid], 5000)).toEqual([]);
    const whileDown = await connectFrom(name, "n1-p1", ip("n2-p1"), 7000, "still captured");
    expect(acceptedView(whileDown)).toMatchObject({ local: ip("n2-p1"), localPort: 7000 });

    // No agent and no proxy: a captured connect is refused, never let through to the pod.
    signal(proxyPid, "SIGKILL");
    expect(await waitGone([proxyPid], 5000)).toEqual([]);
    const closed = await connectFrom(name, "n1-p1", ip("n2-p1"), 7000, "x", 2000);
    expect(closed).toMatchObject({ ok: false, code: "ECONNREFUSED" });
    proxyPid = await startProxyStandIn(name, 1);

    servePid = await startServe(name, 1, podsFile);
    const started = await waitLog(name, servePid, "redirect started");
    expect(started.created).toEqual([]);
    expect((started.swapped as string[]).length).toBe(8);
    expect(started.replaced).toBeNull();
    await waitLog(name, servePid, "reconciled");

    const after = inspect(pinDir);
    for (const l of before.links) {
      const now = after.links.find((x) => x.pin === l.pin);
      expect(now?.linkId, `${l.pin} link id`).toBe(l.linkId);
      expect(now?.progId, `${l.pin} prog id`).not.toBe(l.progId);
    }
    expect(after.maps.map((m) => `${m.name}:${m.id}`)).toEqual(before.maps.map((m) => `${m.name}:${m.id}`));
    expect(after.pods).toEqual(before.pods);
    const live = (await bpftoolWeftPrograms()).map((p) => p.id);
    for (const id of oldProgIds) expect(live, `old program ${id} freed`).not.toContain(id);

    const r = await connectFrom(name, "n1-p1", ip("n2-p1"), 7000, "after restart");
    expect(acceptedView(r)).toMatchObject({ local: ip("n2-p1"), localPort: 7000 });
    // Enrolment changes after the restart apply.
    await apply({ "n1-p1": { capture: true, inbound: "off" }, "n1-p2": { capture: true, inbound: "off" } });
    const p2 = await connectFrom(name, "n1-p2", ip("n2-p1"), 7000, "p2");
    expect(acceptedView(p2)).toMatchObject({ local: ip("n2-p1"), remote: ip("n1-p2") });
    expect(inspect(pinDir).links.filter((l) => l.kind === "tcx")).toHaveLength(0);
  });

  it("uninstall detaches and unpins everything: bpftool sees none of it, and pods connect directly again", async () => {
    const before = inspect(pinDir);
    const progIds = before.links.map((l) => l.progId);
    const linkIds = before.links.map((l) => l.linkId);
    signal(servePid, "SIGTERM");
    expect(await waitGone([servePid], 5000)).toEqual([]);

    const out = await weftOk(["agent", "uninstall", "--pin-dir", pinDir]);
    expect(out).toMatch(/detached and removed 15 pins/);
    expect(existsSync(pinDir)).toBe(false);
    const progs = await bpftoolWeftPrograms();
    for (const id of progIds) expect(progs.map((p) => p.id)).not.toContain(id);
    const links = await bpftoolLinkIds();
    for (const id of linkIds) expect(links).not.toContain(id);

    const r = await connectFrom(name, "n1-p1", ip("n2-p1"), 7000, "direct again");
    expect(r).toMatchObject({ ok: true, reply: "direct again" });
    expect(await weftOk(["agent", "uninstall", "--pin-dir", pinDir])).toMatch(/nothing installed/);
  });

  it("an agent outside the node's netns attaches the guard inside it (setns for TCX)", async () => {
    const cg = join(cgroup2Root(), name, "node2");
    const r = new BpfRedirector(
      redirectConfig({
        podCgroupParent: join(cg, "pods"),
        proxyCgroup: join(cg, "system"),
        proxyAddress: "10.244.2.1",
        pinDir: pinDirOf(name, 2),
      }),
      { netnsPath: netnsPath(`${name}-node2`) },
    );
    try {
      await r.start();
      const res = await r.reconcile(nodePods(name, 2, (n) => (n === "n2-p1" ? { capture: false, inbound: "strict" } : null)));
      expect(res).toMatchObject({ enrolled: [readState(name).pods.find((p) => p.name === "n2-p1")?.uid], failed: [] });
      const guard = r.status().programs.filter((p) => p.name === "weft_tcx_guard");
      expect(guard).toHaveLength(1);
      expect(guard[0]?.attachedTo).toMatch(/^ifindex \d+ tcx egress$/);
      const dropped = await connectFrom(name, "n1-p2", ip("n2-p1"), 7000, "x", 1500);
      expect(dropped).toMatchObject({ ok: false, code: "ETIMEDOUT" });
      expect(r.stats().guard_drop).toBeGreaterThanOrEqual(1);
    } finally {
      await r.uninstall();
    }
    expect(existsSync(pinDirOf(name, 2))).toBe(false);
    expect(await connectFrom(name, "n1-p2", ip("n2-p1"), 7000, "open again")).toMatchObject({ ok: true, reply: "open again" });
  });
});
