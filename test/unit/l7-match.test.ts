/** The L7 router's compiled matchers: every StringMatch kind and every HttpMatch field. */
import { describe, expect, it } from "vitest";
import { compileMatch, compileStringMatch, fullRegex, RequestFacts, stripPort } from "../../agent/proxy/l7/match.js";
import type { HttpMatch, StringMatch } from "../../controller/api/model.js";
import { workload } from "../helpers/mesh-fixture.js";

const client = workload({
  name: "client",
  ns: "client",
  ip: "10.244.1.10",
  node: "n1",
  nodeAddress: "10.250.0.11",
  labels: { app: "c", v: "1" },
});

describe("compileStringMatch", () => {
  it.each<[string, StringMatch, boolean, string, boolean]>([
    ["exact hit", { kind: "exact", value: "/a" }, false, "/a", true],
    ["exact miss", { kind: "exact", value: "/a" }, false, "/a/", false],
    ["exact is case-sensitive", { kind: "exact", value: "/a" }, false, "/A", false],
    ["exact ignoring case", { kind: "exact", value: "/a" }, true, "/A", true],
    ["prefix hit", { kind: "prefix", value: "/api" }, false, "/apix", true],
    ["prefix miss", { kind: "prefix", value: "/api" }, false, "/ap", false],
    ["prefix ignoring case", { kind: "prefix", value: "/API" }, true, "/api/v1", true],
    ["regex must match the whole value", { kind: "regex", value: "b" }, false, "abc", false],
    ["regex full match", { kind: "regex", value: "/v[0-9]+/.*" }, false, "/v2/x", true],
    ["regex alternation is anchored as a whole", { kind: "regex", value: "a|b" }, false, "ab", false],
    ["regex ignoring case", { kind: "regex", value: "/abc" }, true, "/ABC", true],
    ["pathPrefix: the segment itself", { kind: "pathPrefix", value: "/foo" }, false, "/foo", true],
    ["pathPrefix: a sub-path", { kind: "pathPrefix", value: "/foo" }, false, "/foo/bar", true],
    ["pathPrefix: not a longer segment", { kind: "pathPrefix", value: "/foo" }, false, "/foobar", false],
    ["pathPrefix: trailing slash ignored", { kind: "pathPrefix", value: "/foo/" }, false, "/foo", true],
    ["pathPrefix: / matches everything", { kind: "pathPrefix", value: "/" }, false, "/anything", true],
    ["pathPrefix ignoring case", { kind: "pathPrefix", value: "/Foo" }, true, "/fOO/x", true],
    ["a regex that does not compile never matches", { kind: "regex", value: "(" }, false, "(", false],
    ["an unknown kind never matches", { kind: "glob" as StringMatch["kind"], value: "*" }, false, "*", false],
  ])("%s", (_n, m, ignoreCase, value, want) => {
    expect(compileStringMatch(m, ignoreCase)(value)).toBe(want);
  });

  it("compiles a full-match regex, or reports it cannot", () => {
    expect(fullRegex("a+")?.test("aaa")).toBe(true);
    expect(fullRegex("[")).toBeUndefined();
  });
});

describe("stripPort", () => {
  it.each([
    ["web:80", "web"],
    ["web", "web"],
    ["10.96.0.10:8080", "10.96.0.10"],
    ["[fd00::1]:80", "[fd00::1]"],
    ["[fd00::1]", "[fd00::1]"],
    ["web:http", "web:http"],
  ])("%s → %s", (a, want) => expect(stripPort(a)).toBe(want));
});

const base: HttpMatch = { ignorePathCase: false, headers: [], queryParams: [] };
const facts = (p: {
  method?: string;
  target?: string;
  authority?: string;
  scheme?: string;
  headers?: Record<string, string | string[]>;
  port?: number;
}) => new RequestFacts(p.method ?? "GET", p.target ?? "/", p.authority ?? "web", p.scheme ?? "http", p.headers ?? {}, p.port ?? 80, client);

