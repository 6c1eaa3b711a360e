/**
 * The last config the agent accepted (every resource it holds, as the controller sent it), saved
 * so a cold start serves from it while the controller is away. The file holds the wire bodies and
 * each is decoded and validated again on load, as if the controller had just sent it; one that
 * fails discards the whole file: a config missing one policy could allow what that policy denies.
 */
import { errorMessage } from "../../common/errors.js";
import { decodeResource, encodeResource, RESOURCE_KINDS, type ResourceKind } from "../../controller/api/resources.js";
import type { StateUpdater, StoredResource } from "../state/updater.js";
import { readIfExists, writeAtomic } from "./state-dir.js";

/** File name in the state directory. */
export const CONFIG_FILE = "config.json";
const FORMAT = 1;

interface SavedKind {
  systemVersion: string;
  resources: { name: string; version: string; body: string }[];
}

interface SavedConfig {
  format: number;
  node: string;
  savedAt: string;
  kinds: Partial<Record<ResourceKind, SavedKind>>;
}

/** A loaded config, ready to apply. */
export interface LoadedConfig {
  savedAt: string;
  kinds: { kind: ResourceKind; systemVersion: string; resources: StoredResource[] }[];
}

/** The updater's resources as the file's text; null until every type has been received. */
export function renderConfig(updater: StateUpdater, now = new Date()): string | null {
  if (!updater.state.get().synced) return null;
  const versions = updater.appliedVersions();
  const kinds: SavedConfig["kinds"] = {};
  for (const kind of RESOURCE_KINDS) {
    kinds[kind] = {
      systemVersion: versions[kind] ?? "",
      resources: updater.held(kind).map((r) => ({
        name: r.name,
        version: r.version,
        body: Buffer.from(encodeResource(kind, r.value as never)).toString("base64"),
      })),
    };
  }
  const saved: SavedConfig = { format: FORMAT, node: updater.nodeName, savedAt: now.toISOString(), kinds };
  return JSON.stringify(saved);
}

/** Saves the updater's config (when it has a complete one). */
export function saveConfig(dir: string, updater: StateUpdater): boolean {
  const text = renderConfig(updater);
  if (text === null) return false;
  writeAtomic(dir, CONFIG_FILE, text);
  return true;
}

/** Parses and validates a saved config; throws naming what is wrong and where. */
export function parseConfig(text: string, node: string): LoadedConfig {
  let saved: SavedConfig;
  try {
    saved = JSON.parse(text) as SavedConfig;
  } catch (e) {
    throw new Error(`not JSON: ${errorMessage(e)}`);
  }
  if (saved?.format !== FORMAT) throw new Error(`format ${String(saved?.format)} is not ${FORMAT}`);
  if (saved.node !== node) throw new Error(`saved for node '${saved.node}', not '${node}'`);
  const kinds: LoadedConfig["kinds"] = [];
  for (const kind of RESOURCE_KINDS) {
    const k = saved.kinds?.[kind];
    if (!k || !Array.isArray(k.resources)) throw new Error(`no ${kind} resources`);
    const resources = k.resources.map((r, i) => {
      if (typeof r?.name !== "string" || typeof r.version !== "string" || typeof r.body !== "string")
        throw new Error(`${kind}[${i}]: expected name, version and body`);
      try {
        return { name: r.name, version: r.version, value: decodeResource(kind, r.name, Buffer.from(r.body, "base64")) };
      } catch (e) {
        throw new Error(`${kind} '${r.name}': ${errorMessage(e)}`);
      }
    });
    kinds.push({ kind, systemVersion: String(k.systemVersion ?? ""), resources });
  }
  return { savedAt: String(saved.savedAt), kinds };
}

/** Reads dir's saved config: null when there is none; throws when there is one that is not usable. */
export function loadConfig(dir: string, node: string): LoadedConfig | null {
  const text = readIfExists(dir, CONFIG_FILE);
  return text === null ? null : parseConfig(text, node);
}

/** Applies a loaded config to the updater (which then counts as synced) and publishes it. */
export function restoreConfig(updater: StateUpdater, loaded: LoadedConfig): void {
  for (const k of loaded.kinds) updater.apply(k.kind, k.systemVersion, k.resources, []);
  updater.flush();
}
