import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterState } from "../../scripts/cluster/state.js";
import { DEFAULT_SPEC } from "../../scripts/cluster/topology.js";
import { weft } from "../helpers/weft.js";

// `weft cluster apply/delete` as a user runs it, against a recorded cluster state in a private run
// directory (WEFT_RUN_DIR): no namespaces or processes are needed to check what reaches the disk.
describe("weft cluster apply/delete: crafted inputs", () => {
  let root: string;
  let store: string;
  let env: NodeJS.ProcessEnv;
  const name = `weft-in${process.pid}`;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "weft-inputs-"));
    store = join(root, "store");
    const state: ClusterState = {
      version: 1,
      spec: { ...DEFAULT_SPEC, name },
      phase: "ready",
      createdAt: new Date().toISOString(),
      storeDir: store,
      nodes: [],
      namespaces: [],
      pods: [],
      services: [],
      processes: [],
      nextVethSeq: 1,
      nextVip: 1,
    };
    mkdirSync(join(root, "run", name), { recursive: true });
    writeFileSync(join(root, "run", name, "cluster.json"), JSON.stringify(state));
    writeFileSync(join(root, "precious.yaml"), "keep");
    env = { WEFT_RUN_DIR: join(root, "run") };
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const policy = (meta: string) => `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n${meta}spec: {}\n`;

  it("refuses a namespace that walks out of the store, writing and deleting nothing", async () => {
    const crafted = policy('  name: precious\n  namespace: "../.."\n');
    for (const verb of ["apply", "delete"]) {
      const r = await weft(["cluster", verb, "--name", name, "-f", "-"], { env, input: crafted });
      expect(r.code, verb).not.toBe(0);
      expect(r.stderr).toMatch(/- document 1: metadata.namespace '..\/..' is not a valid Kubernetes namespace name/);
    }
    expect(existsSync(join(root, "precious.yaml"))).toBe(true);
    expect(existsSync(store) ? readdirSync(store) : []).toEqual([]);
  });

  it("applies and deletes with -n like kubectl, and refuses a different namespace", async () => {
    const plain = policy("  name: deny\n");
    const applied = await weft(["cluster", "apply", "--name", name, "-n", "shop", "-f", "-"], { env, input: plain });
    expect(applied.stderr).toBe("");
    expect(applied.stdout).toBe("authorizationpolicy/shop/deny configured\n");
    expect(readdirSync(store)).toEqual(["authorizationpolicy.shop.deny.yaml"]);
    const other = await weft(["cluster", "apply", "--name", name, "-n", "web", "-f", "-"], {
      env,
      input: policy("  name: deny\n  namespace: shop\n"),
    });
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/namespace 'shop' does not match --namespace 'web'/);
    const deleted = await weft(["cluster", "delete", "--name", name, "--namespace", "shop", "-f", "-"], { env, input: plain });
    expect(deleted.stdout).toBe("authorizationpolicy/shop/deny deleted\n");
    expect(readdirSync(store)).toEqual([]);
  });
});
