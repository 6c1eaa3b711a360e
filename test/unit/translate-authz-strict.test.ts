/**
 * AuthorizationPolicy input that used to widen access (security review): CUSTOM dropped,
 * `targetRefs: []` dropping the policy, remote.ip read as the peer address, empty lists and empty
 * sources/operations matching anything, unnormalised destination.port values, methods rewritten.
 */
import { describe, expect, it } from "vitest";
import type { AuthorizationPolicy } from "../../controller/api/model.js";
import { translate } from "../../controller/translate/index.js";
import type { MeshModel } from "../../controller/translate/types.js";
import { custom, objects } from "../helpers/control-objects.js";

const ap = (spec: unknown, ns = "shop") => custom("security.istio.io/v1", "AuthorizationPolicy", "p", ns, spec);
const one = (spec: unknown): { m: MeshModel; p: AuthorizationPolicy | undefined } => {
  const m = translate(objects([ap(spec)]));
  return { m, p: m.authorizationPolicies[0] };
};
const warnings = (m: MeshModel) => m.diagnostics.filter((d) => d.severity === "warning").map((d) => d.message);
const ALL = { from: [], to: [], when: [] };
const adminOnly = [{ to: [{ operation: { paths: ["/admin*"] } }] }];

describe("action CUSTOM: denies what its rules match (weft has no external authorizer)", () => {
  it.each(["CUSTOM", "custom"])("%s with a provider becomes a DENY of its own rules, with a warning", (action) => {
    const { m, p } = one({ action, provider: { name: "ext" }, rules: adminOnly });
    expect(p).toMatchObject({
      action: "DENY",
      scope: { kind: "namespace" },
      rules: [{ from: [], to: [{ paths: ["/admin*"] }], when: [] }],
    });
    expect(p?.errors).toBeUndefined();
    expect(m.diagnostics).toEqual([
      expect.objectContaining({
        severity: "warning",
        ref: expect.objectContaining({ kind: "AuthorizationPolicy", namespace: "shop", name: "p" }),
        message:
          "spec.action CUSTOM (external authorization by provider 'ext') is not supported, weft has no ext_authz: the requests this policy's rules match are denied (fail closed)",
      }),
    ]);
  });

  it.each([
    ["no provider", { action: "CUSTOM", rules: adminOnly }],
    ["a provider without name", { action: "CUSTOM", provider: {}, rules: adminOnly }],
  ])("with %s denies its whole scope (as Istio does) and reports it", (_n, spec) => {
    const { m, p } = one(spec);
    expect(p).toMatchObject({ action: "DENY", rules: [ALL], errors: ["spec.provider.name: is required with action CUSTOM"] });
    expect(m.diagnostics.map((d) => d.severity).sort()).toEqual(["error", "warning"]);
  });

  it("drops only the unsupported part of a CUSTOM rule, like a DENY's", () => {
    const { p } = one({
      action: "CUSTOM",
      provider: { name: "ext" },
      rules: [{ from: [{ source: { remoteIpBlocks: ["1.2.3.4"] } }], to: [{ operation: { ports: ["80"] } }] }],
    });
    expect(p?.rules).toEqual([{ from: [{}], to: [{ ports: [80] }], when: [] }]);
  });
});

describe("targetRefs: [] is absent (Istio counts only a non-empty list)", () => {
  it("keeps the policy in force for its namespace", () => {
    const { m, p } = one({ targetRefs: [], action: "DENY", rules: [{ from: [{ source: { namespaces: ["evil"] } }] }] });
    expect(p).toMatchObject({ action: "DENY", scope: { kind: "namespace" }, rules: [{ from: [{ namespaces: ["evil"] }] }] });
    expect(m.diagnostics).toEqual([]);
  });

  it("a targetRefs that is not a list is invalid and the DENY denies its whole scope", () => {
    const { p } = one({ targetRefs: "gw", action: "DENY", rules: [{ from: [{ source: { namespaces: ["evil"] } }] }] });
    expect(p).toMatchObject({ action: "DENY", rules: [ALL], errors: ["spec.targetRefs: expected a list of references"] });
  });
});

describe("remote.ip is unsupported, like remoteIpBlocks", () => {
  const when = [{ key: "remote.ip", values: ["10.0.0.0/8"] }];
  it("drops an ALLOW rule that uses it", () => {
    const { m, p } = one({ rules: [{ when }] });
    expect(p).toMatchObject({ action: "ALLOW", rules: [] });
    expect(warnings(m)).toEqual([
      "spec.rules[0] uses spec.rules[0].when[0].key 'remote.ip', which weft cannot check: this ALLOW rule is dropped and never matches (fail closed)",
    ]);
  });

  it("drops the condition from a DENY rule, which then denies more", () => {
    const { m, p } = one({ action: "DENY", rules: [{ to: [{ operation: { ports: ["22"] } }], when }] });
    expect(p?.rules).toEqual([{ from: [], to: [{ ports: [22] }], when: [] }]);
    expect(warnings(m)).toEqual([expect.stringMatching(/when\[0\]\.key 'remote\.ip'.*this DENY rule denies more \(fail closed\)/)]);
  });
});

