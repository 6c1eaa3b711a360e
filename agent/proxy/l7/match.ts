/**
 * Compiled request matchers of a RouteTable. The router runs per request, so a table's matchers
 * (regexes above all) are built once per RouteTable object and kept in a WeakMap: a new snapshot
 * brings new objects and the old compilations go with the old snapshot.
 *
 * Semantics (Istio's, which Gateway API's are a subset of):
 * - Paths are matched without the query string. Regexes must match the WHOLE value (RE2 style);
 *   they run as JavaScript regexes, so RE2-only syntax (e.g. [[:alpha:]]) is not understood.
 * - A regex that does not compile makes its condition never match (fail closed), never throws.
 * - Authority conditions are tried against the authority as received and, when it carries a
 *   ":port" suffix, against the host alone, so "reviews" matches a request for "reviews:9080".
 * - A header with several values is matched against its values joined by ",", as Envoy does.
 * - Query parameters are matched on their percent-decoded value ("+" stays "+"); the first
 *   occurrence of a name counts; "?key" has the value "".
 */
import type { HttpMatch, HttpRouteRule, RouteTable, StringMatch, Workload } from "../../../controller/api/model.js";
import { labelsMatch } from "../../state/view.js";

/** Where a decision came from, for metrics, access logs and `weft explain`. */
export interface RouteRef {
  /** RouteTable.key; absent for the default route (no table applies). */
  table?: string;
  /** The rule's name, else "http[<index>]". */
  rule?: string;
}

/** The request facts the matchers look at, with the query string parsed only when asked for. */
export class RequestFacts {
  /** Path without the query string. */
  readonly path: string;
  /** Query string without "?" ("" when none). */
  readonly query: string;
  /** Authority without a ":port" suffix (the authority itself when it has none). */
  readonly host: string;
  private params: Map<string, string> | undefined;

  constructor(
    readonly method: string,
    target: string,
    readonly authority: string,
    readonly scheme: string,
    readonly headers: Readonly<Record<string, string | string[] | undefined>>,
    readonly port: number,
    readonly source: Workload,
  ) {
    const q = target.indexOf("?");
    this.path = q < 0 ? target : target.slice(0, q);
    this.query = q < 0 ? "" : target.slice(q + 1);
    this.host = stripPort(authority);
  }

  /** A header's value; several values joined by ",". */
  header(name: string): string | undefined {
    const v = this.headers[name];
    return Array.isArray(v) ? v.join(",") : v;
  }

  /** The decoded value of a query parameter's first occurrence. */
  queryParam(name: string): string | undefined {
    this.params ??= parseQuery(this.query);
    return this.params.get(name);
  }
}

/** An authority without its ":port" suffix (IPv6 literals keep their brackets). */
export function stripPort(authority: string): string {
  const colon = authority.lastIndexOf(":");
  if (colon < 0 || authority.indexOf("]", colon) >= 0) return authority;
  return /^\d+$/.test(authority.slice(colon + 1)) ? authority.slice(0, colon) : authority;
}

function decode(s: string): string {
  if (!s.includes("%")) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // Malformed escapes: compare the raw text rather than fail the request.
  }
}

function parseQuery(query: string): Map<string, string> {
  const out = new Map<string, string>();
  if (query === "") return out;
  for (const part of query.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const name = decode(eq < 0 ? part : part.slice(0, eq));
    if (!out.has(name)) out.set(name, eq < 0 ? "" : decode(part.slice(eq + 1)));
  }
  return out;
}

/** A compiled StringMatch. */
export type StringTest = (value: string) => boolean;

const NEVER: StringTest = () => false;

/** Compiles a regex that must match a whole value; undefined when it does not compile. */
export function fullRegex(pattern: string, ignoreCase = false): RegExp | undefined {
  try {
    return new RegExp(`^(?:${pattern})$`, ignoreCase ? "i" : "");
  } catch {
    return undefined;
  }
}

