import { describe, expect, it } from "vitest";
import { canonicalAuthority, canonicalTarget, isTargetError, normalizePath } from "../../agent/proxy/l7/request-target.js";

/** The table of Istio's normalization page (MERGE_SLASHES), plus what RFC 3986 §5.2.4 says of dot segments. */
const CASES: [string, string][] = [
  ["/", "/"],
  ["/a/b", "/a/b"],
  ["/public/../admin", "/admin"],
  ["/public/./data/abc/../xyz", "/public/data/xyz"],
  ["/../../admin", "/admin"],
  ["/a/b/..", "/a/"],
  ["/a/b/.", "/a/b/"],
  ["/a/", "/a/"],
  ["/.", "/"],
  ["/..", "/"],
  ["/a/..b/c", "/a/..b/c"],
  ["/a/.b", "/a/.b"],
  ["//admin", "/admin"],
  ["/some//data///abc", "/some/data/abc"],
  ["/a//", "/a/"],
  ["/some\\data", "/some/data"],
  ["/public\\..\\admin", "/admin"],
  ["/%61%62%63", "/abc"],
  ["/%41dmin", "/Admin"],
  ["/%2e%2e/admin", "/admin"],
  ["/x/%2E%2e/admin", "/admin"],
  ["/%2d%5f%7e%30", "/-_~0"],
  // Escaped slashes stay as sent (Istio's default), with upper-case hex; so do other reserved escapes.
  ["/some%2fdata", "/some%2Fdata"],
  ["/a%5cb", "/a%5Cb"],
  ["/a%3fb%20c", "/a%3Fb%20c"],
  // One decoding only: %25 is '%', not the start of another escape.
  ["/%252e%252e/admin", "/%252e%252e/admin"],
];

describe("request targets made canonical (Istio's MERGE_SLASHES normalization)", () => {
  it.each(CASES)("%s → %s", (raw, want) => {
    expect(normalizePath(raw)).toBe(want);
  });

  it("is idempotent: a canonical path is its own canonical form (a second proxy changes nothing)", () => {
    for (const [, want] of CASES) expect(normalizePath(want)).toBe(want);
    // Random paths from the characters that matter.
    const alphabet = ["/", ".", "..", "a", "%2e", "%2f", "\\", "%41", "%25"];
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let n = 0; n < 2000; n++) {
      let p = "/";
      for (let k = next() % 12; k > 0; k--) p += alphabet[next() % alphabet.length];
      const once = normalizePath(p);
      expect(typeof once, p).toBe("string");
      expect(normalizePath(once as string), p).toBe(once);
      expect(once as string, p).not.toMatch(/\/\/|\/\.\.?(\/|$)|\\/);
    }
  });

  it("refuses what it cannot read, naming what is wrong", () => {
    const bad: [string, RegExp][] = [
      ["/a%zz", /bad percent-encoding "%zz"/],
      ["/a%4", /bad percent-encoding "%4"/],
      ["/a%", /bad percent-encoding "%"/],
      ["/a%00b", /%00/],
      ["/a#b", /fragment/],
      ["/a\tb", /control character 0x09/],
      ["/a\x7fb", /control character 0x7f/],
    ];
    for (const [raw, why] of bad) {
      const r = normalizePath(raw);
      expect(typeof r, raw).toBe("object");
      expect((r as { error: string }).error, raw).toMatch(why);
    }
  });

  it("keeps the query as sent, and reads absolute-form and OPTIONS * targets", () => {
    expect(canonicalTarget("GET", "/a/../b?x=/../y&z=%zz", true)).toEqual({ path: "/b?x=/../y&z=%zz" });
    expect(canonicalTarget("GET", "http://reviews:9080/a/../b?q", true)).toEqual({ path: "/b?q", authority: "reviews:9080" });
    expect(canonicalTarget("GET", "HTTP://h", true)).toEqual({ path: "/", authority: "h" });
    expect(canonicalTarget("GET", "http://h?q=1", true)).toEqual({ path: "/?q=1", authority: "h" });
    expect(canonicalTarget("OPTIONS", "*", true)).toEqual({ path: "*" });
  });

  it("refuses targets that are not paths, absolute-form where the protocol has none, and lower-case methods", () => {
    const bad: [string, string, boolean, RegExp][] = [
      ["GET", "*", true, /only OPTIONS \*/],
      ["GET", "admin", true, /is not a path/],
      ["GET", "http://reviews/a", false, /is not a path/],
      ["GET", "http:///a", true, /without a usable host/],
      ["GET", "http://user@evil/a", true, /without a usable host/],
      ["GET", "ftp://h/a", true, /is not a path/],
      ["get", "/a", true, /method "get" is not upper-case/],
      ["Delete", "/a", true, /not upper-case/],
      ["GET", "/a?b c", true, /control character in the query/],
    ];
    for (const [method, target, absolute, why] of bad) {
      const r = canonicalTarget(method, target, absolute);
      expect(isTargetError(r), `${method} ${target}`).toBe(true);
      expect((r as { error: string }).error).toMatch(why);
    }
  });
});

describe("canonicalAuthority", () => {
  it("gives one spelling: lower case, no trailing dot, no empty port", () => {
    expect(canonicalAuthority("Admin.Shop.svc.cluster.local.")).toBe("admin.shop.svc.cluster.local");
    expect(canonicalAuthority("WEB:8080")).toBe("web:8080");
    expect(canonicalAuthority("web:")).toBe("web");
    expect(canonicalAuthority("admin.svc:080")).toBe("admin.svc:80");
    expect(canonicalAuthority("[::1]:443")).toBe("[::1]:443");
    expect(canonicalAuthority("10.96.0.1")).toBe("10.96.0.1");
  });

  it("refuses what is not one host[:port], saying why", () => {
    for (const [raw, why] of [
      [undefined, /missing Host/],
      ["", /missing Host/],
      ["a, b", /more than one Host/],
      ["user@admin", /not a host/],
      ["admin shop", /not a host/],
      ["admin/x", /not a host/],
      ["a:99999", /above 65535/],
      ["a:-1", /not a host/],
      [".", /not a host/],
      ["a..", /not a host/],
      ["[::1", /not a host/],
      ["adm%69n.svc", /not a host/],
    ] as const) {
      const r = canonicalAuthority(raw);
      expect(typeof r, String(raw)).toBe("object");
      expect((r as { error: string }).error, String(raw)).toMatch(why);
    }
  });
});
