/**
 * Status conditions on weft's own CRD objects (RateLimitPolicy), so `kubectl get`/`describe` shows
 * whether each one is in force and why not, as Gateway API objects show `Accepted`. Only weft's
 * kinds: the controller never writes to Istio's or Gateway API's objects (other controllers own
 * their status). Written by the leader only, through the status subresource with a merge patch,
 * and only when the condition changed: a restart or a replica taking over rewrites nothing.
 */
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/log.js";
import type { KubeObject } from "../api/kube-types.js";
import type { Diagnostic, SourceKind } from "../translate/types.js";
import { KIND_INFO } from "./kinds.js";
import type { KubeClient } from "./kube-client.js";

/** The kinds whose status weft owns. */
export const STATUS_KINDS: readonly SourceKind[] = ["RateLimitPolicy"];

/** Most patches waiting; beyond it the oldest are dropped (the next translation asks again). */
const MAX_QUEUE = 500;

/** A Kubernetes condition as weft writes it. */
export interface Condition {
  type: "Accepted";
  status: "True" | "False";
  reason: "Accepted" | "Invalid";
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

interface Pending {
  kind: SourceKind;
  namespace: string;
  name: string;
  condition: Condition;
  key: string;
}

/** The condition an object should carry, given this translation's diagnostics about it. */
export function acceptedCondition(obj: KubeObject, diagnostics: readonly Diagnostic[], now: () => Date = () => new Date()): Condition {
  const errors = diagnostics.filter((d) => d.severity === "error").map((d) => d.message);
  const warnings = diagnostics.filter((d) => d.severity === "warning").map((d) => d.message);
  const status = errors.length ? "False" : "True";
  const message = errors.length ? errors.join("; ") : warnings.length ? `applied, with warnings: ${warnings.join("; ")}` : "applied";
  const previous = currentCondition(obj);
  return {
    type: "Accepted",
    status,
    reason: errors.length ? "Invalid" : "Accepted",
    message: message.slice(0, 32_768),
    ...(obj.metadata.generation !== undefined ? { observedGeneration: obj.metadata.generation } : {}),
    // Kubernetes convention: the time the status last changed, not the time it was last written.
    lastTransitionTime: previous?.status === status ? previous.lastTransitionTime : now().toISOString(),
  };
}

function currentCondition(obj: KubeObject): Condition | undefined {
  const conds = (obj.status as { conditions?: unknown } | undefined)?.conditions;
  if (!Array.isArray(conds)) return undefined;
  return conds.find((c): c is Condition => typeof c === "object" && c !== null && (c as { type?: unknown }).type === "Accepted");
}

function same(a: Condition | undefined, b: Condition): boolean {
  return (
    a !== undefined &&
    a.status === b.status &&
    a.reason === b.reason &&
    a.message === b.message &&
    a.observedGeneration === b.observedGeneration
  );
}

/** Keeps the Accepted condition of weft's CRD objects in line with the latest translation. */
export class CrdStatusWriter {
  private readonly queue = new Map<string, Pending>();
  /**
   * What this replica last wrote per object: the informer may deliver its own write after the next
   * translation, and the object it still holds must not cause the same patch again.
   */
  private readonly wrote = new Map<string, Condition>();
  private sending = false;
  /** Whether this replica writes: only the leader does. */
  gate: () => boolean = () => true;
  /** Status patches the API server accepted. */
  written = 0;
  /** Patches that failed (logged; retried at the next translation). */
  failed = 0;

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
  ) {}

  /** Queues a patch for every object of weft's kinds whose condition differs from what it carries. */
  update(objects: ReadonlyMap<SourceKind, readonly KubeObject[]>, diagnostics: readonly Diagnostic[]): void {
    if (!this.gate()) return;
    const about = new Map<string, Diagnostic[]>();
    for (const d of diagnostics) {
      const k = `${d.ref.kind}/${d.ref.namespace ?? ""}/${d.ref.name}`;
      const list = about.get(k);
      if (list) list.push(d);
      else about.set(k, [d]);
    }
    const present = new Set<string>();
    for (const kind of STATUS_KINDS) {
      for (const obj of objects.get(kind) ?? []) {
        const namespace = obj.metadata.namespace ?? "default";
        const key = `${kind}/${namespace}/${obj.metadata.name}`;
        present.add(key);
        const condition = acceptedCondition(obj, about.get(key) ?? []);
        if (same(currentCondition(obj), condition) || same(this.wrote.get(key), condition)) {
          this.queue.delete(key);
          continue;
        }
        if (!this.queue.has(key) && this.queue.size >= MAX_QUEUE) continue;
        this.queue.set(key, { kind, namespace, name: obj.metadata.name, condition, key });
      }
    }
    for (const key of this.wrote.keys()) if (!present.has(key)) this.wrote.delete(key);
    if (!this.sending && this.queue.size) void this.drain();
  }

  /** Resolves when nothing is waiting to be written (tests). */
  async flushed(): Promise<void> {
    while (this.sending || this.queue.size) await new Promise((r) => setTimeout(r, 10));
  }

  private async drain(): Promise<void> {
    this.sending = true;
    try {
      for (let next = this.queue.values().next(); !next.done; next = this.queue.values().next()) {
        const p = next.value;
        this.queue.delete(p.key);
        // Marked before the request: a translation while it is in flight must not queue it again.
        this.wrote.set(p.key, p.condition);
        const info = KIND_INFO[p.kind];
        const path = `/apis/${info.group}/${info.versions[0]}/namespaces/${encodeURIComponent(p.namespace)}/${info.plural}/${encodeURIComponent(p.name)}/status`;
        try {
          await this.client.request("PATCH", path, { status: { conditions: [p.condition] } }, 10_000, "application/merge-patch+json");
          this.written++;
        } catch (e) {
          this.failed++;
          if (this.wrote.get(p.key) === p.condition) this.wrote.delete(p.key);
          this.log.warn(
            { kind: p.kind, namespace: p.namespace, name: p.name, err: errorMessage(e) },
            "cannot write the object's status condition",
          );
        }
      }
    } finally {
      this.sending = false;
    }
  }
}
