/** The file store source: YAML in a directory (or one file), watched; bad files reported, never fatal. */
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { FileSource, isStoreFile } from "../../controller/sources/file.js";
import { ObjectStore } from "../../controller/sources/object-store.js";
import { parseKubeYaml } from "../../controller/sources/yaml-objects.js";
import { captureLogger } from "../helpers/control-log.js";
import { namespace, pod } from "../helpers/control-objects.js";
import { waitFor } from "../helpers/wait.js";

describe("Kubernetes YAML parsing", () => {
  it("reads multi-document files and Lists, defaults the namespace, and skips what weft does not read", () => {
    const text = [
      stringify(namespace("shop")),
      stringify({ apiVersion: "v1", kind: "List", items: [pod({ name: "a", node: "n1", ip: "10.244.1.2" })] }),
      stringify({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "web" } }),
      stringify({ apiVersion: "networking.istio.io/v2", kind: "VirtualService", metadata: { name: "v" } }),
      stringify({ apiVersion: "security.istio.io/v1", kind: "AuthorizationPolicy", metadata: {} }),
      stringify({ apiVersion: "security.istio.io/v1", kind: "AuthorizationPolicy", metadata: { name: "p" } }),
      "",
      "- just\n- a list\n",
    ].join("---\n");
    const r = parseKubeYaml(text, "mixed.yaml");
    expect(r.errors).toEqual([]);
    expect(r.objects.map((o) => `${o.kind} ${o.object.metadata.namespace ?? "-"}/${o.object.metadata.name}`)).toEqual([
      "Namespace -/shop",
      "Pod default/a",
      "AuthorizationPolicy default/p",
    ]);
    expect(r.skipped).toEqual([
      "mixed.yaml document 3: kind Deployment (apps/v1) is not one weft reads; ignored",
      "mixed.yaml document 4: VirtualService version networking.istio.io/v2 is not supported (use networking.istio.io/v1 or networking.istio.io/v1beta1 or networking.istio.io/v1alpha3)",
      "mixed.yaml document 5: AuthorizationPolicy has no metadata.name; skipped",
      "mixed.yaml document 8: expected a Kubernetes object (a mapping), got a list",
    ]);
  });

  it("reports malformed YAML with file, document and line", () => {
    const r = parseKubeYaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\nkind: [unclosed\n", "broken.yaml");
    expect(r.errors[0]).toMatch(/^broken.yaml document 2: .* at line \d+, column \d+$/);
  });

  it.each([
    ["pod.shop.web.yaml", true],
    ["policy.yml", true],
    ["x.json", true],
    [".12.34.tmp", false],
    [".hidden.yaml", false],
    ["notes.txt", false],
    ["pod.yaml~", false],
    ["#pod.yaml#", false],
  ])("treats %s as a store file: %s", (name, yes) => expect(isStoreFile(name)).toBe(yes));
});

describe("file store source", () => {
  const dirs: string[] = [];
  const sources: FileSource[] = [];
  afterEach(() => {
    for (const s of sources.splice(0)) s.stop();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  function setup() {
    const dir = mkdtempSync(join(tmpdir(), "weft-store-"));
    dirs.push(dir);
    const store = new ObjectStore();
    const cap = captureLogger("file");
    const src = new FileSource({ path: dir, store, log: cap.log, debounceMs: 5 });
    sources.push(src);
    const write = (name: string, text: string) => {
      writeFileSync(join(dir, `.${name}.tmp`), text);
      renameSync(join(dir, `.${name}.tmp`), join(dir, name));
    };
    return { dir, store, cap, src, write };
  }

  it("loads the directory, follows additions, changes and removals", async () => {
    const { dir, store, src, write } = setup();
    write("ns.yaml", stringify(namespace("shop")));
    src.start();
    expect(store.get("Namespace", undefined, "shop")).toBeDefined();
    write("pod.yaml", stringify(pod({ name: "web", ns: "shop", node: "n1", ip: "10.244.1.2" })));
    await waitFor("pod added", () => store.get("Pod", "shop", "web"));
    write("ns.yaml", stringify(namespace("shop", { "weft.dev/mesh": "enabled" })));
    await waitFor("label changed", () => store.get("Namespace", undefined, "shop")?.metadata.labels?.["weft.dev/mesh"] === "enabled");
    rmSync(join(dir, "pod.yaml"));
    await waitFor("pod removed", () => !store.get("Pod", "shop", "web"));
  });

  it("keeps a file's last good objects when it becomes malformed, and reports it; other files still flow", async () => {
    const { store, src, cap, write } = setup();
    write("ns.yaml", stringify(namespace("shop")));
    src.start();
    const v = store.version;
    write("ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: [shop\n");
    await waitFor("the error logged", () => cap.find(/invalid YAML, keeping the file's previous objects/)[0]);
    expect(cap.find(/invalid YAML/)[0]?.msg).toMatch(/ns.yaml document 1/);
    expect(store.get("Namespace", undefined, "shop")).toBeDefined();
    expect(store.version).toBe(v);
    write("other.yaml", stringify(namespace("other")));
    await waitFor("the other file still applied", () => store.get("Namespace", undefined, "other"));
    expect(src.status().problems[0]?.file).toMatch(/ns.yaml/);
    write("ns.yaml", stringify(namespace("shop", { fixed: "yes" })));
    await waitFor("the fixed file applied", () => store.get("Namespace", undefined, "shop")?.metadata.labels?.fixed === "yes");
  });

  it("reports unknown kinds once, and an object defined in two files (the later file wins)", async () => {
    const { store, src, cap, write } = setup();
    write("a.yaml", stringify(namespace("dup", { from: "a" })));
    write("b.yaml", stringify(namespace("dup", { from: "b" })));
    write("c.yaml", stringify({ apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } }));
    src.start();
    expect(store.get("Namespace", undefined, "dup")?.metadata.labels?.from).toBe("b");
    expect(cap.find(/defined in more than one file/)).toHaveLength(1);
    expect(cap.find(/kind Widget \(example.com\/v1\) is not one weft reads; ignored/)).toHaveLength(1);
    src.rescan();
    expect(cap.find(/kind Widget/)).toHaveLength(1);
  });

  it("follows one YAML file (the agent's local mode) and ignores temp files next to it", async () => {
    const { dir, store } = setup();
    const file = join(dir, "mesh.yaml");
    writeFileSync(file, [stringify(namespace("a")), stringify(namespace("b"))].join("---\n"));
    mkdirSync(join(dir, "sub"));
    const cap = captureLogger("file");
    const src = new FileSource({ path: file, store, log: cap.log, debounceMs: 5, resyncMs: 100 });
    sources.push(src);
    src.start();
    expect(
      store
        .list("Namespace")
        .map((n) => n.metadata.name)
        .sort(),
    ).toEqual(["a", "b"]);
    writeFileSync(file, stringify(namespace("a")));
    await waitFor("b removed", () => !store.get("Namespace", undefined, "b"));
  });

  it("refuses a store that does not exist, saying what to do", () => {
    const cap = captureLogger("file");
    expect(() => new FileSource({ path: "/nonexistent/store", store: new ObjectStore(), log: cap.log })).toThrow(
      /file store \/nonexistent\/store does not exist/,
    );
  });
});
