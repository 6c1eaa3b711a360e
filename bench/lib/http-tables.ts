/**
 * What http.ts measures and how its tables are cut: the wrk scenarios, which variants run which
 * scenario, and each table's rows and baselines. Kept apart from http.ts (which runs on import)
 * so the layout is unit-tested.
 */
import type { VariantName } from "./variant.js";

/** One wrk scenario. */
export interface Scenario {
  id: "c1" | "c50" | "conn";
  table: string;
  connections: number;
  close: boolean;
}

/** The scenarios, in report order. */
export const SCENARIOS: readonly Scenario[] = [
  { id: "c1", table: "Request/response: HTTP/1.1 keep-alive, 1 KiB body, 1 connection", connections: 1, close: false },
  { id: "c50", table: "Request/response: HTTP/1.1 keep-alive, 1 KiB body, 50 connections", connections: 50, close: false },
  { id: "conn", table: "New connections: one request per connection (Connection: close), 50 concurrent", connections: 50, close: true },
];

/** The variants of the L4 tables (new connections are measured on these only). */
const L4_TABLE: readonly VariantName[] = ["direct", "haproxy", "weft"];
/**
 * The same-node tables: weft's kernel splice between two pods of node 1, against the same two
 * pods with no proxy and against the HAProxy mTLS pair (whose row crosses nodes, as a pair does).
 */
const SAME_NODE_TABLE: readonly VariantName[] = ["direct", "direct-same-node", "haproxy", "weft-same-node"];
/** The variants of the L7 tables. */
const L7_TABLE: readonly VariantName[] = ["direct", "haproxy-http", "weft", "weft-l7"];
/**
 * The authorization-cost table: the L7 path with 100 policies at the destination, with 1 (the
 * destination parses every request: the baseline of the policies' own cost) and with none (the
 * destination splices at L4: the whole cost of checking requests there).
 */
const AUTHZ_TABLE: readonly VariantName[] = ["weft-l7", "weft-l7-authz1", "weft-l7-authz"];

/** A table: the variants it shows and the baselines each row is compared with. */
export interface TableSpec {
  table: string;
  scenario: Scenario;
  variants: readonly VariantName[];
  /** Every row gets "… vs <baseline>" ratios for these (the first is direct). */
  baselines: readonly VariantName[];
  /** Also a plain p50 ratio against each baseline (not only the added latency over direct). */
  p50Ratio?: boolean;
}

/** The tables http.ts reports, in order. */
export function tableSpecs(): TableSpec[] {
  const specs: TableSpec[] = SCENARIOS.map((s) => ({ table: s.table, scenario: s, variants: L4_TABLE, baselines: ["direct", "haproxy"] }));
  for (const s of SCENARIOS.filter((x) => x.id !== "conn"))
    specs.push({
      table: `L7: ${s.table} — weft's L7 path and HAProxy in HTTP mode`,
      scenario: s,
      variants: L7_TABLE,
      baselines: ["direct", "haproxy-http", "weft"],
    });
  for (const s of SCENARIOS.filter((x) => x.id !== "conn"))
    specs.push({
      table: `Same node: ${s.table} — weft's kernel splice between two pods of one node`,
      scenario: s,
      variants: SAME_NODE_TABLE,
      baselines: ["direct", "haproxy", "direct-same-node"],
      p50Ratio: true,
    });
  const c50 = SCENARIOS.find((x) => x.id === "c50") as Scenario;
  specs.push({
    table: `L7 authorization: ${c50.table} — 100 AuthorizationPolicies at the destination vs 1 and vs none`,
    scenario: c50,
    variants: AUTHZ_TABLE,
    baselines: ["direct", "weft-l7", "weft-l7-authz1"],
    p50Ratio: true,
  });
  return specs;
}

/**
 * Whether a variant runs a scenario: new connections are measured on the cross-node L4 paths
 * only, and the policies' cost at c=50 only (the one row that asks for it).
 */
export function runs(s: { id: string }, v: VariantName): boolean {
  if (v === "weft-l7-authz" || v === "weft-l7-authz1") return s.id === "c50";
  if (v === "weft-same-node" || v === "direct-same-node") return s.id !== "conn";
  return s.id !== "conn" || L4_TABLE.includes(v);
}
