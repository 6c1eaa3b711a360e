import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import {
  authorize,
  authorizeEveryRule,
  type ConnectionFacts,
  type RequestAuth,
  type RequestFacts,
  requestPrincipalMatch,
} from "../../agent/proxy/authz.js";
import { ipInCidr } from "../../agent/proxy/ip-match.js";
import { authenticate, JwksCache } from "../../agent/proxy/l7/jwt.js";
import { pathTemplate } from "../../common/path-template.js";
import type { AuthorizationPolicy, AuthzRule } from "../../controller/api/model.js";

// Review findings where weft matched more loosely than Istio/Envoy (fail-open): path templates,
// request principals, address families, pseudo-header conditions.

const conn: ConnectionFacts = {
  sourceIdentity: "spiffe://cluster.local/ns/app/sa/client",
  sourceIp: "10.244.1.5",
  destinationIp: "10.244.2.7",
  destinationPort: 8080,
};

function req(r: Partial<RequestFacts> = {}, c: Partial<ConnectionFacts> = {}): ConnectionFacts {
  return { ...conn, ...c, request: { method: "GET", path: "/", host: "svc.app:8080", headers: {}, ...r } };
}

function policy(
  action: AuthorizationPolicy["action"],
  rules: Partial<AuthzRule>[],
  extra: Partial<AuthorizationPolicy> = {},
): AuthorizationPolicy {
  const key = extra.key ?? `app/${action.toLowerCase()}`;
  return {
    key,
    name: key.split("/")[1] as string,
    namespace: "app",
    scope: { kind: "namespace" },
    action,
    rules: rules.map((r) => ({ from: [], to: [], when: [], ...r })),
    ...extra,
  };
}

/** Both evaluations (narrowed per connection, and every rule) must agree on the outcome. */
function allowed(policies: AuthorizationPolicy[], facts: ConnectionFacts): boolean {
  const a = authorize(policies, facts).allowed;
  expect(authorizeEveryRule(policies, facts).allowed).toBe(a);
  return a;
}

const denyPaths = (paths: string[]) => [policy("DENY", [{ to: [{ paths }] }])];
const allowPaths = (paths: string[]) => [policy("ALLOW", [{ to: [{ paths }] }])];
const allowNotPaths = (notPaths: string[]) => [policy("ALLOW", [{ to: [{ notPaths }] }])];

