/**
 * One agent's delta-xDS stream. Invariants:
 *  - `held` is what the agent holds per type (from its initial versions, then from ACKs);
 *  - at most one response per type is unanswered; changes meanwhile set `dirty` and go out in
 *    one response after the ACK/NACK (natural backpressure for a slow agent);
 *  - a NACKed version of a resource is not resent (it would be refused again) until it changes;
 *  - the first request of a type always gets a response, even an empty one, so the agent knows
 *    it is in sync;
 *  - after the first full diff of a type, later diffs look only at candidates: names that changed
 *    in a push, or entered or left this node's selection; a push costs O(change), not O(state).
 */
import { randomBytes } from "node:crypto";
import type { ServerDuplexStream } from "@grpc/grpc-js";
import type { Logger } from "../../common/log.js";
import { kindOfTypeUrl, RESOURCE_KINDS, type ResourceKind, typeUrlOf } from "../api/resources.js";
import type { WireDeltaRequest, WireDeltaResponse, WireResource, WireResourceError } from "../api/wire-types.js";
import type { ResourceSet } from "./resource-set.js";

interface Subscription {
  wildcard: boolean;
  names: Set<string>;
}

interface InFlight {
  nonce: string;
  /** name → version sent, or null for a removal. */
  sent: Map<string, string | null>;
  sentAt: number;
  /** Push version the response carried. */
  version: string;
}

/** A NACK as kept for status. */
export interface NackRecord {
  type: ResourceKind;
  at: string;
  nonce: string;
  message: string;
  resources: WireResourceError[];
}

/** Events a stream reports to the server (status, metrics, tests). */
export interface StreamObserver {
  onAck(stream: AgentStream, kind: ResourceKind, latencyMs: number): void;
  onNack(stream: AgentStream, nack: NackRecord): void;
}

/** One resource type of a stream, for status: what the agent holds and whether a push awaits its answer. */
export interface TypeStatus {
  held: number;
  ackedVersion?: string;
  pending: boolean;
  /** How long the unanswered push has waited (drift: a lagging agent), and its version. */
  pendingMs?: number;
  pendingVersion?: string;
}

/** One connected agent. */
export class AgentStream {
  readonly connectedAt = new Date();
  private readonly subs = new Map<ResourceKind, Subscription>();
  private readonly held = new Map<ResourceKind, Map<string, string>>();
  private readonly rejected = new Map<ResourceKind, Map<string, string>>();
  private readonly inflight = new Map<ResourceKind, InFlight>();
  private readonly dirty = new Set<ResourceKind>();
  private readonly needsFirst = new Set<ResourceKind>();
  /** Names to look at on the next diff of each type, or "all". */
  private readonly candidates = new Map<ResourceKind, Set<string> | "all">();
  /** Last applied push version per type. */
  readonly ackedVersion = new Map<ResourceKind, string>();
  /** When the last ACK arrived (status: drift). */
  private lastAckAt: Date | undefined;
  readonly nacks: NackRecord[] = [];
  agentVersion = "";
  private closed = false;

  constructor(
    readonly node: string,
    readonly peer: string,
    private readonly call: ServerDuplexStream<WireDeltaRequest, WireDeltaResponse>,
    private readonly resources: () => ResourceSet | undefined,
    private readonly log: Logger,
    private readonly observer: StreamObserver,
  ) {}

  /** Handles one request from the agent (subscription, ACK or NACK). */
  onRequest(req: WireDeltaRequest): void {
    const kind = kindOfTypeUrl(req.typeUrl);
    if (!kind) {
      this.log.warn({ node: this.node, typeUrl: req.typeUrl }, "agent asked for an unknown resource type; ignored");
      return;
    }
    if (req.node?.agentVersion) this.agentVersion = req.node.agentVersion;
    if (req.responseNonce) {
      this.onAnswer(kind, req);
      return;
    }
    let sub = this.subs.get(kind);
    if (!sub) {
      sub = { wildcard: false, names: new Set() };
      this.subs.set(kind, sub);
      this.held.set(kind, new Map(Object.entries(req.initialResourceVersions ?? {})));
      this.needsFirst.add(kind);
    }
    this.candidates.set(kind, "all");
    for (const n of req.subscribe) {
      if (n === "*") sub.wildcard = true;
      else sub.names.add(n);
    }
    for (const n of req.unsubscribe) {
      if (n === "*") sub.wildcard = false;
      else {
        sub.names.delete(n);
        this.held.get(kind)?.delete(n);
      }
    }
    this.push([kind]);
  }

  private onAnswer(kind: ResourceKind, req: WireDeltaRequest): void {
    const f = this.inflight.get(kind);
    if (!f || f.nonce !== req.responseNonce) {
      this.log.debug({ node: this.node, kind, nonce: req.responseNonce }, "stale ACK/NACK ignored");
      return;
    }
    this.inflight.delete(kind);
    const held = this.held.get(kind) as Map<string, string>;
    const bad = new Map((req.errorDetail?.resources ?? []).map((r) => [r.name, r.reason]));
    const rejected = this.rejected.get(kind) ?? new Map<string, string>();
    this.rejected.set(kind, rejected);
    for (const [name, version] of f.sent) {
      if (bad.has(name) && version !== null) {
        rejected.set(name, version);
        continue;
      }
      rejected.delete(name);
      if (version === null) held.delete(name);
      else held.set(name, version);
    }
    if (req.errorDetail) {
      const nack: NackRecord = {
        type: kind,
        at: new Date().toISOString(),
        nonce: req.responseNonce,
        message: req.errorDetail.message,
        resources: req.errorDetail.resources ?? [],
      };
      this.nacks.push(nack);
      if (this.nacks.length > 20) this.nacks.shift();
      this.log.warn(
        { node: this.node, type: kind, nonce: nack.nonce, rejected: nack.resources },
        `agent on ${this.node} rejected ${kind} resources (NACK): ${nack.message}`,
      );
      this.observer.onNack(this, nack);
    } else {
      this.ackedVersion.set(kind, f.version);
      this.lastAckAt = new Date();
      this.observer.onAck(this, kind, Date.now() - f.sentAt);
    }
    if (this.dirty.delete(kind)) this.push([kind]);
  }

