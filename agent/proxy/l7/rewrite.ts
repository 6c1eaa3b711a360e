/**
 * What a matched rule does to a request before it leaves: path and authority rewrites, the
 * Location of a redirect, and header edits. Pure string work, no I/O.
 */
import type { HeaderOperations, HttpMatch, HttpRedirect, HttpRewrite } from "../../../controller/api/model.js";
import { stripPort } from "./match.js";

/**
 * Replaces the part of `path` the rule's path condition matched with `replacement`.
 * - Istio prefix (VirtualService uri.prefix + rewrite.uri): plain string replacement, as Envoy's
 *   prefix_rewrite ("/api" → "/" turns "/api/x" into "//x", exactly like Istio).
 * - Gateway API PathPrefix (ReplacePrefixMatch): whole segments, trailing slashes of the prefix and
 *   the replacement ignored, never an empty path ("/foo" → "/xyz": "/foo/bar" → "/xyz/bar";
 *   "/foo" → "": "/foo" → "/").
 * - Any other condition (exact, regex, none): the whole path is replaced.
 */
export function replacePrefix(path: string, matched: HttpMatch | undefined, replacement: string): string {
  const cond = matched?.path;
  if (cond?.kind === "prefix") return replacement + path.slice(cond.value.length);
  if (cond?.kind === "pathPrefix") {
    const prefix = cond.value.endsWith("/") ? cond.value.slice(0, -1) : cond.value;
    const rest = path.slice(prefix.length);
    const head = replacement.endsWith("/") ? replacement.slice(0, -1) : replacement;
    const out = head + rest;
    return out === "" ? "/" : out.startsWith("/") ? out : `/${out}`;
  }
  return replacement;
}

/** Converts an RE2 substitution ("\1" groups) to JavaScript's ("$1"), keeping literal "$". */
function jsSubstitution(s: string): string {
  return s.replace(/\$/g, "$$$$").replace(/\\(\d)/g, "$$$1");
}

const regexRewrites = new WeakMap<HttpRewrite, RegExp | null>();

function rewriteRegex(rw: HttpRewrite & { pathRegex: NonNullable<HttpRewrite["pathRegex"]> }): RegExp | null {
  let re = regexRewrites.get(rw);
  if (re === undefined) {
    try {
      re = new RegExp(rw.pathRegex.pattern, "g");
    } catch {
      re = null;
    }
    regexRewrites.set(rw, re);
  }
  return re;
}

/** The result of a rewrite: the new request target and authority, or why it cannot be done. */
export type RewriteResult = { ok: true; path: string; authority: string } | { ok: false; reason: string };

/**
 * Applies a rule's rewrite to the request target ("path?query") and authority. The query string
 * is kept. A path regex rewrite replaces every match in the path (Envoy regex_rewrite); one that
 * does not compile fails the request rather than forward it to a path nobody asked for.
 */
export function applyRewrite(
  rw: HttpRewrite | undefined,
  target: string,
  authority: string,
  matched: HttpMatch | undefined,
): RewriteResult {
  if (!rw) return { ok: true, path: target, authority };
  const q = target.indexOf("?");
  let path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? "" : target.slice(q);
  if (rw.path !== undefined) path = rw.path;
  else if (rw.pathPrefix !== undefined) path = replacePrefix(path, matched, rw.pathPrefix);
  else if (rw.pathRegex) {
    const re = rewriteRegex(rw as HttpRewrite & { pathRegex: NonNullable<HttpRewrite["pathRegex"]> });
    if (!re) return { ok: false, reason: `rewrite regex '${rw.pathRegex.pattern}' does not compile` };
    re.lastIndex = 0;
    path = path.replace(re, jsSubstitution(rw.pathRegex.substitution));
  }
  return { ok: true, path: path + query, authority: rw.authority ?? authority };
}

const DEFAULT_PORTS: Record<string, string> = { http: "80", https: "443" };

function portOf(authority: string): string | undefined {
  const host = stripPort(authority);
  return host === authority ? undefined : authority.slice(host.length + 1);
}

/** The request a redirect is computed from. */
export interface RedirectRequest {
  scheme: string;
  authority: string;
  /** Request target: path plus optional "?query". */
  target: string;
}

/**
 * The absolute Location of a redirect ("scheme://authority/path?query").
 * - scheme, authority and path default to the request's; `pathPrefix` replaces the matched prefix.
 * - The query string is kept unless the new path brings its own (Envoy path_redirect).
 * - Port: the redirect's port if set; else, when the scheme changes in a Gateway API redirect
 *   (`schemeDropsPort`), none (the scheme's well-known port, as Gateway API requires); else the
 *   authority's. A port that is the scheme's default is left out of the Location.
 */
export function redirectLocation(r: HttpRedirect, req: RedirectRequest, matched: HttpMatch | undefined, schemeDropsPort: boolean): string {
  const scheme = r.scheme ?? req.scheme;
  const authority = r.authority ?? req.authority;
  const host = stripPort(authority);
  let port = r.port !== undefined ? String(r.port) : portOf(authority);
  if (r.port === undefined && r.scheme !== undefined && schemeDropsPort) port = undefined;
  if (port !== undefined && DEFAULT_PORTS[scheme] === port) port = undefined;
  const q = req.target.indexOf("?");
  const reqPath = q < 0 ? req.target : req.target.slice(0, q);
  const query = q < 0 ? "" : req.target.slice(q);
  let path = reqPath;
  if (r.path !== undefined) path = r.path;
  else if (r.pathPrefix !== undefined) path = replacePrefix(reqPath, matched, r.pathPrefix);
  if (!path.startsWith("/")) path = `/${path}`;
  const withQuery = path.includes("?") ? path : path + query;
  return `${scheme}://${host}${port !== undefined ? `:${port}` : ""}${withQuery}`;
}

/** Request or response headers as the data path holds them (lower-case names). */
export type HeaderMap = Record<string, string | string[] | undefined>;

/**
 * Applies header edits in list order; within one HeaderOperations: remove, then set, then add
 * (Envoy's order, so a header both removed and added ends up added). Names are compared
 * lower-case. `add` appends a value to an existing header. Returns a new map; the input is kept.
 */
export function applyHeaderOperations(headers: Readonly<HeaderMap>, ops: readonly HeaderOperations[]): HeaderMap {
  const out: HeaderMap = { ...headers };
  for (const op of ops) {
    for (const name of op.remove) delete out[name.toLowerCase()];
    for (const [name, value] of Object.entries(op.set)) out[name.toLowerCase()] = value;
    for (const [name, value] of Object.entries(op.add)) {
      const key = name.toLowerCase();
      const cur = out[key];
      out[key] = cur === undefined ? value : Array.isArray(cur) ? [...cur, value] : [cur, value];
    }
  }
  return out;
}