describe("empty lists, sources and operations are invalid, not match-anything", () => {
  const toPublic = { operation: { paths: ["/public"] } };
  it.each<[string, unknown, string]>([
    [
      "principals: []",
      { from: [{ source: { principals: [] } }], to: [toPublic] },
      "spec.rules[0].from[0].source.principals: is an empty list",
    ],
    [
      "namespaces: [] beside another field",
      { from: [{ source: { namespaces: [], ipBlocks: ["10.0.0.0/8"] } }] },
      "spec.rules[0].from[0].source.namespaces: is an empty list",
    ],
    ["notPrincipals: []", { from: [{ source: { notPrincipals: [] } }] }, "spec.rules[0].from[0].source.notPrincipals: is an empty list"],
    [
      "an empty string among principals",
      { from: [{ source: { principals: [""] } }] },
      "spec.rules[0].from[0].source.principals[0]: is an empty string",
    ],
    ["source: {}", { from: [{ source: {} }], to: [toPublic] }, "spec.rules[0].from[0].source: is empty"],
    ["a from entry without source", { from: [{}], to: [toPublic] }, "spec.rules[0].from[0].source: is required"],
    ["from: []", { from: [], to: [toPublic] }, "spec.rules[0].from: is an empty list"],
    ["operation: {}", { to: [{ operation: {} }] }, "spec.rules[0].to[0].operation: is empty"],
    ["a to entry without operation", { to: [{}] }, "spec.rules[0].to[0].operation: is required"],
    ["to: []", { from: [{ source: { namespaces: ["a"] } }], to: [] }, "spec.rules[0].to: is an empty list"],
    ["paths: []", { to: [{ operation: { paths: [], ports: ["80"] } }] }, "spec.rules[0].to[0].operation.paths: is an empty list"],
    ["methods: []", { to: [{ operation: { methods: [] } }] }, "spec.rules[0].to[0].operation.methods: is an empty list"],
    ["ports: []", { to: [{ operation: { ports: [] } }] }, "spec.rules[0].to[0].operation.ports: is an empty list"],
    [
      "condition values: []",
      { when: [{ key: "source.namespace", values: [], notValues: ["a"] }] },
      "spec.rules[0].when[0].values: is an empty list",
    ],
  ])("%s: an ALLOW rule is dropped, a DENY rule matches everything, and it is reported", (_n, rule, error) => {
    const allow = one({ rules: [rule] });
    expect(allow.p).toMatchObject({ action: "ALLOW", rules: [] });
    expect(allow.p?.errors).toEqual([expect.stringContaining(error)]);
    expect(allow.m.diagnostics.map((d) => [d.severity, d.message])).toEqual([["error", expect.stringContaining(`invalid: ${error}`)]]);
    const deny = one({ action: "DENY", rules: [rule] });
    expect(deny.p).toMatchObject({ action: "DENY", rules: [ALL], errors: [expect.stringContaining(error)] });
  });

  it.each<[string, unknown, unknown]>([
    ["a rule {}", {}, ALL],
    ["when: []", { when: [] }, ALL],
    [
      "a source with only an unsupported field (dropped from a DENY)",
      { from: [{ source: { remoteIpBlocks: ["1.2.3.4"] } }] },
      { from: [{}], to: [], when: [] },
    ],
  ])("%s stays valid", (_n, rule, translated) => {
    const { p } = one({ action: "DENY", rules: [rule] });
    expect(p?.errors).toBeUndefined();
    expect(p?.rules).toEqual([translated]);
  });
});

describe("values are kept as Istio compares them", () => {
  it("stores destination.port condition values as port numbers (080 is 80)", () => {
    const { m, p } = one({
      action: "DENY",
      rules: [
        {
          when: [
            { key: "destination.port", values: ["080", "8080"] },
            { key: "destination.port", notValues: ["0443"] },
          ],
        },
      ],
    });
    expect(m.diagnostics).toEqual([]);
    expect(p?.rules[0]?.when).toEqual([
      { key: "destination.port", values: ["80", "8080"] },
      { key: "destination.port", notValues: ["443"] },
    ]);
  });

  it("keeps methods as written (case-sensitive, as Istio) and warns that a lower-case one never matches", () => {
    const { m, p } = one({ action: "DENY", rules: [{ to: [{ operation: { notMethods: ["get"], methods: ["POST", "Put"] } }] }] });
    expect(p?.rules[0]?.to).toEqual([{ methods: ["POST", "Put"], notMethods: ["get"] }]);
    expect(p?.errors).toBeUndefined();
    expect(warnings(m)).toEqual([
      "spec.rules[0].to[0].operation.methods[1] 'Put' has lower-case letters: HTTP methods are case-sensitive and weft refuses requests with lower-case methods (400), so this value never matches",
      "spec.rules[0].to[0].operation.notMethods[0] 'get' has lower-case letters: HTTP methods are case-sensitive and weft refuses requests with lower-case methods (400), so this value never matches",
    ]);
  });

  it("passes paths with templates through unchanged (the agent matches them)", () => {
    const { p } = one({ rules: [{ to: [{ operation: { paths: ["/api/{*}/items/{**}"] } }] }] });
    expect(p?.rules[0]?.to).toEqual([{ paths: ["/api/{*}/items/{**}"] }]);
  });

  it.each([
    "/a/{**}/{*}",
    "/a/{x}",
    "/a/b{*}",
    "/a/{*",
    "{*}/a",
  ])("refuses the invalid template %s: an ALLOW rule is dropped, a DENY matches all", (path) => {
    const allow = one({ rules: [{ to: [{ operation: { paths: [path] } }] }] }).p;
    expect(allow?.rules).toEqual([]);
    expect(allow?.errors?.[0]).toContain("is not a valid path template");
    const deny = one({ action: "DENY", rules: [{ to: [{ operation: { notPaths: ["/ok", path] } }] }] }).p;
    expect(deny?.rules).toEqual([ALL]);
    expect(deny?.errors?.[0]).toContain(`spec.rules[0].to[0].operation.notPaths[1]: '${path}' is not a valid path template`);
  });
});
