/**
 * The page `weft graph --serve` serves: one self-contained HTML document (no CDN, no external
 * file) that polls /graph.json, draws the laid-out map as SVG, and shows an edge's numbers and
 * the policies that apply when it is clicked.
 */

const STYLE = `
body{margin:0;font:13px system-ui,sans-serif;display:flex;height:100vh;color:#222}
#map{flex:1;overflow:auto;background:#fafafa}
#side{width:320px;border-left:1px solid #ddd;padding:12px;overflow:auto}
h1{font-size:15px;margin:0 0 8px}
.node rect{fill:#fff;stroke:#557;stroke-width:1.5;rx:8}
.node.service rect{stroke-dasharray:4 3}
.node text{font-size:12px;text-anchor:middle;dominant-baseline:middle}
.node .ns{font-size:10px;fill:#777}
.edge path.line{fill:none;stroke:#2a7;stroke-width:2}
.edge.plain path.line{stroke:#999}
.edge.denied path.line{stroke:#d22;stroke-dasharray:6 4}
.edge.errors path.line{stroke:#e80}
.edge path.hit{fill:none;stroke:transparent;stroke-width:14;cursor:pointer}
.edge text{font-size:11px;fill:#333;paint-order:stroke;stroke:#fafafa;stroke-width:3px;cursor:pointer}
.edge.selected path.line{stroke-width:4}
table{border-collapse:collapse;width:100%}td{padding:2px 4px;border-bottom:1px solid #eee;vertical-align:top}
td:first-child{color:#666;white-space:nowrap}
#status{color:#777;font-size:11px;margin-top:8px}
`;

// The page script: plain browser JavaScript kept as a string (it runs in the browser, not Node).
const SCRIPT = `
const NS = "http://www.w3.org/2000/svg";
let data = null, selected = null;
const el = (tag, attrs, parent) => { const e = document.createElementNS(NS, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (parent) parent.appendChild(e); return e; };
const fmt = (v, unit) => v === undefined || v === null ? "-" : (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + (unit || "");
function label(e) { return fmt(e.rps) + (e.protocol === "tcp" ? " cps" : " rps") + (e.denied ? " DENIED" : e.errorRate > 0 ? " " + (e.errorRate * 100).toFixed(1) + "% err" : ""); }
function draw() {
  const svg = document.getElementById("svg");
  svg.textContent = "";
  const pos = new Map(data.layout.nodes.map((n) => [n.id, n]));
  svg.setAttribute("width", Math.max(data.layout.width, 400)); svg.setAttribute("height", Math.max(data.layout.height, 300));
  const defs = el("defs", {}, svg);
  const m = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
  el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#555" }, m);
  const W = 150, H = 40;
  for (const e of data.graph.edges) {
    const a = pos.get(e.source), b = pos.get(e.destination);
    if (!a || !b) continue;
    const cls = ["edge", e.denied ? "denied" : e.errorRate > 0.05 ? "errors" : e.mtls === "mutual_tls" ? "mtls" : "plain", selected === e.id ? "selected" : ""].join(" ");
    const g = el("g", { class: cls, "data-edge-id": e.id }, svg);
    const x1 = a.x + W / 2, y1 = a.y, x2 = b.x - W / 2, y2 = b.y;
    const back = x2 < x1;
    const d = back ? "M" + (a.x) + "," + (a.y + H / 2) + " C" + a.x + "," + (a.y + 120) + " " + b.x + "," + (b.y + 120) + " " + b.x + "," + (b.y + H / 2)
                   : "M" + x1 + "," + y1 + " C" + (x1 + x2) / 2 + "," + y1 + " " + (x1 + x2) / 2 + "," + y2 + " " + x2 + "," + y2;
    el("path", { class: "line", d, "marker-end": "url(#arrow)" }, g);
    el("path", { class: "hit", d }, g);
    const t = el("text", { class: "edge-label", x: back ? (a.x + b.x) / 2 : (x1 + x2) / 2, y: back ? Math.max(a.y, b.y) + 95 : (y1 + y2) / 2 - 6, "text-anchor": "middle" }, g);
    t.textContent = label(e);
    g.addEventListener("click", () => { selected = e.id; show(e); draw(); });
  }
  for (const n of data.graph.nodes) {
    const p = pos.get(n.id); if (!p) continue;
    const g = el("g", { class: "node " + n.kind, "data-node-id": n.id, transform: "translate(" + (p.x - W / 2) + "," + (p.y - H / 2) + ")" }, svg);
    el("rect", { width: W, height: H }, g);
    const t = el("text", { x: W / 2, y: H / 2 - 6 }, g); t.textContent = n.name.length > 22 ? n.name.slice(0, 21) + "…" : n.name;
    const s = el("text", { class: "ns", x: W / 2, y: H / 2 + 9 }, g); s.textContent = n.namespace;
  }
}
function show(e) {
  const rows = [["edge", e.source + " → " + e.destination], ["services", e.services.join(", ") || "-"], ["protocol", e.protocol],
    [e.protocol === "tcp" ? "connections/s" : "requests/s", fmt(e.rps)], ["error rate", (e.errorRate * 100).toFixed(2) + "%"],
    ["p50", fmt(e.p50Ms, " ms")], ["p99", fmt(e.p99Ms, " ms")], ["mTLS", e.mtls], ["denied", e.denied ? "yes (" + fmt(e.deniedRate) + "/s now)" : "no"],
    ["bytes/s", String(e.bytesPerSecond)], ["total", String(e.total)]];
  const pol = (data.policies[e.id] || []);
  const box = document.getElementById("details");
  box.innerHTML = "";
  const tbl = document.createElement("table");
  for (const [k, v] of rows) { const tr = tbl.insertRow(); tr.insertCell().textContent = k; tr.insertCell().textContent = v; }
  const tr = tbl.insertRow(); tr.insertCell().textContent = "policies";
  tr.insertCell().textContent = pol.length ? pol.map((p) => p.kind + " " + p.key + " (" + p.effect + ")").join("\\n") : "none";
  tr.cells[1].style.whiteSpace = "pre-line"; tr.id = "policies";
  box.appendChild(tbl);
}
async function refresh() {
  try {
    const r = await fetch("graph.json", { cache: "no-store" });
    data = await r.json();
    draw();
    if (selected) { const e = data.graph.edges.find((x) => x.id === selected); if (e) show(e); }
    document.getElementById("status").textContent = data.graph.edges.length + " edges, " + data.graph.source + ", updated " + data.graph.generatedAt.slice(11, 19) + (data.problems.length ? " — " + data.problems.join("; ") : "");
    document.body.dataset.ready = "1";
  } catch (err) { document.getElementById("status").textContent = "update failed: " + err; }
}
refresh(); setInterval(refresh, REFRESH_MS);
`;

/** The page; `refreshMs` is how often it polls. */
export function graphPage(refreshMs: number): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>weft graph</title><style>${STYLE}</style></head>
<body><div id="map"><svg id="svg" xmlns="http://www.w3.org/2000/svg"></svg></div>
<div id="side"><h1>weft service map</h1><div id="details">Click an edge to see its numbers and the policies that apply.</div><div id="status">loading…</div></div>
<script>const REFRESH_MS = ${Math.max(250, Math.round(refreshMs))};${SCRIPT}</script></body></html>
`;
}
