/** What every check reads: the translated model, the raw objects, and small readers of raw fields. */
import type { KubeObject } from "../api/kube-types.js";
import type { Service, Workload } from "../api/model.js";
import type { ServiceIndex } from "../translate/hosts.js";
import type { ClusterObjects, MeshModel, TranslateOptions } from "../translate/types.js";
import type { AnalysisMessage } from "./message.js";

/** Input of the checks. */
export interface CheckContext {
  objects: ClusterObjects;
  /** security.istio.io RequestAuthentications (weft does not read them, the analyzer does). */
  requestAuthentications: readonly KubeObject[];
  model: MeshModel;
  index: ServiceIndex;
  opts: TranslateOptions;
  /** Namespaces that exist, when the input says (Namespace objects present); else undefined. */
  namespaces: ReadonlySet<string> | undefined;
  /** Nodes where an agent runs (live analysis); undefined when unknown. */
  agentNodes: ReadonlySet<string> | undefined;
  /** False when RequestAuthentications are not part of the input (the check is skipped). */
  readsRequestAuthentications: boolean;
  out: AnalysisMessage[];
}

/** A mapping field, or undefined. */
export function rec(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** A list field (anything else: empty). */
export function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/** A string field, or undefined. */
export function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** Whether labels include every pair of a selector. */
export function matches(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Workloads behind a service (its endpoints). */
export function backends(ctx: CheckContext, svc: Service): Workload[] {
  const byUid = new Map(ctx.model.workloads.map((w) => [w.uid, w]));
  return svc.endpoints.map((e) => byUid.get(e.workloadUid)).filter((w): w is Workload => w !== undefined);
}

/** The object's namespace (default when unset). */
export function nsOf(o: KubeObject): string {
  return o.metadata.namespace ?? "default";
}
