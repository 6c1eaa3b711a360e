/**
 * `weft cluster apply/delete -f`: the user's own objects (Istio and Gateway API policies) in the
 * file store, validated enough that a typo is reported with its file and document, not found later.
 * Kind, namespace and name become a file name the harness writes or deletes as root, so each is
 * checked against Kubernetes' own syntax and the resulting path must stay inside the store.
 */
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { type Document, stringify } from "yaml";
import type { KubeObject } from "../../controller/api/kube-types.js";
import { classify, KIND_INFO } from "../../controller/sources/kinds.js";
import { writeFileAtomic } from "./state.js";
import { HARNESS_KINDS, storeFileName, storePath } from "./store.js";

/** A Kubernetes namespace name (an RFC 1123 label). */
const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A Kubernetes object name (an RFC 1123 subdomain). */
const NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Options of apply/delete, as kubectl's. */
export interface UserObjectOptions {
  /** `-n/--namespace`: objects without metadata.namespace get it; others must match it. */
  namespace?: string;
}

/** Checks a `-n/--namespace` value; throws naming it when it is not a namespace name. */
export function checkNamespaceOption(ns: string): void {
  if (!NAMESPACE_RE.test(ns)) throw new Error(`--namespace '${ns}' is not a valid Kubernetes namespace name`);
}

/** Checks parsed YAML documents; returns the objects or throws naming every bad document. */
export function validateUserObjects(docs: readonly Document[], source: string, opts: UserObjectOptions = {}): KubeObject[] {
  if (opts.namespace !== undefined) checkNamespaceOption(opts.namespace);
  const objects: KubeObject[] = [];
  const errors: string[] = [];
  docs.forEach((doc, i) => {
    const where = `${source} document ${i + 1}`;
    if (doc.errors.length) {
      for (const e of doc.errors) errors.push(`${where}: ${e.message.split("\n")[0]}`);
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      errors.push(`${where}: ${(e as Error).message}`);
      return;
    }
    if (value === null || value === undefined) return; // empty document between ---
    const list = value as { kind?: unknown; items?: unknown };
    if (typeof value === "object" && !Array.isArray(value) && list.kind === "List") {
      if (!Array.isArray(list.items)) {
        errors.push(`${where}: kind List needs an 'items' list`);
        return;
      }
      for (const [j, item] of list.items.entries()) checkObject(item, `${where} item ${j + 1}`, opts, objects, errors);
      return;
    }
    checkObject(value, where, opts, objects, errors);
  });
  if (errors.length) throw new Error(`nothing applied:\n  ${errors.join("\n  ")}`);
  return objects;
}

function checkObject(value: unknown, where: string, opts: UserObjectOptions, objects: KubeObject[], errors: string[]): void {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    errors.push(
      `${where}: expected a Kubernetes object (a mapping), got ${Array.isArray(value) ? "a list" : value === null ? "null" : typeof value}`,
    );
    return;
  }
  const obj = value as Partial<KubeObject>;
  const missing = ["apiVersion", "kind"].filter((k) => typeof (obj as Record<string, unknown>)[k] !== "string");
  const meta = obj.metadata as Partial<KubeObject["metadata"]> | undefined;
  if (!meta || typeof meta !== "object" || typeof meta.name !== "string" || meta.name === "") missing.push("metadata.name");
  if (missing.length) {
    errors.push(`${where}: missing ${missing.join(", ")}`);
    return;
  }
  const kind = obj.kind as string;
  const name = (meta as { name: string }).name;
  if (kind === "List") {
    errors.push(`${where}: a List inside a List is not supported`);
    return;
  }
  if (HARNESS_KINDS.has(kind)) {
    errors.push(`${where}: ${kind} objects are managed by the cluster; use 'weft cluster add-pod/add-service/label' instead`);
    return;
  }
  const c = classify(obj.apiVersion, kind);
  if ("error" in c) {
    errors.push(`${where}: ${c.error.replace(/; ignored$/, "")}`);
    return;
  }
  if (!NAME_RE.test(name)) {
    errors.push(`${where}: metadata.name '${name}' is not a valid Kubernetes name`);
    return;
  }
  const given = (meta as { namespace?: unknown }).namespace;
  if (given !== undefined && (typeof given !== "string" || !NAMESPACE_RE.test(given))) {
    errors.push(`${where}: metadata.namespace '${String(given)}' is not a valid Kubernetes namespace name`);
    return;
  }
  if (given && opts.namespace && given !== opts.namespace) {
    // kubectl's rule: -n never silently moves an object to another namespace.
    errors.push(`${where}: the object's namespace '${given}' does not match --namespace '${opts.namespace}'`);
    return;
  }
  if (!KIND_INFO[c.kind].namespaced) {
    errors.push(`${where}: ${kind} is not a namespaced kind the cluster lets you apply`);
    return;
  }
  const o = obj as KubeObject;
  o.metadata.namespace = (given as string | undefined) || opts.namespace || "default";
  objects.push(o);
}

/** Writes the objects into the store (all or nothing after validation); returns "kind/name" lines. */
export function applyUserObjects(storeDir: string, docs: readonly Document[], source: string, opts: UserObjectOptions = {}): string[] {
  const objects = validateUserObjects(docs, source, opts);
  // Resolve every path before writing any: one bad name writes nothing.
  const paths = objects.map((o) => storePath(storeDir, storeFileName(o)));
  mkdirSync(storeDir, { recursive: true });
  return objects.map((o, i) => {
    writeFileAtomic(paths[i] as string, stringify(o, { lineWidth: 0 }));
    return `${o.kind.toLowerCase()}/${o.metadata.namespace}/${o.metadata.name}`;
  });
}

/** Removes the objects from the store; returns what was removed. */
export function deleteUserObjects(storeDir: string, docs: readonly Document[], source: string, opts: UserObjectOptions = {}): string[] {
  const objects = validateUserObjects(docs, source, opts);
  const paths = objects.map((o) => storePath(storeDir, storeFileName(o)));
  const out: string[] = [];
  objects.forEach((o, i) => {
    const path = paths[i] as string;
    if (!existsSync(path)) return;
    rmSync(path);
    out.push(`${o.kind.toLowerCase()}/${o.metadata.namespace}/${o.metadata.name}`);
  });
  return out;
}
