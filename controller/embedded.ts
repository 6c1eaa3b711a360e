/**
 * The controller's one published entry for running it in-process: the agent's local-file mode
 * has no controller, so it runs the controller's own file source, translation, per-node
 * selection and CA through this module. The layer rule lets agent code import
 * `controller/api/*` and this file, nothing else of the controller: what local mode needs from
 * the controller is visible here and nowhere else.
 */

import type { Logger } from "../common/log.js";
import type { ResourceKind } from "./api/resources.js";
import type { TrustBundle } from "./api/wire-types.js";
import { DiagnosticsReporter } from "./diagnostics.js";
import { FileSource } from "./sources/file.js";
import { ObjectStore } from "./sources/object-store.js";
import { TranslationMemo, translate } from "./translate/index.js";
import type { TranslateOptions } from "./translate/types.js";
import { Debouncer } from "./xds/debounce.js";
import { type EncodedResource, ResourceSet } from "./xds/resource-set.js";

export { CertificateAuthority } from "./ca/ca.js";
export { loadStateDirCa } from "./ca/root-store.js";
export { validateTranslateOptions } from "./translate/index.js";
export type { TranslateOptions };

/** Options of an embedded translation. */
export interface EmbeddedTranslationOptions {
  /** A YAML file or a directory of them. */
  path: string;
  translate: TranslateOptions;
  log: Logger;
  /** The CA's bundle, carried in every computed set. */
  bundle: () => TrustBundle;
  debounceMs?: number;
}

/** One computed result: what a controller would push, selectable per node. */
export interface EmbeddedResult {
  systemVersion: string;
  /** The encoded resources of one kind a node receives (as the wire would carry them). */
  forNode(node: string, kind: ResourceKind): Iterable<EncodedResource>;
}

/** The controller's file source → translation → resource set, run in-process. */
export class EmbeddedTranslation {
  private readonly store = new ObjectStore();
  private readonly files: FileSource;
  private readonly debouncer: Debouncer;
  private readonly reporter: DiagnosticsReporter;
  private readonly memo = new TranslationMemo();
  private set: ResourceSet | undefined;
  private counter = 0;

  constructor(
    private readonly opts: EmbeddedTranslationOptions,
    onChange: () => void,
  ) {
    this.files = new FileSource({ path: opts.path, store: this.store, log: opts.log });
    this.reporter = new DiagnosticsReporter(opts.log);
    this.debouncer = new Debouncer(opts.debounceMs ?? 50, 500, onChange);
  }

  /** Loads the YAML and keeps following it (onChange fires, debounced, after every change). */
  start(): void {
    this.files.start();
    this.store.onChange(() => this.debouncer.trigger());
  }

  /** Stops following the YAML. */
  stop(): void {
    this.debouncer.cancel();
    this.files.stop();
  }

  /** Translates what the files hold now; throws if translation itself fails. */
  compute(prefix = "local"): EmbeddedResult {
    const model = translate(this.store.snapshot(), this.opts.translate, this.memo);
    this.reporter.update(model.diagnostics);
    this.set = new ResourceSet(model, this.opts.bundle(), `${prefix}-${++this.counter}`, this.set);
    return this.set;
  }

  /** Files, objects and problems, for status. */
  status(): { files: number; objects: number; problems: { file: string; problems: string[] }[]; diagnostics: number } {
    return { ...this.files.status(), diagnostics: this.reporter.list().length };
  }
}
