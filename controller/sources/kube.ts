/**
 * The Kubernetes source: informers on Namespaces, Nodes, Pods, Services, EndpointSlices and the
 * policy CRDs (at whichever supported version the cluster serves, found by discovery and
 * re-checked until the CRDs exist), feeding the object store. An optional namespace selector
 * (like Istio's discoverySelectors) limits the mesh to selected namespaces: when a namespace
 * loses the label, the API server sends its DELETED and its objects leave the store.
 */

import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/log.js";
import type { KubeObject } from "../api/kube-types.js";
import { SOURCE_KINDS, type SourceKind } from "../translate/types.js";
import { KIND_INFO } from "./kinds.js";
import { KubeApiError, type KubeClient } from "./kube-client.js";
import { Informer } from "./kube-informer.js";
import type { ObjectStore } from "./object-store.js";

/** Options of the Kubernetes source. */
export interface KubeSourceOptions {
  client: KubeClient;
  store: ObjectStore;
  log: Logger;
  /** Label selector on Namespaces; objects in other namespaces are left out. */
  namespaceSelector?: string;
  /** Always included whatever the selector says (mesh-wide policy lives there). */
  rootNamespace: string;
  /**
   * Also always included: the agents' own namespaces, so an agent's token resolves to its pod (and
   * its node) even when the selector leaves the mesh's own namespace out.
   */
  agentNamespaces?: readonly string[];
  /** How often to look again for policy CRDs that were not installed (default 60 s). */
  discoveryRetryMs?: number;
  /** Longest wait for the first lists before serving anyway (default 60 s). */
  syncTimeoutMs?: number;
  watchTimeoutSeconds?: [number, number];
}

interface GroupDiscovery {
  versions?: { version: string }[];
}

/** Keeps the object store in line with the API server. */
export class KubeSource {
  private readonly informers = new Map<SourceKind, Informer>();
  /** Objects in namespaces the selector does not (yet) select, kept so selecting one is instant. */
  private readonly parked = new Map<string, Map<string, { kind: SourceKind; obj: KubeObject }>>();
  private readonly selectedNamespaces = new Set<string>();
  private discoveryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Kinds whose CRD is not installed (checked again periodically). */
  readonly missing = new Set<SourceKind>();
  /** Kinds whose API group could not be discovered (an error other than 404), with the error; retried. */
  private readonly undiscovered = new Map<SourceKind, string>();

  constructor(private readonly opts: KubeSourceOptions) {}

