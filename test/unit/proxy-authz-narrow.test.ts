import { describe, expect, it } from "vitest";
import { authorize, authorizeEveryRule, type ConnectionFacts } from "../../agent/proxy/authz.js";
import type { AuthorizationPolicy, AuthzCondition, AuthzOperation, AuthzRule, AuthzSource } from "../../controller/api/model.js";
import { seeded } from "../helpers/seeded.js";

// Per request, authorize checks only the rules a connection (and method) could ever match,
// remembered per policy list. These tests hold it to the plain evaluation of every rule, with one
// shared list across many connections and requests, as the destination proxy uses it.

const IDS = ["spiffe://cluster.local/ns/a/sa/x", "spiffe://cluster.local/ns/b/sa/y", undefined];
const IPS = ["10.1.0.5", "10.1.0.6", "10.2.0.9"];
const PORTS = [8080, 9090];
const METHODS = ["GET", "POST", "DELETE", "BREW"];
const PATHS = ["/", "/api/v1?x=1", "/admin/users", "/health", "/admin/a*b", "/api/"];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)] as T;
}

function some<T>(r: () => number, xs: readonly T[]): T[] {
  return xs.filter(() => r() < 0.4).concat(pick(r, xs));
}

function randomSource(r: () => number): AuthzSource {
  const s: AuthzSource = {};
  const k = r();
  if (k < 0.25) s.principals = some(r, ["cluster.local/ns/a/sa/x", "cluster.local/ns/b/*", "*"]);
  else if (k < 0.45) s.namespaces = some(r, ["a", "b", "c"]);
  else if (k < 0.6) s.ipBlocks = some(r, ["10.1.0.0/24", "10.2.0.9/32"]);
  else if (k < 0.7) s.notNamespaces = some(r, ["a", "b"]);
  else if (k < 0.8) s.requestPrincipals = ["*"];
  else s.notPrincipals = some(r, ["cluster.local/ns/a/sa/x"]);
  return s;
}

function randomOperation(r: () => number): AuthzOperation {
  const o: AuthzOperation = {};
  if (r() < 0.5) o.methods = some(r, METHODS);
  else if (r() < 0.3) o.notMethods = some(r, METHODS);
  if (r() < 0.4) o.paths = some(r, ["/api/*", "/admin/*", "/health", "*", "/admin/{*}", "/api/{**}"]);
  if (r() < 0.15) o.notPaths = some(r, ["/admin/*", "/admin/{*}", "/{x}"]);
  if (r() < 0.3) o.ports = some(r, PORTS);
  if (r() < 0.1) o.notPorts = some(r, PORTS);
  return o;
}

function randomCondition(r: () => number): AuthzCondition {
  const k = r();
  if (k < 0.3) return { key: "request.headers[x-user]", values: some(r, ["jason", "ann"]) };
  if (k < 0.5) return { key: "source.ip", values: some(r, ["10.1.0.0/24", "10.2.0.9"]) };
  if (k < 0.7) return { key: "source.namespace", notValues: some(r, ["a", "b"]) };
  if (k < 0.8) return { key: "destination.port", values: some(r, PORTS.map(String)) };
  if (k < 0.85) return { key: "request.headers[:method]", notValues: some(r, METHODS) };
  return { key: "source.principal", values: some(r, ["cluster.local/ns/a/sa/x"]) };
}

function randomRule(r: () => number): AuthzRule {
  return {
    from: r() < 0.6 ? [randomSource(r)] : [],
    to: r() < 0.7 ? Array.from({ length: 1 + Math.floor(r() * 2) }, () => randomOperation(r)) : [],
    when: r() < 0.4 ? [randomCondition(r)] : [],
  };
}

function randomPolicies(r: () => number, i: number): AuthorizationPolicy[] {
  const n = 1 + Math.floor(r() * 12);
  return Array.from({ length: n }, (_, j) => {
    const action = pick(r, ["ALLOW", "ALLOW", "DENY", "AUDIT"] as const);
    const key = `ns/p${i}-${j}`;
    return {
      key,
      name: key.slice(3),
      namespace: "ns",
      scope: { kind: "namespace" },
      action,
      ...(r() < 0.15 ? { dryRun: true } : {}),
      rules: Array.from({ length: 1 + Math.floor(r() * 3) }, () => randomRule(r)),
    } as AuthorizationPolicy;
  });
}

