import { afterAll, expect, it } from "vitest";
import { run } from "../../native/exec.js";
import { forceDown, leftovers } from "../helpers/cluster.js";
import { describePrivileged } from "../helpers/privileged.js";
import { testClusterName, WEFT_BIN, weft } from "../helpers/weft.js";

describePrivileged("local cluster: clear errors, nothing half-built", () => {
  const name = testClusterName("e");
  afterAll(async () => {
    await forceDown(name);
  });

  it("says it needs root when run as an ordinary user", async () => {
    // An unprivileged uid that may still read the checkout (CI clones it anywhere, even 0700 dirs).
    const asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"];
    const r = await run("setpriv", [...asNobody, process.execPath, WEFT_BIN, "cluster", "up", "--name", name], { allowFailure: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/must run as root/);
    expect(leftovers(name)).toEqual([]);
  });

  it("refuses ranges the host already routes (address clash), building nothing", async () => {
    const { stdout } = await run("ip", ["-j", "-4", "route", "show", "scope", "link"]);
    const hostNet = (JSON.parse(stdout) as { dst: string }[]).find((r) => /\/24$/.test(r.dst))?.dst;
    if (!hostNet) {
      // No /24 on this host to clash with: clash between the cluster's own ranges instead.
      const r = await weft(["cluster", "up", "--name", name, "--pod-cidr", "10.250.0.0/16"]);
      expect(r.stderr).toMatch(/address clash/);
      return;
    }
    const r = await weft(["cluster", "up", "--name", name, "--node-cidr", hostNet]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/address clash: the host already routes/);
    expect(leftovers(name)).toEqual([]);
  });

  it("names the bad option for invalid sizes and overlapping ranges", async () => {
    const zero = await weft(["cluster", "up", "--name", name, "--nodes", "0"]);
    expect(zero.code).not.toBe(0);
    expect(zero.stderr).toMatch(/--nodes '0'/);
    const overlap = await weft(["cluster", "up", "--name", name, "--service-cidr", "10.244.0.0/16"]);
    expect(overlap.stderr).toMatch(/address clash: pod-cidr 10.244.0.0\/16 overlaps service-cidr/);
    const badName = await weft(["cluster", "up", "--name", "prod"]);
    expect(badName.stderr).toMatch(/name 'prod'/);
    expect(leftovers(name)).toEqual([]);
  });

  it("reports commands against a cluster that is not there", async () => {
    const r = await weft(["cluster", "status", "--name", name]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`no cluster '${name}' is running`));
  });
});