describe("path templates ({*}, {**}) as Istio 1.22+ and Envoy's uri_template match them", () => {
  it.each<[string, string, boolean]>([
    ["/admin/{*}/delete", "/admin/x/delete", true],
    ["/admin/{*}/delete", "/admin/x/delete?y=1", true],
    ["/admin/{*}/delete", "/admin/x/y/delete", false],
    ["/admin/{*}/delete", "/admin//delete", false],
    // '{', '*' and '}' are outside pchar: Envoy would not match; a DENY fails closed.
    ["/admin/{*}/delete", "/admin/{*}/delete", true],
    ["/admin/{**}", "/admin/a/b", true],
    ["/admin/{**}", "/admin/", true],
    ["/admin/{**}", "/admin", false],
    ["/admin/{**}", "/administrator/x", false],
    ["/{*}/{**}", "/a/b/c", true],
    ["/a/{**}/b", "/a/x/y/b", true],
    ["/a/{**}/b", "/a/x/y/c", false],
    ["/a/{*}/", "/a/x/", true],
    ["/a/{*}/", "/a/x", false],
  ])("DENY paths [%s] on %s denies: %s", (template, path, denied) => {
    expect(allowed(denyPaths([template]), req({ path }))).toBe(!denied);
  });

  it("ALLOW paths and notPaths use the template too", () => {
    expect(allowed(allowPaths(["/api/{*}/items"]), req({ path: "/api/v1/items" }))).toBe(true);
    expect(allowed(allowPaths(["/api/{*}/items"]), req({ path: "/api/v1/x/items" }))).toBe(false);
    expect(allowed(allowNotPaths(["/admin/{**}"]), req({ path: "/admin/a/b" }))).toBe(false);
    expect(allowed(allowNotPaths(["/admin/{**}"]), req({ path: "/public/a" }))).toBe(true);
  });

  it("a path that only characters outside pchar keep from a match fails closed on each side", () => {
    // Envoy's {*} matches pchars only: '*' in a segment is decided the strict way for the rule's side.
    expect(allowed(denyPaths(["/admin/{*}/delete"]), req({ path: "/admin/a*b/delete" }))).toBe(false);
    expect(allowed(allowPaths(["/admin/{*}/delete"]), req({ path: "/admin/a*b/delete" }))).toBe(false);
    expect(allowed(allowNotPaths(["/admin/{*}/delete"]), req({ path: "/admin/a*b/delete" }))).toBe(false);
    const denyNot = [policy("DENY", [{ to: [{ notPaths: ["/admin/{*}/delete"] }] }])];
    expect(allowed(denyNot, req({ path: "/admin/a*b/delete" }))).toBe(false);
    expect(allowed(denyNot, req({ path: "/admin/ab/delete" }))).toBe(true);
  });

  it.each([
    "/admin/{**}/{*}",
    "/admin/{**}/x/{*}",
    "/admin/{x}",
    "/admin/{*",
    "/admin/*}",
    "/admin/x{*}",
    "admin/{*}",
    "/a//{*}",
    "/a/{*}*",
  ])("an invalid template %s fails closed: a DENY denies everything, an ALLOW allows nothing", (bad) => {
    expect(pathTemplate(bad)).toBeNull();
    const deny = denyPaths([bad]);
    expect(allowed(deny, req({ path: "/somewhere/else" }))).toBe(false);
    expect(authorize(deny, req()).reason).toMatch(/path template that cannot be read/);
    // At L4 too: the DENY stands for a rule that cannot be read.
    expect(authorize(deny, conn).allowed).toBe(false);
    expect(allowed(allowPaths([bad]), req({ path: bad }))).toBe(false);
    expect(allowed(allowNotPaths([bad]), req({ path: "/public" }))).toBe(false);
    // Only the unreadable rule is dropped from an ALLOW; its other rules still allow.
    const mixed = [policy("ALLOW", [{ to: [{ paths: [bad] }] }, { to: [{ paths: ["/ok"] }] }])];
    expect(allowed(mixed, req({ path: "/ok" }))).toBe(true);
    expect(allowed(mixed, req({ path: "/admin/x" }))).toBe(false);
  });

  it("a dry-run DENY with an invalid template reports a deny; AUDIT does not match", () => {
    const dry = policy("DENY", [{ to: [{ paths: ["/{x}"] }] }], { key: "app/dry", dryRun: true });
    expect(authorize([dry], req())).toMatchObject({ allowed: true, dryRun: [{ policy: "app/dry", result: "deny" }] });
    expect(authorize([policy("AUDIT", [{ to: [{ paths: ["/{x}"] }] }])], req({ path: "/{x}" })).audit).toBeUndefined();
  });

  it("leaves literal, prefix and suffix paths as they were", () => {
    expect(allowed(allowPaths(["/api/*"]), req({ path: "/api/x/y" }))).toBe(true);
    expect(allowed(allowPaths(["*/items"]), req({ path: "/a/items" }))).toBe(true);
    expect(allowed(allowPaths(["/a/*/b"]), req({ path: "/a/*/b" }))).toBe(true);
  });
});