  /**
   * Starts every informer; resolves when each kind that exists has been listed once or refused
   * (403: reported by unreadable()), or after syncTimeoutMs (a kind the API server does not
   * answer is logged and must not keep the whole mesh from being served).
   */
  async start(): Promise<void> {
    const pending = await this.startAvailable([...SOURCE_KINDS]);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), this.opts.syncTimeoutMs ?? 60_000);
    });
    const r = await Promise.race([Promise.all(pending).then(() => "synced" as const), timeout]);
    clearTimeout(timer);
    if (r === "timeout") {
      const slow = [...this.informers.entries()].filter(([, i]) => i.lists === 0).map(([k]) => k);
      this.opts.log.warn({ kinds: slow }, "some kinds are not listed yet (check the API server's answers and RBAC); serving what is known");
    }
    if (this.missing.size || this.undiscovered.size) this.scheduleDiscovery();
  }

  /** Stops all informers. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.discoveryTimer) clearTimeout(this.discoveryTimer);
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }

  /** Kinds watched: path (API version in use), full lists done, resourceVersion reached. */
  status(): { kind: SourceKind; path: string; lists: number; resourceVersion: string }[] {
    return [...this.informers.entries()].map(([kind, inf]) => ({
      kind,
      path: inf.path,
      lists: inf.lists,
      resourceVersion: inf.resourceVersion,
    }));
  }

  /**
   * Kinds that are installed (or may be) but cannot be read: the API server refuses to list or
   * watch them (RBAC), or refused discovering their group. `known` says whether objects of the
   * kind were read before (they are kept). Only a 404 on the group means "not installed".
   */
  unreadable(): { kind: SourceKind; known: boolean; error: string }[] {
    const out: { kind: SourceKind; known: boolean; error: string }[] = [];
    for (const [kind, error] of this.undiscovered) out.push({ kind, known: false, error });
    for (const kind of SOURCE_KINDS) {
      if (!this.informers.has(kind) && !this.missing.has(kind) && !this.undiscovered.has(kind))
        out.push({ kind, known: false, error: "not read yet" });
    }
    for (const [kind, inf] of this.informers) {
      if (inf.refusal) out.push({ kind, known: inf.lists > 0, error: `${inf.refusal.statusCode}: ${inf.refusal.message}` });
      else if (inf.lists === 0) out.push({ kind, known: false, error: "not listed yet" });
    }
    return out;
  }

  private scheduleDiscovery(): void {
    if (this.stopped || this.discoveryTimer) return;
    this.discoveryTimer = setTimeout(async () => {
      this.discoveryTimer = undefined;
      const kinds = [...this.missing, ...this.undiscovered.keys()];
      this.missing.clear();
      this.undiscovered.clear();
      try {
        await this.startAvailable(kinds);
      } catch (e) {
        for (const k of kinds) if (!this.informers.has(k)) this.missing.add(k);
        this.opts.log.warn({ err: errorMessage(e) }, "API discovery failed");
      }
      if (this.missing.size || this.undiscovered.size) this.scheduleDiscovery();
    }, this.opts.discoveryRetryMs ?? 60_000);
    this.discoveryTimer.unref();
  }

  /**
   * The served version of a group weft understands (preferred order) that also serves the kind,
   * or null when not installed. A group can be served with some of its CRDs missing (a partial
   * Istio install): such a kind counts as not installed, never as an informer that cannot sync.
   */
  private async servedVersion(group: string, versions: readonly string[], plural: string): Promise<string | null> {
    if (group === "") return "v1";
    try {
      const d = await this.opts.client.request<GroupDiscovery>("GET", `/apis/${group}`);
      const served = new Set((d.versions ?? []).map((v) => v.version));
      for (const v of versions) {
        if (!served.has(v)) continue;
        const list = await this.opts.client.request<{ resources?: { name: string }[] }>("GET", `/apis/${group}/${v}`);
        if ((list.resources ?? []).some((r) => r.name === plural)) return v;
      }
      return null;
    } catch (e) {
      if (e instanceof KubeApiError && e.statusCode === 404) return null;
      throw e;
    }
  }

  private async startAvailable(kinds: SourceKind[]): Promise<Promise<void>[]> {
    const synced: Promise<void>[] = [];
    for (const kind of kinds) {
      const info = KIND_INFO[kind];
      let version: string | null;
      try {
        version = await this.servedVersion(info.group, info.versions, info.plural);
      } catch (e) {
        // A refused credential is a configuration error: starting fails with the server's answer.
        if (e instanceof KubeApiError && e.statusCode === 401) throw e;
        // Installed or not, we cannot tell: never "no objects". Retried with the missing kinds.
        const error = (e as Error).message;
        this.undiscovered.set(kind, error);
        this.opts.log.error({ kind, group: info.group, err: error }, `cannot discover ${info.group || "core"} for ${kind}; retrying`);
        continue;
      }
      if (!version) {
        this.missing.add(kind);
        this.opts.log.info(
          { kind, group: info.group },
          `${info.group} is not served by this cluster (CRDs not installed?); ${kind} ignored until it is`,
        );
        continue;
      }
      const apiVersion = info.group ? `${info.group}/${version}` : version;
      const path = info.group ? `/apis/${apiVersion}/${info.plural}` : `/api/v1/${info.plural}`;
      const selector = kind === "Namespace" ? this.opts.namespaceSelector : undefined;
      const informer = new Informer(
        {
          client: this.opts.client,
          path,
          apiVersion,
          kind,
          log: this.opts.log,
          ...(selector ? { labelSelector: selector } : {}),
          ...(this.opts.watchTimeoutSeconds ? { watchTimeoutSeconds: this.opts.watchTimeoutSeconds } : {}),
        },
        { upsert: (o) => this.upsert(kind, o), remove: (o) => this.remove(kind, o), notServed: () => void this.recheck(kind) },
      );
      this.informers.set(kind, informer);
      await informer.start();
      // A refused kind settles at once: waiting cannot make it readable, and the controller holds
      // what depends on it (enrolment without known policy) instead.
      synced.push(informer.settled);
      this.opts.log.info({ kind, path }, "watching");
    }
    return synced;
  }

  /**
   * A watched kind answered 404. If discovery agrees it is no longer served (its CRD was deleted,
   * which deletes its objects too), it returns to "not installed": its objects leave the store and
   * discovery looks for it again. If it is still served, it is watched afresh; if discovery fails,
   * the objects are kept and the kind counts as unreadable until it can be told.
   */
  private async recheck(kind: SourceKind): Promise<void> {
    const informer = this.informers.get(kind);
    this.informers.delete(kind);
    await informer?.stop();
    if (this.stopped) return;
    const info = KIND_INFO[kind];
    let version: string | null;
    try {
      version = await this.servedVersion(info.group, info.versions, info.plural);
    } catch (e) {
      this.undiscovered.set(kind, errorMessage(e));
      this.scheduleDiscovery();
      return;
    }
    if (version) {
      await this.startAvailable([kind]).catch((e) => {
        this.undiscovered.set(kind, errorMessage(e));
        this.scheduleDiscovery();
      });
      return;
    }
    const gone = this.opts.store.list(kind);
    for (const o of gone) this.opts.store.remove(kind, o.metadata.namespace, o.metadata.name);
    for (const m of this.parked.values()) for (const [k, p] of m) if (p.kind === kind) m.delete(k);
    this.missing.add(kind);
    this.opts.log.warn(
      { kind, group: info.group, dropped: gone.length },
      `${kind} is no longer served (CRD removed?): not installed, its objects are gone; watching for it to return`,
    );
    this.scheduleDiscovery();
  }

  private inScope(kind: SourceKind, obj: KubeObject): boolean {
    if (!this.opts.namespaceSelector || !KIND_INFO[kind].namespaced) return true;
    const ns = obj.metadata.namespace ?? "default";
    return ns === this.opts.rootNamespace || this.selectedNamespaces.has(ns) || (this.opts.agentNamespaces?.includes(ns) ?? false);
  }

  private upsert(kind: SourceKind, obj: KubeObject): void {
    if (kind === "Namespace" && this.opts.namespaceSelector && !this.selectedNamespaces.has(obj.metadata.name)) {
      this.selectedNamespaces.add(obj.metadata.name);
      for (const p of this.parked.get(obj.metadata.name)?.values() ?? []) this.opts.store.upsert(p.kind, p.obj);
      this.parked.delete(obj.metadata.name);
    }
    if (this.inScope(kind, obj)) {
      this.opts.store.upsert(kind, obj);
      return;
    }
    const ns = obj.metadata.namespace ?? "default";
    let m = this.parked.get(ns);
    if (!m) {
      m = new Map();
      this.parked.set(ns, m);
    }
    m.set(`${kind}/${obj.metadata.name}`, { kind, obj });
  }

  private remove(kind: SourceKind, obj: KubeObject): void {
    this.opts.store.remove(kind, obj.metadata.namespace, obj.metadata.name);
    if (kind === "Namespace" && this.opts.namespaceSelector) {
      // Deleted, or no longer matching the selector: the namespace's objects leave the mesh.
      const name = obj.metadata.name;
      this.selectedNamespaces.delete(name);
      if (name === this.opts.rootNamespace || this.opts.agentNamespaces?.includes(name)) return;
      const m = new Map<string, { kind: SourceKind; obj: KubeObject }>();
      for (const k of SOURCE_KINDS) {
        if (!KIND_INFO[k].namespaced) continue;
        for (const o of this.opts.store.list(k)) {
          if ((o.metadata.namespace ?? "default") !== name) continue;
          m.set(`${k}/${o.metadata.name}`, { kind: k, obj: o });
        }
      }
      for (const p of m.values()) this.opts.store.remove(p.kind, p.obj.metadata.namespace, p.obj.metadata.name);
      if (m.size) this.parked.set(name, m);
      return;
    }
    this.parked.get(obj.metadata.namespace ?? "default")?.delete(`${kind}/${obj.metadata.name}`);
  }
}
