import { describe, expect, it } from "vitest";
import { authorize, authorizeStaged, type ConnectionFacts, l7Note, type RequestFacts } from "../../agent/proxy/authz.js";
import type { AuthorizationPolicy, AuthzRule } from "../../controller/api/model.js";

const conn: ConnectionFacts = {
  sourceIdentity: "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews",
  sourceIp: "10.244.1.5",
  destinationIp: "10.244.2.7",
  destinationPort: 9080,
};

function req(r: Partial<RequestFacts> = {}): ConnectionFacts {
  return { ...conn, request: { method: "GET", path: "/ratings/0?x=1", host: "ratings:9080", headers: { "x-user": "jason" }, ...r } };
}

function policy(
  action: AuthorizationPolicy["action"],
  rules: Partial<AuthzRule>[],
  extra: Partial<AuthorizationPolicy> = {},
): AuthorizationPolicy {
  const key = extra.key ?? `ns/${action.toLowerCase()}`;
  return {
    key,
    name: key.split("/")[1] as string,
    namespace: "ns",
    scope: { kind: "namespace" },
    action,
    rules: rules.map((r) => ({ from: [], to: [], when: [], ...r })),
    ...extra,
  };
}

const auth = {
  issuer: "https://issuer.example",
  subject: "alice",
  audiences: ["bookinfo"],
  claims: { groups: ["dev", "ops"], nested: { role: "admin" }, iss: "https://issuer.example" },
};

