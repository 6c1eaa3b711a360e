/** The map as text: a table that fits 80 columns, and Graphviz dot. */
import type { Graph, GraphEdge } from "./graph-model.js";

function pad(text: string, width: number): string {
  if (text.length <= width) return text.padEnd(width);
  return `${text.slice(0, width - 1)}…`;
}

function num(v: number | undefined, unit = ""): string {
  if (v === undefined) return "-";
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k${unit}`;
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)}${unit}`;
}

/** Short node name: "ns/workload" unless it is in the namespace of the group. */
function short(id: string, ns: string): string {
  if (id.startsWith("svc:")) return id.slice(4).split(".").slice(0, 2).join(".");
  return id.startsWith(`${ns}/`) ? id.slice(ns.length + 1) : id;
}

/** One line per edge, grouped by the source's namespace; every line ≤ 80 columns. */
export function renderTable(g: Graph, width = 80): string {
  const w = Math.max(60, Math.min(width, 200));
  const nums = 6 + 1 + 6 + 1 + 7 + 1 + 7 + 1 + 5; // RPS ERR% P50 P99 MTLS
  const names = w - nums - 2;
  const side = Math.floor((names - 3) / 2);
  const header = `${pad("SOURCE", side)} → ${pad("DESTINATION", names - side - 3)} ${"RPS".padStart(6)} ${"ERR%".padStart(6)} ${"P50".padStart(7)} ${"P99".padStart(7)} MTLS`;
  const lines = [
    `weft graph: ${g.edges.length} edge(s), ${g.nodes.length} node(s), from ${g.source}${g.windowSeconds ? ` over ${g.windowSeconds.toFixed(0)}s` : ""} at ${g.generatedAt.slice(11, 19)}`,
    header,
  ];
  const byNs = new Map<string, GraphEdge[]>();
  for (const e of g.edges) {
    const ns = g.nodes.find((n) => n.id === e.source)?.namespace ?? "unknown";
    byNs.set(ns, [...(byNs.get(ns) ?? []), e]);
  }
  for (const [ns, edges] of [...byNs].sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(pad(`[${ns}]`, w).trimEnd());
    for (const e of edges) {
      const flag = e.denied ? "DENY" : e.mtls === "mutual_tls" ? "yes" : e.mtls === "partial" ? "some" : "no";
      lines.push(
        `${pad(short(e.source, ns), side)} → ${pad(short(e.destination, ns), names - side - 3)} ${num(e.rps).padStart(6)} ${(e.rps > 0 ? `${(e.errorRate * 100).toFixed(1)}%` : "-").padStart(6)} ${num(e.p50Ms, "ms").padStart(7)} ${num(e.p99Ms, "ms").padStart(7)} ${flag}`.slice(
          0,
          w,
        ),
      );
    }
  }
  if (g.edges.length === 0) lines.push("(no traffic seen yet)");
  return lines.join("\n");
}

function q(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** Graphviz dot: one cluster per namespace; denied edges red and dashed, plain-text ones grey. */
export function renderDot(g: Graph): string {
  const out = [
    "digraph weft {",
    "  rankdir=LR;",
    '  node [shape=box, style=rounded, fontname="sans-serif"];',
    '  edge [fontname="sans-serif", fontsize=10];',
  ];
  const byNs = new Map<string, typeof g.nodes>();
  for (const n of g.nodes) byNs.set(n.namespace, [...(byNs.get(n.namespace) ?? []), n]);
  for (const [ns, nodes] of [...byNs].sort(([a], [b]) => a.localeCompare(b))) {
    out.push(`  subgraph ${q(`cluster_${ns}`)} {`, `    label=${q(ns)};`);
    for (const n of nodes) out.push(`    ${q(n.id)} [label=${q(n.name)}${n.kind === "service" ? ", shape=ellipse" : ""}];`);
    out.push("  }");
  }
  for (const e of g.edges) {
    const label = `${num(e.rps)} ${e.protocol === "tcp" ? "cps" : "rps"}${e.rps > 0 ? ` ${(e.errorRate * 100).toFixed(1)}% err` : ""}${e.p99Ms !== undefined ? ` p99 ${num(e.p99Ms, "ms")}` : ""}${e.mtls === "mutual_tls" ? " mTLS" : ""}${e.denied ? " DENIED" : ""}`;
    const style = e.denied ? ", color=red, fontcolor=red, style=dashed" : e.mtls === "mutual_tls" ? "" : ", color=gray40";
    out.push(`  ${q(e.source)} -> ${q(e.destination)} [label=${q(label)}${style}];`);
  }
  out.push("}");
  return out.join("\n");
}