function randomRequest(r: () => number): ConnectionFacts {
  const id = pick(r, IDS);
  return {
    ...(id ? { sourceIdentity: id } : {}),
    sourceIp: pick(r, IPS),
    destinationIp: "10.3.0.1",
    destinationPort: pick(r, PORTS),
    request: {
      method: pick(r, METHODS),
      path: pick(r, PATHS),
      host: "svc:8080",
      headers: r() < 0.5 ? { "x-user": pick(r, ["jason", "ann", "bob"]) } : {},
      ...(r() < 0.3 ? { auth: { issuer: "iss", subject: pick(r, ["sub", "a/b"]), audiences: [], claims: {} } } : {}),
    },
  };
}

describe("authorization narrowed per connection and method", () => {
  it("decides every request as the check of every rule does, over 300 random policy sets × 60 requests on one shared list", () => {
    const r = seeded(20261130);
    let denied = 0;
    let allowed = 0;
    for (let i = 0; i < 300; i++) {
      const policies = randomPolicies(r, i);
      for (let q = 0; q < 60; q++) {
        const facts = randomRequest(r);
        const got = authorize(policies, facts);
        const want = authorizeEveryRule(policies, facts);
        expect(got, `set ${i} request ${q}: ${JSON.stringify(facts)}`).toEqual(want);
        if (got.allowed) allowed++;
        else denied++;
      }
    }
    // The generator must exercise both outcomes, or the comparison proves little.
    expect(denied).toBeGreaterThan(1000);
    expect(allowed).toBeGreaterThan(1000);
  });

  const client = "spiffe://cluster.local/ns/a/sa/x";
  const facts = (method: string, path = "/api", id = client): ConnectionFacts => ({
    sourceIdentity: id,
    sourceIp: "10.1.0.5",
    destinationIp: "10.3.0.1",
    destinationPort: 8080,
    request: { method, path, host: "svc", headers: {} },
  });
  const pol = (key: string, action: AuthorizationPolicy["action"], rules: Partial<AuthzRule>[]): AuthorizationPolicy => ({
    key,
    name: key,
    namespace: "ns",
    scope: { kind: "namespace" },
    action,
    rules: rules.map((x) => ({ from: [], to: [], when: [], ...x })),
  });

  it("remembers nothing of one request's method or path for the next on the same connection", () => {
    const list = [pol("ns/no-post", "DENY", [{ to: [{ methods: ["POST"] }] }]), pol("ns/api", "ALLOW", [{ to: [{ paths: ["/api"] }] }])];
    expect(authorize(list, facts("GET")).allowed).toBe(true);
    expect(authorize(list, facts("POST")).allowed).toBe(false);
    expect(authorize(list, facts("GET", "/other")).allowed).toBe(false);
    expect(authorize(list, facts("GET")).allowed).toBe(true);
  });

  it("denies a source that no ALLOW policy can ever match (the ALLOW set is not empty for it)", () => {
    const list = [pol("ns/only-b", "ALLOW", [{ from: [{ namespaces: ["b"] }] }])];
    const d = authorize(list, facts("GET"));
    expect(d.allowed).toBe(false);
    expect(d.reason).toContain("ns/only-b");
    expect(authorize(list, facts("GET", "/api", "spiffe://cluster.local/ns/b/sa/y")).allowed).toBe(true);
  });

  it("checks a made-up method against notMethods without keying the cache by it", () => {
    const list = [pol("ns/not-brew", "ALLOW", [{ to: [{ notMethods: ["BREW"] }] }])];
    expect(authorize(list, facts("BREW")).allowed).toBe(false);
    expect(authorize(list, facts("MAKE")).allowed).toBe(true);
    expect(authorize(list, facts("BREW")).allowed).toBe(false);
  });
});
