/**
 * The canonical form of a request's target, made once where a request enters a proxy and used
 * for everything after it: routing, authorization, and the request sent on. An app that resolves
 * `/public/../admin` or `//admin` to `/admin` must never be reached by a path its policy does not
 * name (CVE-2021-31920 is this bug in Envoy's defaults).
 *
 * weft applies Istio's MERGE_SLASHES normalization (docs/reference/config/security/normalization):
 * - percent-encoded unreserved characters are decoded (`%2e` → `.`, `%61` → `a`), other escapes
 *   kept with upper-case hex; `%2F` and `%5C` stay encoded, as in Istio unless an operator asks
 *   for DECODE_AND_MERGE_SLASHES;
 * - a backslash is a slash; runs of slashes become one;
 * - `.` and `..` segments are resolved (RFC 3986 §5.2.4), never above the root;
 * - the query is kept as sent.
 * What cannot be read is refused (400), never passed on as is: `%00`, a bad escape, a fragment,
 * a control character, a method with lower-case letters (Istio rejects those too), a target that
 * is not a path.
 */

/** A request target made canonical; authority is set when the target was absolute-form. */
export interface CanonicalTarget {
  /** The path and the query as sent (`/a/b?x=1`), or `*` (OPTIONS *). */
  path: string;
  /** From an absolute-form target (`GET http://host/p`): it replaces the Host header (RFC 9112 §3.2.2). */
  authority?: string;
}

/** Why a target was refused (answered 400). */
export interface TargetError {
  error: string;
}

const HEX = "0123456789ABCDEF";

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function unreserved(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e
  );
}

/**
 * A path with none of what normalization changes or refuses (most requests, left untouched): no
 * `%`, `#`, `\`, space or control character, no `//`, no dot segment.
 */
const NEEDS_WORK = /[^\x21\x22\x24\x26-\x5b\x5d-\x7e\x80-\uffff]|\/\/|\/\.\.?(?:\/|$)/;
/** A space or control character. */
const CONTROL = /[^\x21-\x7e\x80-\uffff]/;
const ABSOLUTE = /^https?:\/\//i;

/** The canonical path (no query), or why it cannot be made. */
export function normalizePath(raw: string): string | TargetError {
  if (!NEEDS_WORK.test(raw)) return raw;
  let decoded = "";
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return { error: `bad percent-encoding ${JSON.stringify(raw.slice(i, i + 3))} in the path` };
      const b = hi * 16 + lo;
      if (b === 0) return { error: "%00 in the path" };
      decoded += unreserved(b) ? String.fromCharCode(b) : `%${HEX[hi]}${HEX[lo]}`;
      i += 2;
    } else if (c === 0x5c) decoded += "/";
    else if (c === 0x23) return { error: "a fragment (#) in the request target" };
    else if (c <= 0x20 || c === 0x7f) return { error: `control character 0x${c.toString(16).padStart(2, "0")} in the path` };
    else decoded += raw[i];
  }
  const segments = decoded.split("/");
  const out: string[] = [];
  // Whether the path ends in a slash: a trailing "", "." or ".." segment leaves one (RFC 3986 §5.2.4).
  let slash = false;
  for (let k = 1; k < segments.length; k++) {
    const s = segments[k] as string;
    const last = k === segments.length - 1;
    if (s === "" || s === ".") {
      slash = last;
      continue;
    }
    if (s === "..") {
      out.pop();
      slash = last;
      continue;
    }
    out.push(s);
    slash = false;
  }
  return `/${out.join("/")}${slash && out.length > 0 ? "/" : ""}`;
}

/**
 * A request's target made canonical, or why it is refused. absoluteForm: the protocol allows
 * `http://host/path` targets (HTTP/1.1; HTTP/2 carries the authority in its own field).
 */
export function canonicalTarget(method: string, target: string, absoluteForm: boolean): CanonicalTarget | TargetError {
  if (/[a-z]/.test(method)) return { error: `method ${JSON.stringify(method.slice(0, 40))} is not upper-case` };
  if (target === "*") {
    if (method !== "OPTIONS") return { error: `target * with method ${method} (only OPTIONS * is a request)` };
    return { path: "*" };
  }
  let rest = target;
  let authority: string | undefined;
  if (absoluteForm && ABSOLUTE.test(target)) {
    const from = target.indexOf("//") + 2;
    let end = from;
    while (end < target.length && target[end] !== "/" && target[end] !== "?") end++;
    const raw = target.slice(from, end);
    const canonical = canonicalAuthority(raw);
    if (typeof canonical !== "string") return { error: `absolute-form target without a usable host: ${canonical.error}` };
    authority = canonical;
    rest = end < target.length ? target.slice(end) : "/";
    if (rest.startsWith("?")) rest = `/${rest}`;
  }
  if (!rest.startsWith("/")) return { error: `request target ${JSON.stringify(target.slice(0, 80))} is not a path` };
  const q = rest.indexOf("?");
  const path = normalizePath(q < 0 ? rest : rest.slice(0, q));
  if (typeof path !== "string") return path;
  const query = q < 0 ? "" : rest.slice(q);
  if (CONTROL.test(query)) return { error: "control character in the query" };
  return authority === undefined ? { path: `${path}${query}` } : { path: `${path}${query}`, authority };
}

/** True when canonicalTarget refused the target. */
export function isTargetError(t: CanonicalTarget | TargetError): t is TargetError {
  return "error" in t;
}

/** uri-host (an IP literal in brackets, or reg-name characters) and an optional port (RFC 3986 §3.2). */
const AUTHORITY = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+;=]+)(?::(\d{0,5}))?$/;

/**
 * A request's authority (Host or :authority) in the one spelling routes, policies and the app
 * all see, or why it is refused: lower-case, without the trailing dot of a fully qualified name
 * (`admin.svc.` and `ADMIN.svc` name `admin.svc`, which `hosts` rules must not miss), without an
 * empty port, the port as a plain number (`:080` is `:80`). Missing, repeated (joined with
 * commas), userinfo (`u@host`), percent-encoded names (an app that decodes them would see another
 * host than the rules did) and anything that is not a host are refused (RFC 9112 §3.2).
 */
export function canonicalAuthority(raw: string | undefined): string | TargetError {
  if (raw === undefined || raw === "") return { error: "missing Host header" };
  if (raw.includes(",")) return { error: "more than one Host header" };
  const m = AUTHORITY.exec(raw);
  if (!m) return { error: `Host ${JSON.stringify(raw.slice(0, 80))} is not a host[:port]` };
  let host = (m[1] as string).toLowerCase();
  if (host === "." || host.endsWith("..")) return { error: `Host ${JSON.stringify(raw.slice(0, 80))} is not a host[:port]` };
  if (host.endsWith(".") && !host.startsWith("[")) host = host.slice(0, -1);
  const port = m[2];
  if (port === undefined || port === "") return host;
  if (Number(port) > 65535) return { error: `Host ${JSON.stringify(raw.slice(0, 80))} has port ${port} (above 65535)` };
  return `${host}:${Number(port)}`;
}
