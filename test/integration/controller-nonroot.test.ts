/**
 * The local controller runs without root (issue 13 item 6): on a 1-node netns cluster its process
 * has uid/gid 65532, no capability and no way to gain one; its state directory is its own (CA key
 * 0600); the agent, root with only its four capabilities (no CAP_DAC_OVERRIDE), reads its token
 * through the controller's group;
 * `weft cluster apply` (root) still reaches the controller through the store; and a token minted
 * by root with `weft controller token` stays the controller's.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { requireState } from "../../scripts/cluster/cluster.js";
import { CONTROLLER_GID, CONTROLLER_UID, controllerCommand } from "../../scripts/cluster/controller-user.js";
import { controllerDir } from "../../scripts/cluster/mesh.js";
import { forceDown } from "../helpers/cluster.js";
import { meshUp } from "../helpers/mesh.js";
import { describePrivileged } from "../helpers/privileged.js";
import { waitFor } from "../helpers/wait.js";
import { ROOT, testClusterName, weftOk } from "../helpers/weft.js";

const C = testClusterName("nonroot");
/** The agent's four capabilities (linux/capability.h numbers): net_admin, sys_admin, perfmon, bpf. */
const AGENT_CAPS = [12n, 21n, 38n, 39n].reduce((m, c) => m | (1n << c), 0n);

const POLICY = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: applied-as-root
  namespace: app
spec:
  action: ALLOW
  rules:
  - {}
`;

/** The fields of /proc/<pid>/status this test reads. */
function procStatus(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

function pidOf(what: string): number {
  const rec = requireState(C).processes.find((p) => p.what === what);
  if (!rec) throw new Error(`no recorded process '${what}'`);
  return rec.pid;
}

describePrivileged("the local controller runs without root (1 node)", () => {
  const dir = mkdtempSync(join(tmpdir(), "weft-nonroot-"));

  beforeAll(async () => {
    await meshUp(C, [{ ns: "app", name: "client", node: 1 }], ["app"], [], { nodes: 1 });
  });

  afterAll(async () => {
    await forceDown(C);
    rmSync(dir, { recursive: true, force: true });
  });

  it("its process has the controller's uid and gid, no capability, and no_new_privs", () => {
    const st = procStatus(pidOf("controller"));
    const ids = (s: string | undefined) => (s ?? "").split(/\s+/).map(Number);
    expect(ids(st.Uid)).toEqual([CONTROLLER_UID, CONTROLLER_UID, CONTROLLER_UID, CONTROLLER_UID]);
    expect(ids(st.Gid)).toEqual([CONTROLLER_GID, CONTROLLER_GID, CONTROLLER_GID, CONTROLLER_GID]);
    expect(st.Groups).toBe("");
    for (const set of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) expect(BigInt(`0x${st[set]}`), set).toBe(0n);
    expect(st.NoNewPrivs).toBe("1");
  });

  it("owns its state directory; the CA key is its alone; the agent reads its token through the group", () => {
    const d = controllerDir(C);
    const node = `${C}-node1`;
    const key = statSync(join(d, "ca", "root-key.pem"));
    expect({ uid: key.uid, mode: key.mode & 0o777 }).toEqual({ uid: CONTROLLER_UID, mode: 0o600 });
    const token = statSync(join(d, "tokens", `${node}.token`));
    expect({ uid: token.uid, gid: token.gid, mode: token.mode & 0o777 }).toEqual({
      uid: CONTROLLER_UID,
      gid: CONTROLLER_GID,
      mode: 0o640,
    });
    for (const sub of ["", "ca", "tokens"]) expect(statSync(join(d, sub)).uid, sub || ".").toBe(CONTROLLER_UID);

    // The agent is root with exactly its four capabilities (no CAP_DAC_OVERRIDE or
    // CAP_DAC_READ_SEARCH, no CAP_NET_RAW): the group is what lets it read its token.
    const agent = procStatus(pidOf(`agent ${node}`));
    for (const set of ["CapPrm", "CapEff", "CapBnd"]) expect(BigInt(`0x${agent[set]}`).toString(16), set).toBe(AGENT_CAPS.toString(16));
    expect((agent.Groups ?? "").split(/\s+/)).toContain(String(CONTROLLER_GID));
  });

  it("sees what `weft cluster apply` (root) writes to the store", async () => {
    const f = join(dir, "policy.yaml");
    writeFileSync(f, POLICY);
    await weftOk(["cluster", "apply", "--name", C, "-f", f]);
    await waitFor(
      "the policy on the agent",
      async () => {
        const rows = JSON.parse(await weftOk(["policies", "--node", `${C}-node1`, "-o", "json"])) as { name: string }[];
        return rows.some((r) => r.name === "applied-as-root");
      },
      10_000,
      100,
    );
  });

  it("a token minted by root with `weft controller token` belongs to the controller", async () => {
    const d = controllerDir(C);
    const path = (await weftOk(["controller", "--state-dir", d, "token", "--node", "extra-node"])).trim();
    expect(path).toBe(join(d, "tokens", "extra-node.token"));
    const st = statSync(path);
    expect({ uid: st.uid, gid: st.gid, mode: st.mode & 0o777 }).toEqual({ uid: CONTROLLER_UID, gid: CONTROLLER_GID, mode: 0o640 });
  });

  it("runs weft from a checkout below a directory only root may enter (a bind mount of its own), and names an unreadable one", () => {
    const closed = join(dir, "closed");
    const checkout = join(closed, "weft");
    const mountPoint = join(dir, "code");
    mkdirSync(checkout, { recursive: true });
    chmodSync(closed, 0o700);
    chmodSync(dir, 0o755); // the mount point's parents, like /run/weft/<cluster>, are open
    const bind = spawnSync("mount", ["--bind", ROOT, checkout], { encoding: "utf8" });
    expect(bind.status, bind.stderr).toBe(0);
    try {
      const argv = controllerCommand(checkout, mountPoint, ["--version"]);
      expect(argv[0]).toBe("unshare");
      const run = spawnSync(argv[0] as string, argv.slice(1), { encoding: "utf8", timeout: 30_000 });
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
      // The mount lived in the controller's namespace only.
      expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(` ${mountPoint} `);
    } finally {
      spawnSync("umount", [checkout]);
    }
    // Where the user can already reach the code, no namespace is made (the checkout itself may
    // sit below a 0700 directory, as CI's clone can: it is reached through an open path).
    const open = join(dir, "open");
    mkdirSync(open);
    const openBind = spawnSync("mount", ["--bind", ROOT, open], { encoding: "utf8" });
    expect(openBind.status, openBind.stderr).toBe(0);
    try {
      expect(controllerCommand(open, mountPoint, ["--version"])[0]).toBe("setpriv");
    } finally {
      spawnSync("umount", [open]);
    }
    const unreadable = join(closed, "private");
    mkdirSync(join(unreadable, "dist"), { recursive: true });
    mkdirSync(join(unreadable, "node_modules"));
    writeFileSync(join(unreadable, "package.json"), "{}", { mode: 0o600 });
    expect(() => controllerCommand(unreadable, mountPoint, ["--version"])).toThrow(
      `cannot read weft's code at ${join(unreadable, "package.json")}`,
    );
  });
});
