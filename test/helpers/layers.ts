/**
 * The layer rule of docs/ARCHITECTURE.md as data, and the check of an import graph against it.
 * Each source file belongs to exactly one layer (the first rule that matches its path); a file may
 * import files of its own layer and of the layers listed in `may`, nothing else.
 */
import { relative } from "node:path";

/** One layer: which files it holds and which layers it may import. */
export interface Layer {
  name: string;
  /** Does this (root-relative, forward-slash) path belong to the layer? */
  holds: (path: string) => boolean;
  may: readonly string[];
}

const under =
  (...prefixes: string[]) =>
  (p: string) =>
    prefixes.some((x) => p.startsWith(x));
const is =
  (...paths: string[]) =>
  (p: string) =>
    paths.includes(p);

/**
 * Bottom to top. Order matters only for matching (the first layer that holds a path owns it), so
 * the narrow entries (the controller's published files) come before the folders that contain them.
 */
export const LAYERS: readonly Layer[] = [
  // Errors and their codes sit under everything, so even the kernel bindings throw coded errors.
  { name: "errors", holds: is("common/errors.ts"), may: [] },
  { name: "native", holds: under("native/"), may: ["errors"] },
  { name: "common", holds: under("common/"), may: ["errors", "native"] },
  { name: "contract", holds: under("controller/api/"), may: ["common", "errors", "native"] },
  // The controller's published entries: what the agent and the CLI may use of it.
  { name: "controller-entry", holds: is("controller/embedded.ts"), may: ["controller", "contract", "common", "errors", "native"] },
  { name: "controller-commands", holds: is("controller/cli.ts"), may: ["controller", "contract", "common", "errors", "native"] },
  { name: "cli", holds: under("agent/cli/"), may: ["agent", "controller-commands", "contract", "common", "errors", "native"] },
  { name: "controller", holds: under("controller/"), may: ["contract", "common", "errors", "native"] },
  { name: "agent", holds: under("agent/"), may: ["controller-entry", "contract", "common", "errors", "native"] },
  // Nothing shipped imports these; they may use everything shipped.
  {
    name: "test-bed",
    holds: under("scripts/"),
    may: ["cli", "agent", "controller", "controller-entry", "controller-commands", "contract", "common", "errors", "native"],
  },
  {
    name: "bench",
    holds: under("bench/"),
    may: ["test-bed", "cli", "agent", "controller", "controller-entry", "controller-commands", "contract", "common", "errors", "native"],
  },
];

/** The layer of a root-relative path, or undefined when no layer holds it. */
export function layerOf(path: string, layers: readonly Layer[] = LAYERS): Layer | undefined {
  return layers.find((l) => l.holds(path));
}

/** Every import that breaks the rule, as "from → to (layer a may not import layer b)". */
export function layerViolations(graph: Map<string, string[]>, root: string, layers: readonly Layer[] = LAYERS): string[] {
  const out: string[] = [];
  const rel = (f: string) => relative(root, f).split("\\").join("/");
  for (const [file, deps] of graph) {
    const from = rel(file);
    const a = layerOf(from, layers);
    if (!a) {
      out.push(`${from}: in no layer (add it to the rule in test/helpers/layers.ts and docs/ARCHITECTURE.md)`);
      continue;
    }
    for (const dep of deps) {
      const to = rel(dep);
      const b = layerOf(to, layers);
      if (!b) out.push(`${from} → ${to}: the target is in no layer`);
      else if (b !== a && !a.may.includes(b.name)) out.push(`${from} → ${to} (${a.name} may not import ${b.name})`);
    }
  }
  return out.sort();
}
