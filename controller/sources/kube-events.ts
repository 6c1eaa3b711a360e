/**
 * Kubernetes Events for invalid or partly unsupported objects, so `kubectl describe` shows why a
 * policy is not (fully) applied. Sent in the background through a bounded queue: a flood of bad
 * objects cannot grow memory or stall translation, and a failing API server only costs log lines.
 */
import { hostname } from "node:os";
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/log.js";
import type { EventSink } from "../diagnostics.js";
import type { Diagnostic } from "../translate/types.js";
import type { KubeClient } from "./kube-client.js";

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
        const now = new Date().toISOString();
        const event = {
          apiVersion: "v1",
          kind: "Event",
          metadata: { generateName: `${d.ref.name}.`, namespace: ns },
          involvedObject: { apiVersion: d.ref.apiVersion, kind: d.ref.kind, name: d.ref.name, namespace: d.ref.namespace, uid: d.ref.uid },
          type: "Warning",
          reason: d.severity === "error" ? "InvalidConfig" : "UnsupportedConfig",
          message: d.message.slice(0, 1024),
          source: { component: "weft-controller" },
          reportingComponent: "weft-controller",
          reportingInstance: this.instance,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        };
        try {
          await this.client.request("POST", `/api/v1/namespaces/${encodeURIComponent(ns)}/events`, event, 10_000);
          this.sent++;
        } catch (e) {
          this.log.warn({ err: errorMessage(e), object: `${d.ref.kind} ${ns}/${d.ref.name}` }, "could not record a Kubernetes Event");
        }
      }
    } finally {
      this.sending = false;
    }
  }
}
