/**
 * Parsing Kubernetes YAML (one or many documents) into the objects weft reads, with problems
 * named by file and document. Shared by the file store source and the agent's local-file mode.
 */
import { parseAllDocuments } from "yaml";
import { errorMessage } from "../../common/errors.js";
import type { KubeObject } from "../api/kube-types.js";
import type { SourceKind } from "../translate/types.js";
import { classify, KIND_INFO } from "./kinds.js";

/** One object found in a file. */
export interface ParsedObject {
  kind: SourceKind;
  object: KubeObject;
}

/** What a file held: objects weft reads, and notes about the rest. */
export interface ParsedFile {
  objects: ParsedObject[];
  /** Syntax errors: the file as a whole is unusable. */
  errors: string[];
  /** Documents skipped (unknown kind, missing name…); the others still count. */
  skipped: string[];
}

/** Parses YAML text; `source` names it in messages ("store/pod.shop.web.yaml"). */
export function parseKubeYaml(text: string, source: string): ParsedFile {
  const out: ParsedFile = { objects: [], errors: [], skipped: [] };
  let docs: ReturnType<typeof parseAllDocuments>;
  try {
    docs = parseAllDocuments(text);
  } catch (e) {
    out.errors.push(`${source}: ${errorMessage(e)}`);
    return out;
  }
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    const where = `${source} document ${i + 1}`;
    // yaml's pretty messages say "… at line L, column C:" on their first line.
    for (const e of doc.errors) out.errors.push(`${where}: ${(e.message.split("\n")[0] ?? "").replace(/:$/, "")}`);
    if (doc.errors.length) return;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      out.errors.push(`${where}: ${errorMessage(e)}`);
      return;
    }
    if (value === null || value === undefined) return; // empty document
    if (typeof value !== "object" || Array.isArray(value)) {
      out.skipped.push(`${where}: expected a Kubernetes object (a mapping), got ${Array.isArray(value) ? "a list" : typeof value}`);
      return;
    }
    const obj = value as Partial<KubeObject> & { items?: unknown };
    if (obj.kind === "List" && Array.isArray(obj.items)) {
      for (const [j, item] of obj.items.entries()) addObject(item, `${where} item ${j + 1}`, out);
      return;
    }
    addObject(obj, where, out);
  });
  return out;
}

function addObject(value: unknown, where: string, out: ParsedFile): void {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    out.skipped.push(`${where}: expected a Kubernetes object (a mapping)`);
    return;
  }
  const obj = value as KubeObject;
  const c = classify(obj.apiVersion, obj.kind);
  if ("error" in c) {
    out.skipped.push(`${where}: ${c.error}`);
    return;
  }
  if (!obj.metadata || typeof obj.metadata !== "object" || typeof obj.metadata.name !== "string" || obj.metadata.name === "") {
    out.skipped.push(`${where}: ${obj.kind} has no metadata.name; skipped`);
    return;
  }
  const info = KIND_INFO[c.kind];
  if (info.namespaced && !obj.metadata.namespace) obj.metadata = { ...obj.metadata, namespace: "default" };
  if (!info.namespaced && obj.metadata.namespace) {
    const { namespace: _ignored, ...rest } = obj.metadata;
    obj.metadata = rest;
  }
  out.objects.push({ kind: c.kind, object: obj });
}