/** Compiles one StringMatch; ignoreCase compares case-insensitively (VirtualService ignoreUriCase). */
export function compileStringMatch(m: StringMatch, ignoreCase = false): StringTest {
  const fold = ignoreCase ? (s: string) => s.toLowerCase() : (s: string) => s;
  const want = fold(m.value);
  switch (m.kind) {
    case "exact":
      return (v) => fold(v) === want;
    case "prefix":
      return (v) => fold(v).startsWith(want);
    case "pathPrefix": {
      // Whole segments: "/foo" (or "/foo/") matches "/foo" and "/foo/bar", not "/foobar".
      const base = want.endsWith("/") ? want.slice(0, -1) : want;
      if (base === "") return () => true;
      const withSlash = `${base}/`;
      return (v) => {
        const f = fold(v);
        return f === base || f.startsWith(withSlash);
      };
    }
    case "regex": {
      const re = fullRegex(m.value, ignoreCase);
      return re ? (v) => re.test(v) : NEVER;
    }
    default:
      return NEVER; // A kind this build does not know: fail closed.
  }
}

/** A compiled HttpMatch. */
export type MatchTest = (r: RequestFacts) => boolean;

/** Compiles one HttpMatch into a predicate over request facts (all present fields must hold). */
export function compileMatch(m: HttpMatch): MatchTest {
  const tests: MatchTest[] = [];
  if (m.port !== undefined) {
    const port = m.port;
    tests.push((r) => r.port === port);
  }
  if (m.sourceNamespace !== undefined) {
    const ns = m.sourceNamespace;
    tests.push((r) => r.source.namespace === ns);
  }
  if (m.sourceLabels !== undefined) {
    const labels = m.sourceLabels;
    tests.push((r) => labelsMatch(labels, r.source.labels));
  }
  if (m.method) {
    const t = compileStringMatch(m.method);
    tests.push((r) => t(r.method));
  }
  if (m.scheme) {
    const t = compileStringMatch(m.scheme);
    tests.push((r) => t(r.scheme));
  }
  if (m.authority) {
    const t = compileStringMatch(m.authority);
    tests.push((r) => t(r.authority) || (r.host !== r.authority && t(r.host)));
  }
  if (m.path) {
    const t = compileStringMatch(m.path, m.ignorePathCase);
    tests.push((r) => t(r.path));
  }
  for (const h of m.headers) {
    const t = h.match ? compileStringMatch(h.match) : undefined;
    const name = h.name;
    const invert = h.invert;
    tests.push((r) => {
      const v = r.header(name);
      const hit = v !== undefined && (t === undefined || t(v));
      return hit !== invert;
    });
  }
  for (const q of m.queryParams) {
    const t = compileStringMatch(q.match);
    const name = q.name;
    tests.push((r) => {
      const v = r.queryParam(name);
      return v !== undefined && t(v);
    });
  }
  return (r) => {
    for (const t of tests) if (!t(r)) return false;
    return true;
  };
}

/** A rule with its matchers compiled. */
export interface CompiledRule {
  rule: HttpRouteRule;
  ref: RouteRef;
  /** Parallel to rule.matches; empty when the rule matches every request. */
  tests: MatchTest[];
  /** Sum of the destinations' weights. */
  totalWeight: number;
}

/** A RouteTable with every rule compiled. */
export interface CompiledTable {
  table: RouteTable;
  rules: CompiledRule[];
}

const compiled = new WeakMap<RouteTable, CompiledTable>();

/** The compiled form of a table, built on first use and cached for the table object's lifetime. */
export function compileTable(table: RouteTable): CompiledTable {
  let hit = compiled.get(table);
  if (!hit) {
    hit = {
      table,
      rules: table.http.map((rule, i) => ({
        rule,
        ref: { table: table.key, rule: rule.name ?? `http[${i}]` },
        tests: rule.matches.map(compileMatch),
        totalWeight: rule.destinations.reduce((sum, d) => sum + Math.max(0, d.weight), 0),
      })),
    };
    compiled.set(table, hit);
  }
  return hit;
}

/** The rule that takes a request, and which of its matches did (absent: the rule matches all). */
export interface RuleHit {
  rule: CompiledRule;
  match?: HttpMatch;
}

/** The first rule matching the request (rules in order; within a rule any match suffices). */
export function findRule(table: CompiledTable, r: RequestFacts): RuleHit | undefined {
  for (const rule of table.rules) {
    if (rule.tests.length === 0) return { rule };
    for (let i = 0; i < rule.tests.length; i++) {
      if ((rule.tests[i] as MatchTest)(r)) return { rule, match: rule.rule.matches[i] as HttpMatch };
    }
  }
  return undefined;
}