  /** Notes what a new state changed for this node, then pushes. */
  update(next: ResourceSet, prev: ResourceSet | undefined): void {
    for (const kind of this.subs.keys()) {
      const c = this.candidates.get(kind);
      if (c === "all") continue;
      const changed = next.changed?.get(kind);
      if (!prev || !changed) {
        this.candidates.set(kind, "all");
        continue;
      }
      const set = c ?? new Set<string>();
      for (const n of changed) set.add(n);
      for (const n of next.selector.membershipDelta(prev.selector, this.node, kind, next.sharedDelta)) set.add(n);
      this.candidates.set(kind, set);
    }
    this.push();
  }

  /** Sends what changed for the given kinds (all subscribed kinds by default). */
  push(kinds: readonly ResourceKind[] = RESOURCE_KINDS): void {
    if (this.closed) return;
    const set = this.resources();
    if (!set) return; // nothing computed yet: the first push will come
    for (const kind of kinds) {
      const sub = this.subs.get(kind);
      if (!sub) continue;
      if (this.inflight.has(kind)) {
        this.dirty.add(kind);
        continue;
      }
      this.sendDiff(set, kind, sub);
    }
  }

  private sendDiff(set: ResourceSet, kind: ResourceKind, sub: Subscription): void {
    const held = this.held.get(kind) as Map<string, string>;
    const rejected = this.rejected.get(kind);
    const resources: WireResource[] = [];
    const sent = new Map<string, string | null>();
    const send = (r: { name: string; version: string; body: Uint8Array }) => {
      if (held.get(r.name) === r.version || rejected?.get(r.name) === r.version) return;
      resources.push({ name: r.name, version: r.version, body: r.body });
      sent.set(r.name, r.version);
    };
    const remove = (name: string) => {
      if (!held.has(name)) return;
      sent.set(name, null);
    };
    const candidates = this.candidates.get(kind) ?? new Set<string>();
    this.candidates.set(kind, new Set());
    if (candidates === "all") {
      const wanted = new Set<string>();
      if (sub.wildcard) {
        for (const r of set.forNode(this.node, kind)) {
          wanted.add(r.name);
          send(r);
        }
      }
      // A name is a narrower ask, never a wider one: it gets only what the node's selection allows.
      for (const name of sub.names) {
        if (wanted.has(name) || !set.selects(this.node, kind, name)) continue;
        const r = set.get(kind, name);
        if (r) {
          wanted.add(name);
          send(r);
        }
      }
      for (const name of held.keys()) if (!wanted.has(name)) remove(name);
    } else {
      for (const name of candidates) {
        const r = set.get(kind, name);
        if (r && (sub.wildcard || sub.names.has(name)) && set.selects(this.node, kind, name)) send(r);
        else remove(name);
      }
    }
    const removed = [...sent.entries()].filter(([, v]) => v === null).map(([n]) => n);
    const first = this.needsFirst.delete(kind);
    if (resources.length === 0 && removed.length === 0 && !first) return;
    const nonce = randomBytes(8).toString("hex");
    this.inflight.set(kind, { nonce, sent, sentAt: Date.now(), version: set.systemVersion });
    const res: WireDeltaResponse = {
      systemVersionInfo: set.systemVersion,
      typeUrl: typeUrlOf(kind),
      resources,
      removedResources: removed,
      nonce,
    };
    this.call.write(res);
  }

  /** Stops sending (the stream ended). */
  close(): void {
    this.closed = true;
  }

  /** Counts and versions for status. */
  status(): {
    node: string;
    peer: string;
    agentVersion: string;
    connectedAt: string;
    types: Record<string, TypeStatus>;
    nacks: NackRecord[];
    lastAckAt?: string;
  } {
    const types: Record<string, TypeStatus> = {};
    for (const kind of this.subs.keys()) {
      const t: TypeStatus = {
        held: this.held.get(kind)?.size ?? 0,
        pending: this.inflight.has(kind),
      };
      const v = this.ackedVersion.get(kind);
      if (v) t.ackedVersion = v;
      const f = this.inflight.get(kind);
      if (f) {
        t.pendingMs = Date.now() - f.sentAt;
        t.pendingVersion = f.version;
      }
      types[kind] = t;
    }
    return {
      node: this.node,
      peer: this.peer,
      agentVersion: this.agentVersion,
      connectedAt: this.connectedAt.toISOString(),
      types,
      nacks: this.nacks,
      ...(this.lastAckAt ? { lastAckAt: this.lastAckAt.toISOString() } : {}),
    };
  }

  /** True when every subscribed type is answered and nothing is pending (tests, status). */
  get settled(): boolean {
    return this.inflight.size === 0 && this.dirty.size === 0 && this.needsFirst.size === 0 && this.subs.size > 0;
  }
}
