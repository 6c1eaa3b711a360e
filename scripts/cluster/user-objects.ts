/**
 * `weft cluster apply/delete -f`: the user's own objects (Istio and Gateway API policies) in the
 * file store, validated enough that a typo is reported with its file and document, not found later.
 */
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type Document, stringify } from "yaml";
import type { KubeObject } from "../../controller/api/kube-types.js";
import { writeFileAtomic } from "./state.js";
import { HARNESS_KINDS, storeFileName } from "./store.js";

/** Checks parsed YAML documents; returns the objects or throws naming every bad document. */
export function validateUserObjects(docs: readonly Document[], source: string): KubeObject[] {
  const objects: KubeObject[] = [];
  const errors: string[] = [];
  docs.forEach((doc, i) => {
    const where = `${source} document ${i + 1}`;
    if (doc.errors.length) {
      for (const e of doc.errors) errors.push(`${where}: ${e.message.split("\n")[0]}`);
      return;
    }
    const obj = doc.toJS() as Partial<KubeObject> | null;
    if (obj === null || obj === undefined) return; // empty document between ---
    if (typeof obj !== "object" || Array.isArray(obj)) {
      errors.push(`${where}: expected a Kubernetes object (a mapping), got ${Array.isArray(obj) ? "a list" : typeof obj}`);
      return;
    }
    const missing = ["apiVersion", "kind"].filter((k) => typeof (obj as Record<string, unknown>)[k] !== "string");
    if (!obj.metadata || typeof obj.metadata.name !== "string" || obj.metadata.name === "") missing.push("metadata.name");
    if (missing.length) {
      errors.push(`${where}: missing ${missing.join(", ")}`);
      return;
    }
    if (HARNESS_KINDS.has(obj.kind as string)) {
      errors.push(`${where}: ${obj.kind} objects are managed by the cluster; use 'weft cluster add-pod/add-service/label' instead`);
      return;
    }
    if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(obj.metadata?.name as string)) {
      errors.push(`${where}: metadata.name '${obj.metadata?.name}' is not a valid Kubernetes name`);
      return;
    }
    const o = obj as KubeObject;
    if (!o.metadata.namespace) o.metadata.namespace = "default";
    objects.push(o);
  });
  if (errors.length) throw new Error(`nothing applied:\n  ${errors.join("\n  ")}`);
  return objects;
}

/** Writes the objects into the store (all or nothing after validation); returns "kind/name" lines. */
export function applyUserObjects(storeDir: string, docs: readonly Document[], source: string): string[] {
  const objects = validateUserObjects(docs, source);
  mkdirSync(storeDir, { recursive: true });
  return objects.map((o) => {
    writeFileAtomic(join(storeDir, storeFileName(o)), stringify(o, { lineWidth: 0 }));
    return `${o.kind.toLowerCase()}/${o.metadata.namespace}/${o.metadata.name}`;
  });
}

/** Removes the objects from the store; returns what was removed. */
export function deleteUserObjects(storeDir: string, docs: readonly Document[], source: string): string[] {
  const out: string[] = [];
  for (const o of validateUserObjects(docs, source)) {
    const path = join(storeDir, storeFileName(o));
    if (!existsSync(path)) continue;
    rmSync(path);
    out.push(`${o.kind.toLowerCase()}/${o.metadata.namespace}/${o.metadata.name}`);
  }
  return out;
}
