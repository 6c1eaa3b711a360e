/**
 * What a Bookinfo app carries from its incoming request to its own outgoing calls. A mesh routes
 * on these (`end-user` matches) and joins traces with them, but only the app can copy them across:
 * the proxy sees two unrelated requests.
 */
import type { IncomingHttpHeaders } from "node:http";

/** Headers copied from an incoming request to every outgoing call, as Istio's Bookinfo apps do. */
export const PROPAGATED_HEADERS: readonly string[] = [
  "end-user",
  "x-request-id",
  "traceparent",
  "tracestate",
  "baggage",
  "b3",
  "x-b3-traceid",
  "x-b3-spanid",
  "x-b3-parentspanid",
  "x-b3-sampled",
  "x-b3-flags",
  "x-ot-span-context",
];

/** The propagated headers present on a request (first value of a repeated header). */
export function forwardHeaders(incoming: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of PROPAGATED_HEADERS) {
    const v = incoming[h];
    const value = Array.isArray(v) ? v[0] : v;
    if (typeof value === "string" && value !== "") out[h] = value;
  }
  return out;
}

/** A user name as productpage accepts it: short, printable, no separators that could split a header. */
const USER_RE = /^[A-Za-z0-9._@-]{1,64}$/;

/**
 * The signed-in user for productpage. Istio's productpage takes a login form and keeps the user in
 * a session cookie; this one takes, first match wins: the `?user=` query parameter, an `end-user`
 * header already on the request, or a `user=` cookie. Anything not a plain user name is ignored
 * (the request is anonymous), so a crafted value can never inject a header.
 */
export function endUser(url: URL, headers: IncomingHttpHeaders): string | undefined {
  const cookie = typeof headers.cookie === "string" ? headers.cookie : "";
  const fromCookie = cookie
    .split(";")
    .map((c) => c.trim())
    .find((c) => c.startsWith("user="))
    ?.slice("user=".length);
  const header = headers["end-user"];
  const candidates = [url.searchParams.get("user"), Array.isArray(header) ? header[0] : header, fromCookie];
  for (const c of candidates) {
    if (c === null || c === undefined || c === "") continue;
    return USER_RE.test(c) ? c : undefined;
  }
  return undefined;
}
