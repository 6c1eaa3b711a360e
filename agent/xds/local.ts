/**
 * Local-file mode: the agent runs from Kubernetes YAML (a file or a directory) with no
 * controller, like ztunnel's local config. The YAML goes through the controller's own code path —
 * the same file source, translation and per-node selection, encoded and decoded as the wire would
 * carry it — so what the agent holds is exactly what a controller would have sent it, and a
 * resource the agent would NACK is refused here too (logged, previous version kept).
 */

import { decodeResource, RESOURCE_KINDS, type ResourceKind } from "../../controller/api/resources.js";
import type { TrustBundle } from "../../controller/api/wire-types.js";
import { DiagnosticsReporter } from "../../controller/diagnostics.js";
import type { Logger } from "../../common/log.js";
import { FileSource } from "../../controller/sources/file.js";
import { ObjectStore } from "../../controller/sources/object-store.js";
import { TranslationMemo, translate } from "../../controller/translate/index.js";
import type { TranslateOptions } from "../../controller/translate/types.js";
import { Debouncer } from "../../controller/xds/debounce.js";
import { ResourceSet } from "../../controller/xds/resource-set.js";
import type { StateUpdater, StoredResource } from "../state/updater.js";

/** Options of local-file mode. */
export interface LocalSourceOptions {
  /** A YAML file or a directory of them. */
  path: string;
  node: string;
  translate: TranslateOptions;
  updater: StateUpdater;
  log: Logger;
  /** The local CA's bundle. */
  bundle: () => TrustBundle;
  debounceMs?: number;
}

/** Feeds the state updater from local YAML. */
export class LocalConfigSource {
  private readonly store = new ObjectStore();
  private readonly files: FileSource;
  private readonly debouncer: Debouncer;
  private readonly reporter: DiagnosticsReporter;
  private set: ResourceSet | undefined;
  private counter = 0;
  private readonly memo = new TranslationMemo();
  /** Resources refused (as a controller-fed agent would NACK them). */
  rejected: { type: ResourceKind; name: string; reason: string }[] = [];

  constructor(private readonly opts: LocalSourceOptions) {
    this.files = new FileSource({ path: opts.path, store: this.store, log: opts.log });
    this.reporter = new DiagnosticsReporter(opts.log);
    this.debouncer = new Debouncer(opts.debounceMs ?? 50, 500, () => this.recompute());
  }

  /** Loads the YAML and keeps following it. */
  start(): void {
    this.files.start();
    this.recompute();
    this.store.onChange(() => this.debouncer.trigger());
  }

  /** Stops following the YAML. */
  stop(): void {
    this.debouncer.cancel();
    this.files.stop();
  }

  /** Recomputes the node's state now (also after the CA's bundle changed). */
  recompute(): void {
    try {
      const model = translate(this.store.snapshot(), this.opts.translate, this.memo);
      this.reporter.update(model.diagnostics);
      this.set = new ResourceSet(model, this.opts.bundle(), `local-${++this.counter}`, this.set);
      const held = (kind: ResourceKind) => new Map(this.opts.updater.held(kind).map((r) => [r.name, r]));
      const rejected: typeof this.rejected = [];
      const out = {} as { [K in ResourceKind]: StoredResource<K>[] };
      for (const kind of RESOURCE_KINDS) {
        const previous = held(kind);
        const list: StoredResource[] = [];
        for (const r of this.set.forNode(this.opts.node, kind)) {
          try {
            list.push({ name: r.name, version: r.version, value: decodeResource(kind, r.name, r.body) });
          } catch (e) {
            rejected.push({ type: kind, name: r.name, reason: (e as Error).message });
            const prev = previous.get(r.name);
            if (prev) list.push(prev);
          }
        }
        (out as Record<ResourceKind, StoredResource[]>)[kind] = list;
      }
      for (const r of rejected) this.opts.log.warn(r, `${r.type} ${r.name} rejected: ${r.reason}`);
      this.rejected = rejected;
      this.opts.updater.replaceAll(this.set.systemVersion, out);
    } catch (e) {
      this.opts.log.error({ err: (e as Error).message }, "could not compute the local mesh state; keeping the previous one");
    }
  }

  /** Files, objects and problems, for status. */
  status(): object {
    return { path: this.opts.path, ...this.files.status(), diagnostics: this.reporter.list().length, rejected: this.rejected };
  }
}
