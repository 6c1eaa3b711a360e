import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { parsePort } from "../../scripts/cluster/cli.js";
import { applyLabelEdits } from "../../scripts/cluster/cluster.js";
import type { ClusterState, PodRecord } from "../../scripts/cluster/state.js";
import { renderObjects, selectorMatches, storeFileName } from "../../scripts/cluster/store.js";
import { DEFAULT_SPEC } from "../../scripts/cluster/topology.js";
import { validateUserObjects } from "../../scripts/cluster/user-objects.js";

function pod(name: string, node: number, ip: string, labels: Record<string, string>, namespace = "shop"): PodRecord {
  return {
    namespace,
    name,
    uid: `uid-${name}`,
    node,
    ip,
    slot: 2,
    serviceAccount: "sa",
    labels,
    netns: "x",
    cgroup: "x",
    hostVeth: "weft1",
    createdAt: "t",
  };
}

const state: ClusterState = {
  version: 1,
  spec: DEFAULT_SPEC,
  phase: "ready",
  createdAt: "t",
  storeDir: "/nonexistent",
  nodes: [1, 2],
  namespaces: [{ name: "shop", uid: "ns1", labels: { "weft.dev/mesh": "enabled" }, createdAt: "t" }],
  pods: [
    pod("web-1", 1, "10.244.1.2", { app: "web" }),
    pod("web-2", 2, "10.244.2.2", { app: "web", v: "2" }),
    pod("db", 2, "10.244.2.3", { app: "db" }),
    pod("other", 1, "10.244.1.3", { app: "web" }, "default"),
  ],
  services: [
    {
      namespace: "shop",
      name: "web",
      uid: "s1",
      vip: "10.96.0.10",
      ports: [{ name: "http", port: 80, targetPort: 8080, protocol: "TCP", appProtocol: "http" }],
      selector: { app: "web" },
      createdAt: "t",
    },
  ],
  processes: [],
  nextVethSeq: 5,
  nextVip: 1,
};

describe("file store rendering", () => {
  const objs = renderObjects(state);
  it("renders nodes, namespaces, pods, services and endpointslices", () => {
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      "Node/weft-node1",
      "Node/weft-node2",
      "Namespace/shop",
      "Pod/web-1",
      "Pod/web-2",
      "Pod/db",
      "Pod/other",
      "Service/web",
      "EndpointSlice/web-weft",
    ]);
  });
  it("puts only same-namespace selected pods in the EndpointSlice, with target ports", () => {
    const slice = objs.find((o) => o.kind === "EndpointSlice") as unknown as {
      endpoints: { addresses: string[]; nodeName: string }[];
      ports: { port: number }[];
    };
    expect(slice.endpoints.map((e) => [e.addresses[0], e.nodeName])).toEqual([
      ["10.244.1.2", "weft-node1"],
      ["10.244.2.2", "weft-node2"],
    ]);
    expect(slice.ports).toEqual([{ name: "http", port: 8080, protocol: "TCP", appProtocol: "http" }]);
  });
  it("gives pods their IP, node, host IP and service account", () => {
    const p = objs.find((o) => o.kind === "Pod" && o.metadata.name === "web-2") as {
      spec: { nodeName: string; serviceAccountName: string };
      status: { podIP: string; hostIP: string };
    };
    expect(p.spec).toMatchObject({ nodeName: "weft-node2", serviceAccountName: "sa" });
    expect(p.status).toMatchObject({ podIP: "10.244.2.2", hostIP: "10.250.0.12" });
  });
  it("names files by kind, namespace and name", () => {
    expect(storeFileName({ kind: "Pod", metadata: { name: "a", namespace: "b" } })).toBe("pod.b.a.yaml");
    expect(storeFileName({ kind: "Namespace", metadata: { name: "b" } })).toBe("namespace.b.yaml");
  });
  it("matches selectors as Kubernetes does (empty selects nothing)", () => {
    expect(selectorMatches({ app: "web" }, { app: "web", v: "1" })).toBe(true);
    expect(selectorMatches({ app: "web", v: "2" }, { app: "web", v: "1" })).toBe(false);
    expect(selectorMatches({}, { app: "web" })).toBe(false);
  });
});

describe("labels, ports and user objects", () => {
  it("edits labels like kubectl label", () => {
    expect(applyLabelEdits({ a: "1", b: "2" }, ["a-", "c=3", "weft.dev/mesh=enabled"])).toEqual({
      b: "2",
      c: "3",
      "weft.dev/mesh": "enabled",
    });
    expect(() => applyLabelEdits({}, ["=x"])).toThrow(/expected key=value/);
    expect(() => applyLabelEdits({}, ["a=b c"])).toThrow(/not a valid Kubernetes label value/);
  });
  it("parses service ports", () => {
    expect(parsePort("80:8080/http")).toEqual({ port: 80, targetPort: 8080, protocol: "TCP", name: "http", appProtocol: "http" });
    expect(parsePort("9080")).toEqual({ port: 9080, targetPort: 9080, protocol: "TCP" });
    expect(parsePort("5432/tcp-db")).toEqual({ port: 5432, targetPort: 5432, protocol: "TCP", name: "tcp-db" });
    expect(() => parsePort("80:99999")).toThrow(/99999 is not a port number/);
    expect(() => parsePort("http")).toThrow(/expected port/);
  });
  it("validates user YAML, naming the document and what is wrong", () => {
    const good = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: deny\n  namespace: shop\nspec: {}\n";
    expect(validateUserObjects(parseAllDocuments(good), "p.yaml")[0]?.metadata.name).toBe("deny");
    const bad = `${good}---\nkind: X\nmetadata: {}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n---\nfoo: [1\n`;
    let msg = "";
    try {
      validateUserObjects(parseAllDocuments(bad), "p.yaml");
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/nothing applied/);
    expect(msg).toMatch(/p.yaml document 2: missing apiVersion, metadata.name/);
    expect(msg).toMatch(/p.yaml document 3: Pod objects are managed by the cluster/);
    expect(msg).toMatch(/p.yaml document 4: /);
  });
});
