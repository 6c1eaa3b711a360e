/**
 * Reporting translation diagnostics to operators: a log line when a problem appears (and an info
 * line when it is gone), and in Kubernetes mode a Warning Event on the object, once per object
 * generation and message. Translation runs on every change; only new problems are reported.
 */
import type { Logger } from "../common/log.js";
import { type Diagnostic, describeRef } from "./translate/types.js";

/** Where Events go (Kubernetes mode). */
export interface EventSink {
  emit(d: Diagnostic): void;
}

function keyOf(d: Diagnostic): string {
  const r = d.ref;
  return `${r.kind}/${r.namespace ?? ""}/${r.name}/${r.uid ?? ""}/${r.generation ?? ""}|${d.severity}|${d.message}`;
}

/** Diffs each translation's diagnostics against the last and reports the difference. */
export class DiagnosticsReporter {
  private current = new Map<string, Diagnostic>();

  constructor(
    private readonly log: Logger,
    private readonly events?: EventSink,
  ) {}

  /** Reports what is new since the last call, and what was resolved. */
  update(diagnostics: readonly Diagnostic[]): void {
    const next = new Map(diagnostics.map((d) => [keyOf(d), d]));
    for (const [k, d] of next) {
      if (this.current.has(k)) continue;
      const fields = { object: describeRef(d.ref), kind: d.ref.kind, namespace: d.ref.namespace, name: d.ref.name };
      if (d.severity === "error") this.log.error(fields, `${describeRef(d.ref)}: ${d.message}`);
      else this.log.warn(fields, `${describeRef(d.ref)}: ${d.message}`);
      this.events?.emit(d);
    }
    for (const [k, d] of this.current) {
      if (!next.has(k)) this.log.info({ object: describeRef(d.ref) }, `resolved: ${describeRef(d.ref)}: ${d.message}`);
    }
    this.current = next;
  }

  /** The diagnostics of the last translation. */
  list(): Diagnostic[] {
    return [...this.current.values()];
  }
}
