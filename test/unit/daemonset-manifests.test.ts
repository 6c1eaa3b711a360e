/**
 * The install (daemonset/): the kustomize base renders to exactly daemonset/weft.yaml, and every
 * manifest validates against the Kubernetes OpenAPI schema shipped by @kubernetes/client-node.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { V1Container, V1DaemonSet, V1Deployment, V1ObjectMeta, V1PodSpec } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { KIND_INFO } from "../../controller/sources/kinds.js";
import { STATUS_KINDS } from "../../controller/sources/kube-status.js";
import { type Manifest, schemaVersion, validateManifests } from "../helpers/kube-schema.js";

const root = join(import.meta.dirname, "..", "..");
const rendered = join(root, "daemonset", "weft.yaml");

function manifests(text: string, where: string): Manifest[] {
  return parseAllDocuments(text).map((d, i) => {
    if (d.errors.length > 0) throw new Error(`${where} document ${i + 1}: ${d.errors[0]?.message}`);
    const object = d.toJS() as Record<string, unknown>;
    const meta = object.metadata as { name?: string } | undefined;
    return { where: `${where} #${i + 1} ${String(object.kind)}/${meta?.name ?? "?"}`, object };
  });
}

function objects(list: Manifest[]): Manifest["object"][] {
  return list.map((m) => m.object);
}

describe("daemonset/ install", () => {
  it("kubectl kustomize daemonset/ renders exactly daemonset/weft.yaml", () => {
    const out = execFileSync("kubectl", ["kustomize", join(root, "daemonset")], { encoding: "utf8" });
    expect(out).toBe(readFileSync(rendered, "utf8"));
  });

  it("every rendered manifest validates against the shipped Kubernetes OpenAPI models", () => {
    expect(schemaVersion(root)).toMatch(/^v1\.\d+/);
    const list = manifests(readFileSync(rendered, "utf8"), "weft.yaml");
    expect(list.length).toBeGreaterThan(5);
    expect(validateManifests(list, root)).toEqual([]);
  }, 60_000);

  it("the validator refuses unknown fields, missing required fields and wrong types", () => {
    const list = manifests(readFileSync(rendered, "utf8"), "weft.yaml");
    const ds = list.find((m) => m.object.kind === "DaemonSet")?.object as Manifest["object"];
    const variant = (where: string, path: (string | number)[], value: unknown): Manifest => {
      const object = structuredClone(ds);
      let at = object as Record<string | number, unknown>;
      for (const p of path.slice(0, -1)) at = at[p] as Record<string | number, unknown>;
      const last = path.at(-1) as string | number;
      if (value === undefined) delete at[last];
      else at[last] = value;
      return { where, object };
    };
    const bad = [
      variant("unknown", ["spec", "template", "spec", "hostNetwrok"], true),
      variant("missing", ["spec", "selector"], undefined),
      variant("wrong-type", ["spec", "template", "spec", "terminationGracePeriodSeconds"], "75"),
      { where: "unknown-kind", object: { apiVersion: "v9", kind: "Nope" } },
    ];
    const problems = validateManifests(bad, root).join("\n");
    expect(problems).toMatch(/unknown:.*hostNetwrok/);
    expect(problems).toMatch(/missing:.*selector.*is missing/);
    expect(problems).toMatch(/wrong-type:.*'string' is not assignable to type 'number'/);
    expect(problems).toMatch(/unknown-kind: no schema known for v9\/Nope/);
  }, 60_000);

  it("the agent runs with the four capabilities, not privileged, and the documented runtime flags", () => {
    const list = objects(manifests(readFileSync(rendered, "utf8"), "weft.yaml"));
    const ds = list.find((o) => o.kind === "DaemonSet") as unknown as V1DaemonSet;
    const pod = ds.spec?.template.spec as V1PodSpec;
    const c = pod.containers[0] as V1Container;
    const script = (c.args ?? []).join(" ");
    expect(pod.hostNetwork).toBe(true);
    expect(c.securityContext?.privileged).toBe(false);
    expect(c.securityContext?.capabilities).toEqual({ drop: ["ALL"], add: ["BPF", "PERFMON", "SYS_ADMIN", "NET_ADMIN"] });
    expect(script).toContain("--max-semi-space-size=4");
    expect(script).toContain("MALLOC_ARENA_MAX=2");
    // A new agent starts beside the old one and takes over (surge; no hostPorts to block it).
    expect(ds.spec?.updateStrategy?.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 });
    expect(c.ports).toBeUndefined();
    expect(script).toContain("--state-dir /run/weft/state");
    const token = pod.volumes?.find((v) => v.projected)?.projected?.sources?.[0]?.serviceAccountToken;
    expect(token?.audience).toBe("weft");
    expect(c.readinessProbe?.httpGet).toEqual({ path: "/healthz/ready", port: 15021 });
    const dep = list.find((o) => o.kind === "Deployment") as unknown as V1Deployment;
    expect(dep.spec?.replicas).toBe(2);
    expect(list.some((o) => o.kind === "PodDisruptionBudget")).toBe(true);
    for (const o of list) expect((o.metadata as V1ObjectMeta).namespace ?? "weft-system").toBe("weft-system");
  });

  it("the controller's ClusterRole grants get/list/watch of every kind it reads, and status patch of weft's own kinds only", () => {
    const list = objects(manifests(readFileSync(rendered, "utf8"), "weft.yaml"));
    const role = list.find((o) => o.kind === "ClusterRole" && (o.metadata as V1ObjectMeta).name === "weft-controller") as {
      rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    };
    const grants = (group: string, resource: string, verb: string) =>
      role.rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
    for (const [kind, info] of Object.entries(KIND_INFO)) {
      for (const verb of ["get", "list", "watch"]) expect(grants(info.group, info.plural, verb), `${kind}: ${verb}`).toBe(true);
    }
    const statusRules = role.rules.filter((r) => r.resources.some((x) => x.endsWith("/status")));
    const statusOf = statusRules.flatMap((r) => r.resources.map((x) => `${r.apiGroups.join(",")}/${x}`));
    expect(statusOf.sort()).toEqual(STATUS_KINDS.map((k) => `${KIND_INFO[k].group}/${KIND_INFO[k].plural}/status`).sort());
    // No write verb on anything users own (specs), only on status, events, tokenreviews.
    for (const r of role.rules) {
      const writes = r.verbs.filter((v) => ["create", "update", "patch", "delete"].includes(v));
      if (writes.length === 0) continue;
      for (const res of r.resources)
        expect(["events", "tokenreviews"].includes(res) || res.endsWith("/status"), `${res}: ${writes}`).toBe(true);
    }
    // weft's own CRDs ship with the install and have a status subresource.
    const crd = list.find((o) => o.kind === "CustomResourceDefinition") as { spec: { versions: { subresources?: { status?: object } }[] } };
    expect(crd.spec.versions[0]?.subresources?.status).toEqual({});
  });
});
