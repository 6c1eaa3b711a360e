/** A finding of the analyzer, and how findings are built and ordered. */
import type { ObjectRef } from "../translate/types.js";
import { type CodeName, codeOf, type Severity } from "./codes.js";

/** One finding: a stable code, the object it is about, and what to do. */
export interface AnalysisMessage {
  code: string;
  name: CodeName;
  severity: Severity;
  /** "VirtualService bookinfo/reviews" (absent for input-level problems). */
  object?: string;
  /** Where the input came from (a file), when known. */
  origin?: string;
  message: string;
}

/** "Kind ns/name". */
export function objectName(ref: Pick<ObjectRef, "kind" | "namespace" | "name">): string {
  return `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ""}${ref.name}`;
}

/** A message of a code. */
export function message(name: CodeName, object: string | undefined, text: string): AnalysisMessage {
  const c = codeOf(name);
  const m: AnalysisMessage = { code: c.code, name, severity: c.severity, message: text };
  if (object !== undefined) m.object = object;
  return m;
}

const RANK = { error: 0, warning: 1, info: 2 } as const;

/** Errors first, then by code, object and text; duplicates dropped. */
export function sortMessages(list: readonly AnalysisMessage[]): AnalysisMessage[] {
  const seen = new Set<string>();
  const out: AnalysisMessage[] = [];
  for (const m of list) {
    const k = `${m.code}|${m.object ?? ""}|${m.message}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(m);
  }
  return out.sort(
    (a, b) =>
      RANK[a.severity] - RANK[b.severity] ||
      a.code.localeCompare(b.code) ||
      (a.object ?? "").localeCompare(b.object ?? "") ||
      a.message.localeCompare(b.message),
  );
}