describe("HTTP authorization (Istio semantics, request attributes)", () => {
  it.each<[string, AuthorizationPolicy[], ConnectionFacts, boolean]>([
    ["ALLOW GET: a GET is allowed", [policy("ALLOW", [{ to: [{ methods: ["GET"] }] }])], req(), true],
    ["ALLOW GET: a POST is denied", [policy("ALLOW", [{ to: [{ methods: ["GET"] }] }])], req({ method: "POST" }), false],
    [
      "DENY POST wins over ALLOW all",
      [policy("ALLOW", [{}]), policy("DENY", [{ to: [{ methods: ["POST"] }] }])],
      req({ method: "POST" }),
      false,
    ],
    ["DENY POST leaves GET alone", [policy("DENY", [{ to: [{ methods: ["POST"] }] }])], req(), true],
    ["exact path ignores the query", [policy("ALLOW", [{ to: [{ paths: ["/ratings/0"] }] }])], req(), true],
    ["prefix path", [policy("ALLOW", [{ to: [{ paths: ["/ratings/*"] }] }])], req(), true],
    ["suffix path", [policy("ALLOW", [{ to: [{ paths: ["*/0"] }] }])], req(), true],
    ["presence path", [policy("ALLOW", [{ to: [{ paths: ["*"] }] }])], req(), true],
    ["another path denies", [policy("ALLOW", [{ to: [{ paths: ["/health"] }] }])], req(), false],
    ["notPaths excludes", [policy("ALLOW", [{ to: [{ notPaths: ["/ratings/*"] }] }])], req(), false],
    ["notMethods: GET passes a notMethods POST", [policy("ALLOW", [{ to: [{ notMethods: ["POST"] }] }])], req(), true],
    ["host without port matches host:port", [policy("ALLOW", [{ to: [{ hosts: ["RATINGS"] }] }])], req(), true],
    ["host with another port does not", [policy("ALLOW", [{ to: [{ hosts: ["ratings:80"] }] }])], req(), false],
    ["notHosts excludes", [policy("ALLOW", [{ to: [{ notHosts: ["ratings*"] }] }])], req(), false],
    ["method AND port", [policy("ALLOW", [{ to: [{ methods: ["GET"], ports: [1] }] }])], req(), false],
    [
      "from AND to",
      [policy("ALLOW", [{ from: [{ principals: ["cluster.local/ns/bookinfo/sa/bookinfo-reviews"] }], to: [{ methods: ["GET"] }] }])],
      req(),
      true,
    ],
    [
      "another principal with the right method",
      [policy("ALLOW", [{ from: [{ principals: ["cluster.local/ns/x/sa/y"] }], to: [{ methods: ["GET"] }] }])],
      req(),
      false,
    ],
    ["header condition", [policy("ALLOW", [{ when: [{ key: "request.headers[X-User]", values: ["jas*"] }] }])], req(), true],
    ["header condition notValues", [policy("ALLOW", [{ when: [{ key: "request.headers[x-user]", notValues: ["jason"] }] }])], req(), false],
    [
      "absent header does not match values",
      [policy("ALLOW", [{ when: [{ key: "request.headers[x-none]", values: ["*"] }] }])],
      req(),
      false,
    ],
    ["absent header passes notValues", [policy("DENY", [{ when: [{ key: "request.headers[x-none]", notValues: ["1"] }] }])], req(), false],
    [
      "request.auth.principal",
      [policy("ALLOW", [{ when: [{ key: "request.auth.principal", values: ["https://issuer.example/*"] }] }])],
      req({ auth }),
      true,
    ],
    [
      "request.auth.principal without a token",
      [policy("ALLOW", [{ when: [{ key: "request.auth.principal", values: ["*"] }] }])],
      req(),
      false,
    ],
    [
      "request.auth.audiences",
      [policy("ALLOW", [{ when: [{ key: "request.auth.audiences", values: ["bookinfo"] }] }])],
      req({ auth }),
      true,
    ],
    [
      "request.auth.claims list",
      [policy("ALLOW", [{ when: [{ key: "request.auth.claims[groups]", values: ["ops"] }] }])],
      req({ auth }),
      true,
    ],
    [
      "request.auth.claims nested",
      [policy("ALLOW", [{ when: [{ key: "request.auth.claims[nested][role]", values: ["admin"] }] }])],
      req({ auth }),
      true,
    ],
    [
      "request.auth.claims mismatch",
      [policy("ALLOW", [{ when: [{ key: "request.auth.claims[groups]", values: ["hr"] }] }])],
      req({ auth }),
      false,
    ],
    ["destination.port condition", [policy("ALLOW", [{ when: [{ key: "destination.port", values: ["9080"] }] }])], req(), true],
    [
      "connection.sni is never known here: ALLOW fails closed",
      [policy("ALLOW", [{ when: [{ key: "connection.sni", values: ["*"] }] }])],
      req(),
      false,
    ],
    ["AUDIT never denies", [policy("AUDIT", [{ to: [{ methods: ["GET"] }] }])], req(), true],
  ])("%s", (_name, policies, facts, allowed) => {
    expect(authorize(policies, facts).allowed).toBe(allowed);
  });

  it("never enforces a dry-run policy, but reports what it would have done", () => {
    const dry = policy("DENY", [{ to: [{ methods: ["GET"] }] }], { key: "ns/dry-deny", dryRun: true });
    const d = authorize([dry], req());
    expect(d.allowed).toBe(true);
    expect(d.dryRun).toEqual([{ policy: "ns/dry-deny", result: "deny" }]);
    expect(authorize([dry], req({ method: "PUT" })).dryRun).toEqual([]);
    const dryAllow = policy("ALLOW", [{ to: [{ methods: ["POST"] }] }], { key: "ns/dry-allow", dryRun: true });
    expect(authorize([dryAllow], req())).toMatchObject({ allowed: true, dryRun: [{ policy: "ns/dry-allow", result: "deny" }] });
    expect(authorize([dryAllow], req({ method: "POST" })).dryRun).toEqual([{ policy: "ns/dry-allow", result: "allow" }]);
  });

  it("names the AUDIT policies that matched", () => {
    const d = authorize([policy("AUDIT", [{ to: [{ paths: ["/ratings/*"] }] }], { key: "ns/audit" })], req());
    expect(d.audit).toEqual(["ns/audit"]);
  });

  it("stages a connection: decided outright when HTTP attributes cannot change it, else per request", () => {
    const l4Only = [policy("ALLOW", [{ from: [{ namespaces: ["bookinfo"] }] }])];
    expect(authorizeStaged(l4Only, conn)).toMatchObject({ allowed: true });
    expect(authorizeStaged(l4Only, conn).perRequest).toBeUndefined();
    const getOnly = [policy("ALLOW", [{ to: [{ methods: ["GET"] }] }])];
    expect(authorizeStaged(getOnly, conn)).toMatchObject({ allowed: true, perRequest: true });
    // No request from another namespace could be allowed: refused at the connection.
    const nsAndGet = [policy("ALLOW", [{ from: [{ namespaces: ["other"] }], to: [{ methods: ["GET"] }] }])];
    expect(authorizeStaged(nsAndGet, conn).allowed).toBe(false);
    const denyPost = [policy("DENY", [{ to: [{ methods: ["POST"] }] }])];
    expect(authorizeStaged(denyPost, conn)).toMatchObject({ allowed: true, perRequest: true });
    const dry = [policy("DENY", [{ to: [{ methods: ["GET"] }] }], { dryRun: true })];
    expect(authorizeStaged(dry, conn)).toMatchObject({ allowed: true, perRequest: true });
  });

  it("explains why HTTP rules fail closed on a port that is not HTTP", () => {
    const getOnly = [policy("ALLOW", [{ to: [{ methods: ["GET"] }] }])];
    expect(l7Note(getOnly, conn)).toMatch(/HTTP attributes/);
    expect(l7Note([policy("ALLOW", [{ from: [{ namespaces: ["x"] }] }])], conn)).toBeUndefined();
  });
});