describe("request principals: issuer and subject matched apart (split at the pattern's last '/')", () => {
  const tok = (issuer: string | undefined, subject: string | undefined): RequestAuth => ({ issuer, subject, audiences: [], claims: {} });

  it.each<[string, RequestAuth, boolean]>([
    ["https://iss/a/b", tok("https://iss", "a/b"), false],
    ["https://iss/a/b", tok("https://iss/a", "b"), true],
    ["*/alice", tok("https://iss", "mallory/alice"), false],
    ["*/alice", tok("https://iss", "alice"), true],
    ["*iss/alice", tok("https://iss", "alice"), true],
    ["*iss/alice", tok("https://other", "alice"), false],
    ["https://iss/*", tok("https://iss", "anyone"), true],
    ["https://iss/*", tok("https://iss/x", "anyone"), false],
    ["https://iss/ad*", tok("https://iss", "admin"), true],
    ["https://iss/ad*", tok("https://is", "s/admin"), false],
    // "*" at the end with a "/" in the pattern is a subject prefix (Istio splits first).
    ["https://is*", tok("https://iss", "x"), false],
    ["https://iss/x*", tok("https://iss", "xy"), true],
    ["accounts.example*", tok("accounts.example.com", "x"), true],
    ["accounts.example*", tok("other", "accounts.example"), false],
    ["*", tok("https://iss", "x"), true],
    ["*", tok("https://iss", undefined), false],
    ["*", tok(undefined, "x"), false],
    ["https://iss/", tok("https://iss", undefined), false],
    ["*lice", tok("https://iss", "alice"), true],
    ["alice", tok("alice", "alice"), false],
  ])("%s against %o: %s", (pattern, auth, want) => {
    expect(requestPrincipalMatch(pattern, auth)).toBe(want);
  });

  it("an ambiguous iss/sub split does not satisfy requestPrincipals", () => {
    const p = [policy("ALLOW", [{ from: [{ requestPrincipals: ["https://iss/a/b"] }] }])];
    expect(allowed(p, req({ auth: tok("https://iss", "a/b") }))).toBe(false);
    expect(allowed(p, req({ auth: tok("https://iss/a", "b") }))).toBe(true);
  });

  it("a token without sub has no request principal: DENY notRequestPrincipals ['*'] denies it", () => {
    const p = [policy("DENY", [{ from: [{ notRequestPrincipals: ["*"] }] }])];
    expect(allowed(p, req({ auth: tok("https://iss", undefined) }))).toBe(false);
    expect(allowed(p, req())).toBe(false);
    expect(allowed(p, req({ auth: tok("https://iss", "alice") }))).toBe(true);
  });

  it("a verified token without sub, or with an empty one, carries no subject", async () => {
    const { publicKey, privateKey } = await generateKeyPair("ES256");
    const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "k", alg: "ES256" }] });
    const keys = new JwksCache(async () => ({ keys: [] })).keys;
    const auth = async (sub: string | undefined) => {
      let t = new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: "k" }).setIssuer("https://iss");
      if (sub !== undefined) t = t.setSubject(sub);
      const r = await authenticate([{ issuer: "https://iss", jwks }], { authorization: `Bearer ${await t.sign(privateKey)}` }, "/", keys);
      if (r.kind !== "valid") throw new Error(`token refused: ${JSON.stringify(r)}`);
      return r.auth;
    };
    const deny = [policy("DENY", [{ from: [{ notRequestPrincipals: ["*"] }] }])];
    for (const sub of [undefined, ""]) {
      const a = await auth(sub);
      expect([a.issuer, a.subject]).toEqual(["https://iss", undefined]);
      expect(allowed(deny, req({ auth: a }))).toBe(false);
    }
    const alice = await auth("a/b");
    expect([alice.issuer, alice.subject]).toEqual(["https://iss", "a/b"]);
    expect(allowed(deny, req({ auth: alice }))).toBe(true);
  });

  it("the request.auth.principal condition matches the same way", () => {
    const p = (values: string[]) => [policy("ALLOW", [{ when: [{ key: "request.auth.principal", values }] }])];
    expect(allowed(p(["*/alice"]), req({ auth: tok("https://iss", "mallory/alice") }))).toBe(false);
    expect(allowed(p(["https://iss/alice"]), req({ auth: tok("https://iss", "alice") }))).toBe(true);
    const notV = [policy("DENY", [{ when: [{ key: "request.auth.principal", notValues: ["*"] }] }])];
    expect(allowed(notV, req({ auth: tok("https://iss", undefined) }))).toBe(false);
  });
});

