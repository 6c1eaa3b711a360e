import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { storePath } from "../../scripts/cluster/store.js";
import { applyUserObjects, deleteUserObjects, validateUserObjects } from "../../scripts/cluster/user-objects.js";

const policy = (ns: string | undefined, name = "deny") =>
  `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ${name}\n${ns === undefined ? "" : `  namespace: ${JSON.stringify(ns)}\n`}spec: {}\n`;

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  return "";
}

describe("weft cluster apply/delete inputs stay inside the store", () => {
  let root: string;
  let store: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "weft-store-"));
    store = join(root, "store");
    mkdirSync(store);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("refuses file names that leave the store", () => {
    expect(storePath(store, "a.b.yaml")).toBe(join(store, "a.b.yaml"));
    for (const bad of ["../x.yaml", "a/../../x.yaml", "/etc/x.yaml", "..", "a/b.yaml", "a\0.yaml"]) {
      expect(() => storePath(store, bad), bad).toThrow(/not a plain file name inside/);
    }
  });

  it("refuses crafted namespaces and names, writing nothing anywhere", () => {
    const victim = join(root, "victim.yaml");
    writeFileSync(victim, "keep");
    for (const ns of ["../..", "../../tmp", "a/b", "UPPER", "x".repeat(64), ""]) {
      const msg = errorOf(() => applyUserObjects(store, parseAllDocuments(policy(ns)), "p.yaml"));
      expect(msg, ns).toMatch(/p.yaml document 1: metadata.namespace .* is not a valid Kubernetes namespace name/);
    }
    expect(errorOf(() => applyUserObjects(store, parseAllDocuments(policy("shop", "../../victim")), "p.yaml"))).toMatch(
      /metadata.name '..\/..\/victim' is not a valid Kubernetes name/,
    );
    expect(errorOf(() => deleteUserObjects(store, parseAllDocuments(policy("..", "victim")), "p.yaml"))).toMatch(
      /not a valid Kubernetes namespace/,
    );
    expect(existsSync(victim)).toBe(true);
    expect(readdirSync(root).sort()).toEqual(["store", "victim.yaml"]);
    expect(readdirSync(store)).toEqual([]);
  });

  it("refuses kinds weft does not read and kinds the harness owns", () => {
    const odd = "apiVersion: v1\nkind: ../../Secret\nmetadata:\n  name: s\n";
    expect(errorOf(() => validateUserObjects(parseAllDocuments(odd), "p.yaml"))).toMatch(
      /document 1: kind ..\/..\/Secret \(v1\) is not one weft reads/,
    );
    const pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n";
    expect(errorOf(() => validateUserObjects(parseAllDocuments(pod), "p.yaml"))).toMatch(/Pod objects are managed by the cluster/);
  });

  it("checks every item of a List like a single object", () => {
    const list = `apiVersion: v1\nkind: List\nitems:\n  - apiVersion: security.istio.io/v1\n    kind: AuthorizationPolicy\n    metadata: {name: ok, namespace: shop}\n  - apiVersion: security.istio.io/v1\n    kind: AuthorizationPolicy\n    metadata: {name: bad, namespace: "../../etc"}\n`;
    expect(errorOf(() => applyUserObjects(store, parseAllDocuments(list), "l.yaml"))).toMatch(
      /l.yaml document 1 item 2: metadata.namespace '..\/..\/etc' is not a valid/,
    );
    expect(readdirSync(store)).toEqual([]);
    const good = list.replace('"../../etc"', "shop");
    expect(applyUserObjects(store, parseAllDocuments(good), "l.yaml")).toEqual([
      "authorizationpolicy/shop/ok",
      "authorizationpolicy/shop/bad",
    ]);
    const nested = "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: List\n    metadata: {name: x}\n    items: []\n";
    expect(errorOf(() => validateUserObjects(parseAllDocuments(nested), "n.yaml"))).toMatch(/item 1: a List inside a List/);
    expect(errorOf(() => validateUserObjects(parseAllDocuments("kind: List\napiVersion: v1\n"), "n.yaml"))).toMatch(
      /needs an 'items' list/,
    );
  });

  it("applies -n/--namespace as kubectl does", () => {
    expect(validateUserObjects(parseAllDocuments(policy(undefined)), "p.yaml", { namespace: "shop" })[0]?.metadata.namespace).toBe("shop");
    expect(validateUserObjects(parseAllDocuments(policy("shop")), "p.yaml", { namespace: "shop" })[0]?.metadata.namespace).toBe("shop");
    expect(errorOf(() => validateUserObjects(parseAllDocuments(policy("web")), "p.yaml", { namespace: "shop" }))).toMatch(
      /namespace 'web' does not match --namespace 'shop'/,
    );
    expect(errorOf(() => validateUserObjects(parseAllDocuments(policy(undefined)), "p.yaml", { namespace: "../x" }))).toMatch(
      /--namespace '..\/x' is not a valid Kubernetes namespace name/,
    );
    applyUserObjects(store, parseAllDocuments(policy(undefined)), "p.yaml", { namespace: "shop" });
    expect(deleteUserObjects(store, parseAllDocuments(policy(undefined)), "p.yaml", { namespace: "shop" })).toEqual([
      "authorizationpolicy/shop/deny",
    ]);
    expect(readdirSync(store)).toEqual([]);
  });
});
