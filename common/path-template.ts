/**
 * Istio's path templates in AuthorizationPolicy `paths`/`notPaths` (Istio 1.22+): a value with
 * `{*}` or `{**}` is an Envoy uri_template (`*`, `**`), matched against the path without its
 * query. `{*}` is one whole segment of one or more pchars; `{**}` is zero or more characters that
 * may include `/`, and no operator may follow it. Only whole-segment operators are valid (Istio's
 * CheckValidPathTemplate), and literals are pchars (Envoy's parser): anything else, including a
 * `{` or `}` outside those operators, is not a template Istio would accept.
 */

/** Envoy's kLiteral: RFC 3986 pchar without `*` (a segment that has `*` is no literal). */
const PCHAR = "a-zA-Z0-9\\-._~%!$&'()+,;:@=";
const LITERAL = new RegExp(`^[${PCHAR}]+$`);

/** A compiled template; match says how a path (no query) relates to it. */
export interface PathTemplate {
  /**
   * true or false as Envoy decides; undefined when the path matches only if characters Envoy's
   * operators never match (outside pchar: `*`, `"`, `[`, non-ASCII…) count: the caller resolves
   * that the fail-closed way for its side (a DENY matches, an ALLOW does not).
   */
  match(path: string): boolean | undefined;
}

/** True when Istio reads the value as a template, or it has braces only a template may have. */
export function isPathTemplate(pattern: string): boolean {
  return pattern.includes("{") || pattern.includes("}");
}

/** Templates by value (values come from policy, not from requests, so few; bounded anyway). */
const TEMPLATES_MAX = 4096;
const templates = new Map<string, PathTemplate | null>();

/** The compiled template for a `paths` value (remembered), or null when it is not a valid one. */
export function pathTemplate(pattern: string): PathTemplate | null {
  let t = templates.get(pattern);
  if (t === undefined) {
    t = compile(pattern);
    if (templates.size >= TEMPLATES_MAX) templates.clear();
    templates.set(pattern, t);
  }
  return t;
}

function regexLiteral(literal: string): string {
  return literal.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
}

function compile(pattern: string): PathTemplate | null {
  if (!pattern.startsWith("/")) return null;
  const segments = pattern.slice(1).split("/");
  const exact: string[] = [];
  const loose: string[] = [];
  let seenAny = false;
  for (const [i, s] of segments.entries()) {
    if (s === "{*}" || s === "{**}") {
      if (seenAny) return null;
      seenAny = s === "{**}";
      exact.push(seenAny ? `[${PCHAR}/]*` : `[${PCHAR}]+`);
      loose.push(seenAny ? ".*" : "[^/]+");
    } else if (s === "" && i === segments.length - 1 && i > 0) {
      // A trailing slash is a literal "/" (Envoy); "//" and a bare "/" are not templates.
      exact.push("");
      loose.push("");
    } else if (LITERAL.test(s)) {
      exact.push(regexLiteral(s));
      loose.push(regexLiteral(s));
    } else return null;
  }
  const strict = new RegExp(`^/${exact.join("/")}$`);
  const wide = new RegExp(`^/${loose.join("/")}$`, "s");
  return {
    match(path) {
      if (!wide.test(path)) return false;
      return strict.test(path) ? true : undefined;
    },
  };
}