describe("address families never cross (Envoy's CidrRange)", () => {
  it.each<[string, string, boolean]>([
    ["10.0.0.1", "::/0", false],
    ["10.0.0.1", "::ffff:0:0/96", false],
    ["10.0.0.1", "0.0.0.0/0", true],
    ["fd00::1", "0.0.0.0/0", false],
    ["fd00::1", "::/0", true],
    // An IPv4-mapped source is the IPv4 address it carries.
    ["::ffff:10.0.0.1", "10.0.0.0/8", true],
    ["::ffff:a00:1", "10.0.0.0/8", true],
    ["0:0:0:0:0:ffff:a00:1", "10.0.0.1", true],
    ["::ffff:10.0.0.1", "::/0", false],
    ["::ffff:10.0.0.1", "11.0.0.0/8", false],
    ["10.0.0.1", "10.0.0.0/", false],
    ["10.0.0.1", "10.0.0.0/8/1", false],
  ])("%s in %s: %s", (ip, cidr, want) => {
    expect(ipInCidr(ip, cidr)).toBe(want);
  });

  it("ALLOW ipBlocks ::/0 does not allow an IPv4 source; DENY notIpBlocks ::/0 does not exempt it", () => {
    expect(allowed([policy("ALLOW", [{ from: [{ ipBlocks: ["::/0"] }] }])], conn)).toBe(false);
    expect(allowed([policy("DENY", [{ from: [{ notIpBlocks: ["::/0"] }] }])], conn)).toBe(false);
    expect(allowed([policy("DENY", [{ from: [{ notIpBlocks: ["::/0"] }] }])], { ...conn, sourceIp: "fd00::5" })).toBe(true);
  });

  it("source.ip conditions too", () => {
    expect(allowed([policy("ALLOW", [{ when: [{ key: "source.ip", values: ["::/0"] }] }])], conn)).toBe(false);
  });
});

describe("request.headers conditions on pseudo-headers (Envoy's RBAC sees them)", () => {
  const when = (action: AuthorizationPolicy["action"], key: string, v: { values?: string[]; notValues?: string[] }) => [
    policy(action, [{ when: [{ key, ...v }] }]),
  ];

  it.each<[string, string, Partial<RequestFacts>]>([
    ["request.headers[:authority]", "admin.example*", { host: "admin.example:8080" }],
    ["request.headers[:method]", "DELETE", { method: "DELETE" }],
    ["request.headers[:path]", "/admin*", { path: "/admin/x?y=1" }],
    ["request.headers[:Path]", "*?y=1", { path: "/admin/x?y=1" }],
  ])("DENY %s %s denies the request it names", (key, value, r) => {
    expect(allowed(when("DENY", key, { values: [value] }), req(r))).toBe(false);
    expect(allowed(when("DENY", key, { values: [value] }), req())).toBe(true);
    expect(allowed(when("ALLOW", key, { values: [value] }), req(r))).toBe(true);
    expect(allowed(when("ALLOW", key, { notValues: [value] }), req(r))).toBe(false);
  });

  it("reads only the request's own headers and claims, never Object.prototype's", () => {
    // An ALLOW on "present" must not see `constructor` or `__proto__` on a request that has neither.
    for (const key of ["request.headers[constructor]", "request.headers[__proto__]", "request.headers[toString]"])
      expect(allowed(when("ALLOW", key, { values: ["*"] }), req()), key).toBe(false);
    const auth: RequestAuth = { issuer: "https://iss", subject: "a", audiences: [], claims: { iss: "https://iss", sub: "a" } };
    for (const key of ["request.auth.claims[constructor]", "request.auth.claims[__proto__]", "request.auth.claims[hasOwnProperty]"])
      expect(allowed(when("ALLOW", key, { values: ["*"] }), req({ auth })), key).toBe(false);
  });

  it("a pseudo-header the request facts lack is absent (:scheme): values never match", () => {
    expect(allowed(when("ALLOW", "request.headers[:scheme]", { values: ["*"] }), req())).toBe(false);
    expect(allowed(when("DENY", "request.headers[:scheme]", { notValues: ["https"] }), req())).toBe(false);
  });
});
