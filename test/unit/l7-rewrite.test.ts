/** The L7 router's rewrites: prefix replacement (Istio and Gateway API), regex, redirects, header edits. */
import { describe, expect, it } from "vitest";
import { applyHeaderOperations, applyRewrite, redirectLocation, replacePrefix } from "../../agent/proxy/l7/rewrite.js";
import type { HttpMatch, HttpRedirect } from "../../controller/api/model.js";

const on = (kind: "prefix" | "pathPrefix" | "exact" | "regex", value: string): HttpMatch => ({
  path: { kind, value },
  ignorePathCase: false,
  headers: [],
  queryParams: [],
});

describe("replacePrefix", () => {
  // Gateway API's ReplacePrefixMatch table (whole segments, trailing slashes ignored).
  it.each([
    ["/foo/bar", "/foo", "/xyz", "/xyz/bar"],
    ["/foo/bar", "/foo", "/xyz/", "/xyz/bar"],
    ["/foo/bar", "/foo/", "/xyz", "/xyz/bar"],
    ["/foo/bar", "/foo/", "/xyz/", "/xyz/bar"],
    ["/foo", "/foo", "/xyz", "/xyz"],
    ["/foo/", "/foo", "/xyz", "/xyz/"],
    ["/foo/bar", "/foo", "", "/bar"],
    ["/foo/", "/foo", "", "/"],
    ["/foo", "/foo", "", "/"],
    ["/foo/", "/foo", "/", "/"],
    ["/foo", "/foo", "/", "/"],
    ["/foo/bar", "/", "/xyz", "/xyz/foo/bar"],
  ])("Gateway API: %s with prefix %s → %s gives %s", (path, prefix, repl, want) => {
    expect(replacePrefix(path, on("pathPrefix", prefix), repl)).toBe(want);
  });

  it.each([
    ["/api/x", "/api", "/v2/api", "/v2/api/x"],
    ["/api/x", "/api", "/", "//x"],
    ["/apix", "/api", "/b", "/bx"],
  ])("Istio prefix: %s with prefix %s → %s gives %s", (path, prefix, repl, want) => {
    expect(replacePrefix(path, on("prefix", prefix), repl)).toBe(want);
  });

  it("replaces the whole path when the condition was not a prefix", () => {
    expect(replacePrefix("/a/b", on("exact", "/a/b"), "/c")).toBe("/c");
    expect(replacePrefix("/a/b", on("regex", "/a/.*"), "/c")).toBe("/c");
    expect(replacePrefix("/a/b", undefined, "/c")).toBe("/c");
  });
});

describe("applyRewrite", () => {
  it("keeps the request as it is without a rewrite", () => {
    expect(applyRewrite(undefined, "/a?b=1", "web", undefined)).toEqual({ ok: true, path: "/a?b=1", authority: "web" });
  });
  it("replaces the whole path, keeping the query, and the authority", () => {
    expect(applyRewrite({ path: "/new", authority: "api:81" }, "/old/x?q=1", "web", undefined)).toEqual({
      ok: true,
      path: "/new?q=1",
      authority: "api:81",
    });
  });
  it("replaces the matched prefix", () => {
    expect(applyRewrite({ pathPrefix: "/v2" }, "/v1/items?id=3", "web", on("pathPrefix", "/v1"))).toMatchObject({ path: "/v2/items?id=3" });
  });
  it("substitutes a regex with RE2-style groups, every match, on the path only", () => {
    const rw = { pathRegex: { pattern: "^/service/([^/]+)(/.*)$", substitution: "\\2/instance/\\1" } };
    expect(applyRewrite(rw, "/service/foo/v1/api?x=/service/a/b", "web", undefined)).toMatchObject({
      path: "/v1/api/instance/foo?x=/service/a/b",
    });
    expect(applyRewrite({ pathRegex: { pattern: "a", substitution: "$b" } }, "/aXa", "web", undefined)).toMatchObject({ path: "/$bX$b" });
    // The compiled regex is global and cached: a second use starts from the beginning again.
    expect(applyRewrite(rw, "/service/bar/x", "web", undefined)).toMatchObject({ path: "/x/instance/bar" });
  });
  it("refuses a regex rewrite that does not compile, naming it", () => {
    expect(applyRewrite({ pathRegex: { pattern: "(", substitution: "" } }, "/a", "web", undefined)).toEqual({
      ok: false,
      reason: "rewrite regex '(' does not compile",
    });
  });
});

describe("redirectLocation", () => {
  const req = { scheme: "http", authority: "web.shop:8080", target: "/old/x?q=1" };
  it.each<[string, HttpRedirect, HttpMatch | undefined, boolean, string]>([
    ["path only, query kept", { statusCode: 301, path: "/new" }, undefined, false, "http://web.shop:8080/new?q=1"],
    [
      "a path with its own query replaces the query",
      { statusCode: 301, path: "/new?a=b" },
      undefined,
      false,
      "http://web.shop:8080/new?a=b",
    ],
    ["prefix", { statusCode: 301, pathPrefix: "/fresh" }, on("pathPrefix", "/old"), true, "http://web.shop:8080/fresh/x?q=1"],
    ["authority", { statusCode: 301, authority: "api.other" }, undefined, false, "http://api.other/old/x?q=1"],
    ["port", { statusCode: 301, port: 9000 }, undefined, false, "http://web.shop:9000/old/x?q=1"],
    ["authority with a port and a port", { statusCode: 301, authority: "api:1", port: 2 }, undefined, false, "http://api:2/old/x?q=1"],
    ["Istio scheme keeps the port", { statusCode: 301, scheme: "https" }, undefined, false, "https://web.shop:8080/old/x?q=1"],
    ["Gateway API scheme drops the port", { statusCode: 302, scheme: "https" }, undefined, true, "https://web.shop/old/x?q=1"],
    [
      "the scheme's default port is left out",
      { statusCode: 301, scheme: "https", port: 443 },
      undefined,
      true,
      "https://web.shop/old/x?q=1",
    ],
    ["a path without a leading slash gets one", { statusCode: 301, path: "x" }, undefined, false, "http://web.shop:8080/x?q=1"],
  ])("%s", (_n, r, m, gw, want) => {
    expect(redirectLocation(r, req, m, gw)).toBe(want);
  });
  it("leaves out port 80 of http", () => {
    expect(redirectLocation({ statusCode: 301, path: "/a" }, { scheme: "http", authority: "web:80", target: "/" }, undefined, false)).toBe(
      "http://web/a",
    );
  });
});

describe("applyHeaderOperations", () => {
  it("applies lists in order; within one: remove, set, add; names lower-case; input untouched", () => {
    const input = { "x-a": "1", "x-b": "2", "x-c": ["3", "4"] };
    const out = applyHeaderOperations(input, [
      { set: { "X-A": "dest" }, add: { "x-c": "5" }, remove: ["x-b"] },
      { set: { "x-a": "rule" }, add: { "x-b": "back", "x-d": "d" }, remove: ["x-b"] },
    ]);
    expect(out).toEqual({ "x-a": "rule", "x-b": "back", "x-c": ["3", "4", "5"], "x-d": "d" });
    expect(input).toEqual({ "x-a": "1", "x-b": "2", "x-c": ["3", "4"] });
  });
  it("appends to a single value", () => {
    expect(applyHeaderOperations({ via: "a" }, [{ set: {}, add: { via: "b" }, remove: [] }])).toEqual({ via: ["a", "b"] });
  });
});
