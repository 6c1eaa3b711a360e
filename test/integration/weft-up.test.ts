import { existsSync, readdirSync } from "node:fs";
import { afterAll, expect, it } from "vitest";
import { run } from "../../native/exec.js";
import { forceDown, leftovers } from "../helpers/cluster.js";
import { describePrivileged } from "../helpers/privileged.js";
import { testClusterName, weft, weftOk } from "../helpers/weft.js";

const C = testClusterName("u");

describePrivileged("weft up / weft down (the README's first command)", () => {
  afterAll(async () => {
    await forceDown(C);
  });

  it("brings up the mesh with Bookinfo and traffic flowing, then removes every trace", async () => {
    const up = await weft(["up", "--name", C], { timeoutMs: 120_000 });
    // stderr carries only progress lines, one per phase, before the phase runs.
    const progress = up.stderr.split("\n").filter(Boolean);
    expect(
      progress.every((l) => l.startsWith("… ")),
      up.stderr,
    ).toBe(true);
    expect(progress.map((l) => l.split(" ")[1])).toEqual(["creating", "starting", "deploying"]);
    expect(up.code).toBe(0);
    expect(up.stdout).toMatch(/2 agents ready/);
    expect(up.stdout).toMatch(/traffic flowing \(reviews v[123] answered\)/);
    expect(up.stdout).toMatch(/Try:/);
    // The demo's own traffic keeps going through the mesh: productpage answers with reviews and details.
    const page = await weftOk([
      "cluster",
      "exec",
      "--name",
      C,
      "bookinfo/traffic",
      "--",
      "curl",
      "-s",
      "-m",
      "5",
      "http://10.96.0.10:9080/productpage",
    ]);
    expect(JSON.parse(page)).toMatchObject({ product: "The Comedy of Errors", details: { author: "William Shakespeare" } });
    const progs = (await run("bpftool", ["-j", "prog", "show"])).stdout;
    expect(progs).toMatch(/weft_connect4/);
    expect(existsSync(`/sys/fs/bpf/${C}-node1`)).toBe(true);
    // This cluster's own links (not other clusters' on the same machine): the ones pinned for its nodes.
    const ourLinks: number[] = [];
    for (const dir of [`/sys/fs/bpf/${C}-node1`, `/sys/fs/bpf/${C}-node2`]) {
      for (const pin of readdirSync(dir).filter((f) => f.startsWith("link") || f.startsWith("guard"))) {
        const r = await run("bpftool", ["-j", "link", "show", "pinned", `${dir}/${pin}`], { allowFailure: true });
        const id = (JSON.parse(r.stdout || "{}") as { id?: number }).id;
        if (id) ourLinks.push(id);
      }
    }
    expect(ourLinks.length).toBeGreaterThan(4);

    const again = await weft(["up", "--name", C]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already up/);

    const down = await weftOk(["down", "--name", C]);
    expect(down).toMatch(/removed 11 netns/);
    expect(leftovers(C)).toEqual([]);
    expect(readdirSync("/run/weft").filter((f) => f.includes(`${C}-`) || f === C)).toEqual([]);
    const { stdout: ps } = await run("ps", ["-eo", "args"]);
    expect(ps.split("\n").filter((l) => l.includes(`--name ${C}`) || l.includes(`${C}-node`) || l.includes(`/run/weft/${C}/`))).toEqual([]);
    // None of this cluster's links is attached any more (pins and cgroups are gone).
    const links = JSON.parse((await run("bpftool", ["-j", "link", "show"])).stdout || "[]") as { id: number }[];
    expect(links.filter((l) => ourLinks.includes(l.id))).toEqual([]);
  });
});
