/**
 * Local-file mode: the agent runs from Kubernetes YAML (a file or a directory) with no
 * controller, like ztunnel's local config. The YAML goes through the controller's own code path —
 * the same file source, translation and per-node selection, encoded and decoded as the wire would
 * carry it — so what the agent holds is exactly what a controller would have sent it, and a
 * resource the agent would NACK is refused here too (logged, previous version kept).
 */

import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/log.js";
import { decodeResource, RESOURCE_KINDS, type ResourceKind } from "../../controller/api/resources.js";
import type { TrustBundle } from "../../controller/api/wire-types.js";
import { EmbeddedTranslation, type TranslateOptions } from "../../controller/embedded.js";
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
  private readonly translation: EmbeddedTranslation;
  /** Resources refused (as a controller-fed agent would NACK them). */
  rejected: { type: ResourceKind; name: string; reason: string }[] = [];

  constructor(private readonly opts: LocalSourceOptions) {
    this.translation = new EmbeddedTranslation(
      {
        path: opts.path,
        translate: opts.translate,
        log: opts.log,
        bundle: opts.bundle,
        ...(opts.debounceMs !== undefined ? { debounceMs: opts.debounceMs } : {}),
      },
      () => this.recompute(),
    );
  }

  /** Loads the YAML and keeps following it. */
  start(): void {
    this.translation.start();
    this.recompute();
  }

  /** Stops following the YAML. */
  stop(): void {
    this.translation.stop();
  }

  /** Recomputes the node's state now (also after the CA's bundle changed). */
  recompute(): void {
    try {
      const set = this.translation.compute();
      const held = (kind: ResourceKind) => new Map(this.opts.updater.held(kind).map((r) => [r.name, r]));
      const rejected: typeof this.rejected = [];
      const out = {} as { [K in ResourceKind]: StoredResource<K>[] };
      for (const kind of RESOURCE_KINDS) {
        const previous = held(kind);
        const list: StoredResource[] = [];
        for (const r of set.forNode(this.opts.node, kind)) {
          try {
            list.push({ name: r.name, version: r.version, value: decodeResource(kind, r.name, r.body) });
          } catch (e) {
            rejected.push({ type: kind, name: r.name, reason: errorMessage(e) });
            const prev = previous.get(r.name);
            if (prev) list.push(prev);
          }
        }
        (out as Record<ResourceKind, StoredResource[]>)[kind] = list;
      }
      for (const r of rejected) this.opts.log.warn(r, `${r.type} ${r.name} rejected: ${r.reason}`);
      this.rejected = rejected;
      this.opts.updater.replaceAll(set.systemVersion, out);
    } catch (e) {
      this.opts.log.error({ err: errorMessage(e) }, "could not compute the local mesh state; keeping the previous one");
    }
  }

  /** Files, objects and problems, for status. */
  status(): object {
    const { diagnostics, ...files } = this.translation.status();
    return { path: this.opts.path, ...files, diagnostics, rejected: this.rejected };
  }
}
