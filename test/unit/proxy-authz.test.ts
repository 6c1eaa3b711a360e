import { describe, expect, it } from "vitest";
import { authorize, type ConnectionFacts, stringMatch } from "../../agent/proxy/authz.js";
import type { AuthorizationPolicy, AuthzRule } from "../../controller/api/model.js";

const facts: ConnectionFacts = {
  sourceIdentity: "spiffe://cluster.local/ns/shop/sa/web",
  sourceIp: "10.244.1.5",
  destinationIp: "10.244.2.7",
  destinationPort: 8080,
};

function policy(
  action: AuthorizationPolicy["action"],
  rules: Partial<AuthzRule>[],
  key = `ns/${action.toLowerCase()}`,
): AuthorizationPolicy {
  return {
    key,
    name: key.split("/")[1] as string,
    namespace: "ns",
    scope: { kind: "namespace" },
    action,
    rules: rules.map((r) => ({ from: [], to: [], when: [], ...r })),
  };
}

describe("L4 authorization (Istio semantics)", () => {
  it.each<[string, AuthorizationPolicy[], boolean]>([
    ["no policy allows", [], true],
    ["ALLOW with no rules allows nothing", [policy("ALLOW", [])], false],
    ["ALLOW with an empty rule allows all", [policy("ALLOW", [{}])], true],
    ["ALLOW by exact principal", [policy("ALLOW", [{ from: [{ principals: ["cluster.local/ns/shop/sa/web"] }] }])], true],
    ["ALLOW by another principal denies", [policy("ALLOW", [{ from: [{ principals: ["cluster.local/ns/shop/sa/db"] }] }])], false],
    ["ALLOW by principal prefix", [policy("ALLOW", [{ from: [{ principals: ["cluster.local/ns/shop/*"] }] }])], true],
    ["ALLOW by principal suffix", [policy("ALLOW", [{ from: [{ principals: ["*/sa/web"] }] }])], true],
    ["ALLOW by namespace", [policy("ALLOW", [{ from: [{ namespaces: ["shop"] }] }])], true],
    ["notNamespaces excludes", [policy("ALLOW", [{ from: [{ notNamespaces: ["shop"] }] }])], false],
    ["ALLOW by ipBlock", [policy("ALLOW", [{ from: [{ ipBlocks: ["10.244.1.0/24"] }] }])], true],
    ["notIpBlocks excludes", [policy("ALLOW", [{ from: [{ notIpBlocks: ["10.244.0.0/16"] }] }])], false],
    ["ALLOW by port", [policy("ALLOW", [{ to: [{ ports: [8080] }] }])], true],
    ["ALLOW on another port denies", [policy("ALLOW", [{ to: [{ ports: [9090] }] }])], false],
    ["notPorts excludes", [policy("ALLOW", [{ to: [{ notPorts: [8080] }] }])], false],
    [
      "DENY by principal wins over ALLOW",
      [policy("ALLOW", [{}]), policy("DENY", [{ from: [{ principals: ["cluster.local/ns/shop/sa/web"] }] }])],
      false,
    ],
    ["DENY for another principal does not deny", [policy("DENY", [{ from: [{ principals: ["cluster.local/ns/x/sa/y"] }] }])], true],
    ["from AND to must both match", [policy("ALLOW", [{ from: [{ namespaces: ["shop"] }], to: [{ ports: [1] }] }])], false],
    ["any of several rules", [policy("ALLOW", [{ to: [{ ports: [1] }] }, { from: [{ namespaces: ["shop"] }] }])], true],
    ["L7 fields: an ALLOW rule cannot match at L4", [policy("ALLOW", [{ to: [{ methods: ["GET"] }] }])], false],
    ["L7 fields: a DENY rule applies at L4 (fail closed)", [policy("DENY", [{ to: [{ paths: ["/admin"] }] }])], false],
    ["when source.namespace", [policy("ALLOW", [{ when: [{ key: "source.namespace", values: ["shop"] }] }])], true],
    ["when destination.port notValues", [policy("ALLOW", [{ when: [{ key: "destination.port", notValues: ["8080"] }] }])], false],
    ["when source.ip CIDR", [policy("ALLOW", [{ when: [{ key: "source.ip", values: ["10.244.1.0/24"] }] }])], true],
    ["when request.headers at L4 does not allow", [policy("ALLOW", [{ when: [{ key: "request.headers[x]", values: ["1"] }] }])], false],
    ["AUDIT has no effect", [policy("AUDIT", [{}])], true],
  ])("%s", (_name, policies, allowed) => {
    expect(authorize(policies, facts).allowed).toBe(allowed);
  });

  it("names the deciding policy", () => {
    const d = authorize([policy("DENY", [{ from: [{ namespaces: ["shop"] }] }], "ns/block-shop")], facts);
    expect(d).toMatchObject({ allowed: false, policy: "ns/block-shop" });
    expect(d.reason).toMatch(/ns\/block-shop/);
  });

  it("plaintext (no identity) never matches principal rules", () => {
    const { sourceIdentity: _, ...plain } = facts;
    expect(authorize([policy("ALLOW", [{ from: [{ principals: ["*"] }] }])], plain).allowed).toBe(false);
    expect(authorize([policy("ALLOW", [{ from: [{ ipBlocks: ["10.0.0.0/8"] }] }])], plain).allowed).toBe(true);
  });

  it("matches strings as Istio does", () => {
    expect(stringMatch("*", "x")).toBe(true);
    expect(stringMatch("a*", "abc")).toBe(true);
    expect(stringMatch("*c", "abc")).toBe(true);
    expect(stringMatch("abc", "abcd")).toBe(false);
    expect(stringMatch("*", undefined)).toBe(false);
  });
});