describe("compileMatch", () => {
  it.each<[string, Partial<HttpMatch>, Parameters<typeof facts>[0], boolean]>([
    ["an empty match matches everything", {}, {}, true],
    ["path ignores the query string", { path: { kind: "exact", value: "/a" } }, { target: "/a?x=1" }, true],
    ["path with ignorePathCase", { path: { kind: "exact", value: "/a" }, ignorePathCase: true }, { target: "/A" }, true],
    ["method", { method: { kind: "exact", value: "POST" } }, { method: "GET" }, false],
    ["authority as received", { authority: { kind: "exact", value: "web:8080" } }, { authority: "web:8080" }, true],
    ["authority without its port", { authority: { kind: "exact", value: "web" } }, { authority: "web:8080" }, true],
    ["authority prefix", { authority: { kind: "prefix", value: "web.shop" } }, { authority: "web.shop.svc:80" }, true],
    ["authority mismatch", { authority: { kind: "exact", value: "api" } }, { authority: "web:80" }, false],
    ["scheme", { scheme: { kind: "exact", value: "https" } }, { scheme: "http" }, false],
    ["port hit", { port: 80 }, { port: 80 }, true],
    ["port miss", { port: 9090 }, { port: 80 }, false],
    ["sourceNamespace hit", { sourceNamespace: "client" }, {}, true],
    ["sourceNamespace miss", { sourceNamespace: "shop" }, {}, false],
    ["sourceLabels hit (subset of the labels)", { sourceLabels: { app: "c" } }, {}, true],
    ["sourceLabels miss", { sourceLabels: { app: "c", v: "2" } }, {}, false],
    [
      "header exact",
      { headers: [{ name: "x-v", match: { kind: "exact", value: "2" }, invert: false }] },
      { headers: { "x-v": "2" } },
      true,
    ],
    [
      "header prefix",
      { headers: [{ name: "x-v", match: { kind: "prefix", value: "2" }, invert: false }] },
      { headers: { "x-v": "20" } },
      true,
    ],
    [
      "header regex",
      { headers: [{ name: "x-v", match: { kind: "regex", value: "\\d+" }, invert: false }] },
      { headers: { "x-v": "2a" } },
      false,
    ],
    ["header absent", { headers: [{ name: "x-v", match: { kind: "exact", value: "2" }, invert: false }] }, {}, false],
    ["header presence only", { headers: [{ name: "x-v", invert: false }] }, { headers: { "x-v": "" } }, true],
    ["header presence only, absent", { headers: [{ name: "x-v", invert: false }] }, {}, false],
    [
      "several values joined by ','",
      { headers: [{ name: "x-v", match: { kind: "exact", value: "a,b" }, invert: false }] },
      { headers: { "x-v": ["a", "b"] } },
      true,
    ],
    ["withoutHeaders: present → no match", { headers: [{ name: "x-debug", invert: true }] }, { headers: { "x-debug": "1" } }, false],
    ["withoutHeaders: absent → match", { headers: [{ name: "x-debug", invert: true }] }, {}, true],
    [
      "withoutHeaders value: other value → match",
      { headers: [{ name: "x-v", match: { kind: "exact", value: "1" }, invert: true }] },
      { headers: { "x-v": "2" } },
      true,
    ],
    [
      "withoutHeaders value: that value → no match",
      { headers: [{ name: "x-v", match: { kind: "exact", value: "1" }, invert: true }] },
      { headers: { "x-v": "1" } },
      false,
    ],
    ["query exact", { queryParams: [{ name: "v", match: { kind: "exact", value: "2" } }] }, { target: "/?a=1&v=2" }, true],
    ["query regex", { queryParams: [{ name: "v", match: { kind: "regex", value: "v[0-9]+" } }] }, { target: "/?v=v12" }, true],
    ["query decoded", { queryParams: [{ name: "q", match: { kind: "exact", value: "a b/c" } }] }, { target: "/?q=a%20b%2Fc" }, true],
    ["query '+' stays '+'", { queryParams: [{ name: "q", match: { kind: "exact", value: "a+b" } }] }, { target: "/?q=a+b" }, true],
    [
      "query first occurrence counts",
      { queryParams: [{ name: "v", match: { kind: "exact", value: "2" } }] },
      { target: "/?v=1&v=2" },
      false,
    ],
    ["query without value is ''", { queryParams: [{ name: "flag", match: { kind: "exact", value: "" } }] }, { target: "/?flag" }, true],
    ["query absent", { queryParams: [{ name: "v", match: { kind: "regex", value: ".*" } }] }, { target: "/" }, false],
    [
      "query malformed escape compared raw",
      { queryParams: [{ name: "v", match: { kind: "exact", value: "%zz" } }] },
      { target: "/?v=%zz" },
      true,
    ],
    ["a bad regex fails the match closed", { path: { kind: "regex", value: "(" } }, { target: "/" }, false],
  ])("%s", (_n, m, f, want) => {
    expect(compileMatch({ ...base, ...m })(facts(f))).toBe(want);
  });

  it("needs every present field to match", () => {
    const m = compileMatch({
      ...base,
      path: { kind: "prefix", value: "/api" },
      method: { kind: "exact", value: "GET" },
      headers: [{ name: "x-v", match: { kind: "exact", value: "2" }, invert: false }],
      port: 80,
    });
    expect(m(facts({ target: "/api/x", headers: { "x-v": "2" } }))).toBe(true);
    expect(m(facts({ target: "/api/x", headers: { "x-v": "2" }, method: "PUT" }))).toBe(false);
    expect(m(facts({ target: "/api/x" }))).toBe(false);
    expect(m(facts({ target: "/web", headers: { "x-v": "2" } }))).toBe(false);
    expect(m(facts({ target: "/api/x", headers: { "x-v": "2" }, port: 81 }))).toBe(false);
  });
});
