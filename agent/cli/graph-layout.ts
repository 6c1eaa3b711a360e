/**
 * A small layered (Sugiyama-style) layout, written for weft: no layout library is installed and
 * the page must work offline. Steps: break cycles (reverse DFS back edges), assign layers by
 * longest path, order each layer by namespace then by the barycenter of its neighbours (a few
 * down/up sweeps, which cuts most crossings), then place layers as columns. Long edges get no
 * dummy nodes: they are drawn as curves, which a service map of a few dozen nodes tolerates.
 */

/** A node placed: its centre. */
export interface Placed {
  id: string;
  x: number;
  y: number;
  layer: number;
}

/** Layout input: node ids with a group (namespace), and directed edges. */
export interface LayoutInput {
  nodes: readonly { id: string; group: string }[];
  edges: readonly { source: string; destination: string }[];
}

/** Spacing of the layout. */
export interface LayoutOptions {
  columnWidth: number;
  rowHeight: number;
  margin: number;
}

const DEFAULTS: LayoutOptions = { columnWidth: 260, rowHeight: 90, margin: 110 };

function acyclic(ids: readonly string[], edges: LayoutInput["edges"]): [string, string][] {
  const out = new Map<string, string[]>(ids.map((i) => [i, []]));
  for (const e of edges) if (e.source !== e.destination) out.get(e.source)?.push(e.destination);
  const state = new Map<string, 1 | 2>();
  const kept: [string, string][] = [];
  const visit = (n: string) => {
    state.set(n, 1);
    for (const m of out.get(n) ?? []) {
      if (state.get(m) === 1)
        kept.push([m, n]); // a back edge: reversed
      else {
        kept.push([n, m]);
        if (!state.has(m)) visit(m);
      }
    }
    state.set(n, 2);
  };
  for (const i of ids) if (!state.has(i)) visit(i);
  return kept;
}

/** Lays the graph out; deterministic for a given input. */
export function layeredLayout(
  input: LayoutInput,
  options: Partial<LayoutOptions> = {},
): { nodes: Placed[]; width: number; height: number } {
  const o = { ...DEFAULTS, ...options };
  const ids = [...input.nodes.map((n) => n.id)].sort();
  const group = new Map(input.nodes.map((n) => [n.id, n.group]));
  const edges = acyclic(ids, input.edges);
  const preds = new Map<string, string[]>(ids.map((i) => [i, []]));
  const succs = new Map<string, string[]>(ids.map((i) => [i, []]));
  for (const [a, b] of edges) {
    preds.get(b)?.push(a);
    succs.get(a)?.push(b);
  }
  // Longest path from a source: callers left of callees.
  const layer = new Map<string, number>();
  const depth = (n: string, seen: Set<string>): number => {
    const known = layer.get(n);
    if (known !== undefined) return known;
    if (seen.has(n)) return 0;
    seen.add(n);
    const d = Math.max(-1, ...(preds.get(n) ?? []).map((p) => depth(p, seen))) + 1;
    layer.set(n, d);
    return d;
  };
  for (const i of ids) depth(i, new Set());
  const layers: string[][] = [];
  for (const i of ids) {
    const k = layer.get(i) ?? 0;
    const l = layers[k] ?? [];
    l.push(i);
    layers[k] = l;
  }
  for (const l of layers) l.sort((a, b) => (group.get(a) ?? "").localeCompare(group.get(b) ?? "") || a.localeCompare(b));
  const pos = new Map<string, number>();
  const index = () => {
    for (const l of layers) for (const [k, n] of l.entries()) pos.set(n, k);
  };
  index();
  const sweep = (l: string[], neighbours: Map<string, string[]>) => {
    const bary = new Map(
      l.map((n) => {
        const ns = neighbours.get(n) ?? [];
        return [n, ns.length ? ns.reduce((s, m) => s + (pos.get(m) ?? 0), 0) / ns.length : (pos.get(n) ?? 0)] as const;
      }),
    );
    // Namespace stays the first key, so a namespace's nodes stay together in each column.
    l.sort(
      (a, b) => (group.get(a) ?? "").localeCompare(group.get(b) ?? "") || (bary.get(a) ?? 0) - (bary.get(b) ?? 0) || a.localeCompare(b),
    );
  };
  for (let it = 0; it < 4; it++) {
    for (let k = 1; k < layers.length; k++) {
      sweep(layers[k] ?? [], preds);
      index();
    }
    for (let k = layers.length - 2; k >= 0; k--) {
      sweep(layers[k] ?? [], succs);
      index();
    }
  }
  const tallest = Math.max(1, ...layers.map((l) => l?.length ?? 0));
  const height = 2 * o.margin + (tallest - 1) * o.rowHeight;
  const nodes: Placed[] = [];
  layers.forEach((l, k) => {
    const top = (height - (l.length - 1) * o.rowHeight) / 2;
    l.forEach((id, r) => {
      nodes.push({ id, layer: k, x: o.margin + k * o.columnWidth, y: top + r * o.rowHeight });
    });
  });
  return { nodes, width: 2 * o.margin + Math.max(0, layers.length - 1) * o.columnWidth, height };
}
