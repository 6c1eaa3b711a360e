/**
 * Kubernetes Events for invalid or partly unsupported objects, so `kubectl describe` shows why a
 * policy is not (fully) applied. Sent in the background through a bounded queue: a flood of bad
 * objects cannot grow memory or stall translation, and a failing API server only costs log lines.
 */
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/log.js";
import type { EventSink } from "../diagnostics.js";
import type { Diagnostic } from "../translate/types.js";
import { KubeApiError, type KubeClient } from "./kube-client.js";

/** Most Events waiting to be sent; beyond it new ones are dropped (and counted). */
const MAX_QUEUE = 500;

/** Posts Warning Events for diagnostics. */
export class KubeEventSink implements EventSink {
  private readonly queue: Diagnostic[] = [];
  private sending = false;
  /** Events dropped because the queue was full. */
  dropped = 0;
  /** Events the API server accepted. */
  sent = 0;
  /** Events left to the leader replica (this one did not lead when they came). */
  leftToLeader = 0;
  /** Whether this replica writes Events: only the leader does, so replicas do not repeat each other. */
  gate: () => boolean = () => true;

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
    private readonly instance = hostname(),
  ) {}

  /** Queues an Event for a diagnostic. */
  emit(d: Diagnostic): void {
    if (!this.gate()) {
      this.leftToLeader++;
      return;
    }
    if (this.queue.length >= MAX_QUEUE) {
      this.dropped++;
      return;
    }
    this.queue.push(d);
    if (!this.sending) void this.drain();
  }

  /** Resolves when the queue is empty (tests). */
  async flushed(): Promise<void> {
    while (this.sending || this.queue.length) await new Promise((r) => setTimeout(r, 10));
  }

  private async drain(): Promise<void> {
    this.sending = true;
    try {
      for (let d = this.queue.shift(); d; d = this.queue.shift()) {
        const ns = d.ref.namespace ?? "default";
        try {
          await this.record(ns, d);
          this.sent++;
        } catch (e) {
          this.log.warn({ err: errorMessage(e), object: `${d.ref.kind} ${ns}/${d.ref.name}` }, "could not record a Kubernetes Event");
        }
      }
    } finally {
      this.sending = false;
    }
  }

  /**
   * One Event per (object, reason, message): its name is derived from them, so the same problem
   * seen again (a re-translation, a controller restart, another leader) bumps `count` and
   * `lastTimestamp` on the existing Event instead of adding one, as the kubelet's Events do.
   */
  private async record(ns: string, d: Diagnostic): Promise<void> {
    const reason = d.severity === "error" ? "InvalidConfig" : "UnsupportedConfig";
    const message = d.message.slice(0, 1024);
    const key = createHash("sha256")
      .update(JSON.stringify([d.ref.kind, ns, d.ref.name, d.ref.uid ?? "", reason, message]))
      .digest("hex");
    const name = `${d.ref.name.slice(0, 200)}.${key.slice(0, 16)}`;
    const now = new Date().toISOString();
    const event = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name, namespace: ns },
      involvedObject: { apiVersion: d.ref.apiVersion, kind: d.ref.kind, name: d.ref.name, namespace: d.ref.namespace, uid: d.ref.uid },
      type: "Warning",
      reason,
      message,
      source: { component: "weft-controller" },
      reportingComponent: "weft-controller",
      reportingInstance: this.instance,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    const path = `/api/v1/namespaces/${encodeURIComponent(ns)}/events`;
    try {
      await this.client.request("POST", path, event, 10_000);
      return;
    } catch (e) {
      if (!(e instanceof KubeApiError && e.statusCode === 409)) throw e;
    }
    for (let attempt = 0; attempt < 3; attempt++) {
      const current = await this.client.request<typeof event & { metadata: { resourceVersion?: string } }>(
        "GET",
        `${path}/${encodeURIComponent(name)}`,
        undefined,
        10_000,
      );
      const next = { ...current, count: (current.count ?? 1) + 1, lastTimestamp: now, reportingInstance: this.instance };
      try {
        await this.client.request("PUT", `${path}/${encodeURIComponent(name)}`, next, 10_000);
        return;
      } catch (e) {
        if (!(e instanceof KubeApiError && e.statusCode === 409)) throw e;
      }
    }
    throw new Error(`event ${ns}/${name}: kept conflicting with another writer`);
  }
}
