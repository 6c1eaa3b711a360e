/**
 * The controller's analysis of the objects it holds: the same messages as `weft analyze -f`, plus
 * NodeWithoutAgent from the agents connected. Computed on demand and cached until the objects or
 * the set of connected agents change (status is polled; translation is not free).
 */
import type { KubeObject } from "../api/kube-types.js";
import type { ObjectStore } from "../sources/object-store.js";
import { SOURCE_KINDS, type TranslateOptions } from "../translate/types.js";
import { analyze } from "./analyze.js";
import type { AnalysisMessage } from "./message.js";

/** Analysis of live objects, cached per (store version, connected agents). */
export class LiveAnalysis {
  private key = "";
  private last: AnalysisMessage[] = [];

  constructor(
    private readonly store: ObjectStore,
    private readonly options: TranslateOptions,
    private readonly agentNodes: () => string[],
  ) {}

  /** Current messages. */
  messages(): AnalysisMessage[] {
    const agents = [...new Set(this.agentNodes())].sort();
    const key = `${this.store.version}|${agents.join(",")}`;
    if (key === this.key) return this.last;
    const objects: { object: KubeObject }[] = [];
    for (const k of SOURCE_KINDS) for (const o of this.store.list(k)) objects.push({ object: o });
    this.last = analyze({ objects, agentNodes: agents, options: this.options, readsRequestAuthentications: false });
    this.key = key;
    return this.last;
  }

  /** Counts by severity, for status. */
  summary(): { errors: number; warnings: number; codes: string[] } {
    const m = this.messages();
    return {
      errors: m.filter((x) => x.severity === "error").length,
      warnings: m.filter((x) => x.severity === "warning").length,
      codes: [...new Set(m.filter((x) => x.severity !== "info").map((x) => x.code))],
    };
  }
}
