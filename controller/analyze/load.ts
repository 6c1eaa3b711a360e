/** Reading the analyzer's input files: every document kept (kinds weft does not read included). */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { errorMessage } from "../../common/errors.js";
import type { KubeObject } from "../api/kube-types.js";
import { isStoreFile } from "../sources/file.js";
import type { InputObject } from "./analyze.js";

/** Objects and problems read from files. */
export interface LoadedInput {
  objects: InputObject[];
  problems: string[];
}

function addDoc(value: unknown, where: string, out: LoadedInput, namespace: string): void {
  if (value === null || value === undefined) return;
  const o = value as Partial<KubeObject> & { items?: unknown };
  if (typeof value !== "object" || Array.isArray(value)) {
    out.problems.push(`${where}: expected a Kubernetes object (a mapping)`);
    return;
  }
  if (o.kind === "List" && Array.isArray(o.items)) {
    for (const [j, item] of o.items.entries()) addDoc(item, `${where} item ${j + 1}`, out, namespace);
    return;
  }
  if (typeof o.kind !== "string" || typeof o.apiVersion !== "string" || typeof o.metadata?.name !== "string") {
    out.problems.push(`${where}: not a Kubernetes object (needs apiVersion, kind and metadata.name)`);
    return;
  }
  const obj = o as KubeObject;
  // Namespaced kinds default to "default" as kubectl applies them; cluster-scoped ones have none.
  if (!obj.metadata.namespace && obj.kind !== "Namespace" && obj.kind !== "Node") obj.metadata = { ...obj.metadata, namespace };
  out.objects.push({ object: obj, origin: where });
}

/** Parses YAML text from `source`; objects without a namespace get `namespace` (as `kubectl apply -n`). */
export function loadText(
  text: string,
  source: string,
  out: LoadedInput = { objects: [], problems: [] },
  namespace = "default",
): LoadedInput {
  let docs: ReturnType<typeof parseAllDocuments>;
  try {
    docs = parseAllDocuments(text);
  } catch (e) {
    out.problems.push(`${source}: ${errorMessage(e)}`);
    return out;
  }
  for (const [i, doc] of (Array.isArray(docs) ? docs : [docs]).entries()) {
    const where = `${source}#${i + 1}`;
    if (doc.errors.length) {
      for (const e of doc.errors) out.problems.push(`${where}: ${(e.message.split("\n")[0] ?? "").replace(/:$/, "")}`);
      continue;
    }
    try {
      addDoc(doc.toJS({ maxAliasCount: 100 }), where, out, namespace);
    } catch (e) {
      out.problems.push(`${where}: ${errorMessage(e)}`);
    }
  }
  return out;
}

/** Reads files and directories (their YAML/JSON files, sorted); "-" is stdin. */
export function loadFiles(
  paths: readonly string[],
  namespace = "default",
  readStdin: () => string = () => readFileSync(0, "utf8"),
): LoadedInput {
  const out: LoadedInput = { objects: [], problems: [] };
  for (const p of paths) {
    if (p === "-") {
      loadText(readStdin(), "<stdin>", out, namespace);
      continue;
    }
    let files: string[];
    try {
      files = statSync(p).isDirectory()
        ? readdirSync(p)
            .filter(isStoreFile)
            .sort()
            .map((n) => join(p, n))
        : [p];
    } catch (e) {
      out.problems.push(`${p}: ${errorMessage(e)}`);
      continue;
    }
    for (const f of files) {
      try {
        loadText(readFileSync(f, "utf8"), f, out, namespace);
      } catch (e) {
        out.problems.push(`${f}: ${errorMessage(e)}`);
      }
    }
  }
  return out;
}
