/**
 * The file store source: a directory of Kubernetes YAML (the local cluster's store, plus files
 * users drop in) or one YAML file (the agent's local mode), watched with inotify and a periodic
 * full rescan as a safety net. An inotify event names its file, so a change costs one stat and
 * one parse, not a scan of the whole store. A file that fails to parse keeps its last good
 * objects (reported once); dotfiles and editor/temp files are ignored; an object defined in two
 * files is reported and the later file (by name) wins.
 */
import { type FSWatcher, readdirSync, readFileSync, statSync, watch } from "node:fs";
import { basename, join } from "node:path";
import { errorMessage } from "../../common/errors.js";
import type { Logger } from "../../common/log.js";
import { objectKey } from "./kinds.js";
import type { ObjectStore } from "./object-store.js";
import { type ParsedObject, parseKubeYaml } from "./yaml-objects.js";

/** Options of the file source. */
export interface FileSourceOptions {
  /** A directory of YAML files, or one YAML file. */
  path: string;
  store: ObjectStore;
  log: Logger;
  /** Quiet time after a change before reading it (default 20 ms: the store writes files one by one). */
  debounceMs?: number;
  /** Full rescan interval, in case an inotify event is lost (default 10 s). */
  resyncMs?: number;
}

interface FileState {
  sig: string;
  /** Last good objects of the file, by store key. */
  objects: Map<string, ParsedObject>;
  /** Problems of the current version, reported once. */
  problems: string[];
}

/** Whether a directory entry is a store file (YAML/JSON, not hidden, not an editor's temp file). */
export function isStoreFile(name: string): boolean {
  if (name.startsWith(".") || name.endsWith("~") || name.startsWith("#")) return false;
  return /\.(ya?ml|json)$/.test(name);
}

/** Watches YAML files and keeps the object store in line with them. */
export class FileSource {
  private readonly files = new Map<string, FileState>();
  /** Which files define each object (usually one); the last by name wins. */
  private readonly owners = new Map<string, string[]>();
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private interval: NodeJS.Timeout | undefined;
  private readonly isDir: boolean;
  /** Files named by inotify since the last read; null after an event without a name (rescan all). */
  private dirty: Set<string> | null = new Set();

  constructor(private readonly opts: FileSourceOptions) {
    const st = statSync(opts.path, { throwIfNoEntry: false });
    if (!st)
      throw new Error(`file store ${opts.path} does not exist (start the local cluster, or pass an existing directory or YAML file)`);
    this.isDir = st.isDirectory();
  }

  /** Loads everything once, then watches for changes. */
  start(): void {
    this.rescan();
    try {
      this.watcher = watch(this.opts.path, { persistent: false }, (_event, name) => this.schedule(name ?? null));
      this.watcher.on("error", (e) =>
        this.opts.log.warn({ err: e.message, path: this.opts.path }, "file store watch failed; relying on periodic rescans"),
      );
    } catch (e) {
      this.opts.log.warn({ err: errorMessage(e), path: this.opts.path }, "cannot watch the file store; relying on periodic rescans");
    }
    this.interval = setInterval(() => this.rescan(), this.opts.resyncMs ?? 10_000);
    this.interval.unref();
  }

  /** Stops watching. */
  stop(): void {
    this.watcher?.close();
    if (this.timer) clearTimeout(this.timer);
    if (this.interval) clearInterval(this.interval);
  }

  /** Files and their current problems, for status. */
  status(): { files: number; objects: number; problems: { file: string; problems: string[] }[] } {
    const problems = [...this.files.entries()].filter(([, f]) => f.problems.length).map(([file, f]) => ({ file, problems: f.problems }));
    return { files: this.files.size, objects: this.owners.size, problems };
  }

  private schedule(name: string | Buffer | null): void {
    if (name === null || !this.isDir) this.dirty = null;
    else if (this.dirty) this.dirty.add(String(name));
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const names = this.dirty;
      this.dirty = new Set();
      if (names === null) this.rescan();
      else for (const n of names) if (isStoreFile(n)) this.refresh(join(this.opts.path, n));
    }, this.opts.debounceMs ?? 20);
  }

  private listFiles(): string[] {
    if (!this.isDir) return [this.opts.path];
    try {
      return readdirSync(this.opts.path)
        .filter(isStoreFile)
        .sort()
        .map((n) => join(this.opts.path, n));
    } catch (e) {
      this.opts.log.error({ err: errorMessage(e), path: this.opts.path }, "cannot read the file store");
      return [...this.files.keys()];
    }
  }

  /** Re-reads every changed file (stat-based) and drops vanished ones. */
  rescan(): void {
    const seen = new Set<string>();
    for (const path of this.listFiles()) {
      seen.add(path);
      this.refresh(path);
    }
    for (const path of [...this.files.keys()]) if (!seen.has(path)) this.refresh(path);
  }

  /** Brings one file's objects in line with the disk. */
  private refresh(path: string): void {
    const st = statSync(path, { throwIfNoEntry: false });
    const prev = this.files.get(path);
    if (!st?.isFile()) {
      if (prev) {
        this.files.delete(path);
        this.replace(path, prev.objects, new Map());
      }
      return;
    }
    const sig = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (prev?.sig === sig) return;
    const next = this.load(path, sig, prev);
    this.files.set(path, next);
    this.replace(path, prev?.objects ?? new Map(), next.objects);
  }

  private load(path: string, sig: string, prev: FileState | undefined): FileState {
    const name = this.isDir ? basename(path) : path;
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      // Removed between the event and the read: the next event or scan drops it.
      return { sig: "", objects: prev?.objects ?? new Map(), problems: [`${name}: ${errorMessage(e)}`] };
    }
    const parsed = parseKubeYaml(text, name);
    if (parsed.errors.length) {
      for (const e of parsed.errors) this.opts.log.error({ file: name }, `invalid YAML, keeping the file's previous objects: ${e}`);
      return { sig, objects: prev?.objects ?? new Map(), problems: parsed.errors };
    }
    for (const s of parsed.skipped) this.opts.log.warn({ file: name }, s);
    const objects = new Map(parsed.objects.map((p) => [objectKey(p.kind, p.object.metadata.namespace, p.object.metadata.name), p]));
    return { sig, objects, problems: parsed.skipped };
  }

  /** Applies one file's change of objects to the store, respecting other files' definitions. */
  private replace(path: string, before: Map<string, ParsedObject>, after: Map<string, ParsedObject>): void {
    if (before === after) return;
    for (const key of before.keys()) {
      if (after.has(key)) continue;
      const owners = (this.owners.get(key) ?? []).filter((f) => f !== path);
      const gone = before.get(key) as ParsedObject;
      if (owners.length === 0) {
        this.owners.delete(key);
        this.opts.store.remove(gone.kind, gone.object.metadata.namespace, gone.object.metadata.name);
      } else {
        this.owners.set(key, owners);
        const winner = this.files.get(owners[owners.length - 1] as string)?.objects.get(key);
        if (winner) this.opts.store.upsert(winner.kind, winner.object);
      }
    }
    for (const [key, p] of after) {
      let owners = this.owners.get(key) ?? [];
      if (!owners.includes(path)) {
        owners = [...owners, path].sort();
        this.owners.set(key, owners);
        if (owners.length > 1)
          this.opts.log.warn(
            { object: key, files: owners.map((f) => basename(f)) },
            "object is defined in more than one file; the last file (by name) wins",
          );
      }
      if (owners[owners.length - 1] !== path) continue; // another file's definition wins
      if (before.get(key)?.object !== p.object) this.opts.store.upsert(p.kind, p.object);
    }
  }
}
