/** Translation of AuthorizationPolicy and PeerAuthentication: scopes, rules, fail-closed handling, errors. */
import { describe, expect, it } from "vitest";
import { translate } from "../../controller/translate/index.js";
import type { Diagnostic } from "../../controller/translate/types.js";
import { custom, objects } from "../helpers/control-objects.js";

const ap = (name: string, ns: string, spec: unknown) => custom("security.istio.io/v1", "AuthorizationPolicy", name, ns, spec);
const pa = (name: string, ns: string, spec: unknown) => custom("security.istio.io/v1beta1", "PeerAuthentication", name, ns, spec);
const msgs = (d: Diagnostic[]) => d.map((x) => `${x.severity}: ${x.message}`);

describe("translate: AuthorizationPolicy", () => {
  it("refuses serviceAccounts next to principals or namespaces, as Istio does: the ALLOW rule is dropped, a DENY's matches all", () => {
    const spec = (action: string) => ({
      action,
      rules: [{ from: [{ source: { principals: ["cluster.local/ns/y/sa/z"], serviceAccounts: ["other/api"] } }] }],
    });
    const allow = translate(objects([ap("a", "shop", spec("ALLOW"))])).authorizationPolicies[0];
    expect(allow?.rules).toEqual([]);
    expect(allow?.errors).toEqual([
      "spec.rules[0].from[0].source.serviceAccounts: cannot be set with principals (Istio refuses the combination)",
    ]);
    const deny = translate(objects([ap("d", "shop", spec("DENY"))])).authorizationPolicies[0];
    expect(deny?.rules).toEqual([{ from: [], to: [], when: [] }]);
  });

  it("translates a full ALLOW policy", () => {
    const m = translate(
      objects([
        ap("allow", "shop", {
          selector: { matchLabels: { app: "web" } },
          action: "ALLOW",
          rules: [
            {
              from: [
                {
                  source: {
                    principals: ["spiffe://cluster.local/ns/shop/sa/client", "cluster.local/ns/x/*"],
                    namespaces: ["shop"],
                    notIpBlocks: ["10.0.0.0/8"],
                  },
                },
                { source: { serviceAccounts: ["other/api"] } },
              ],
              to: [{ operation: { ports: ["8080"], methods: ["GET"], paths: ["/api/*"] } }],
              when: [
                { key: "source.ip", values: ["10.244.0.0/16"] },
                { key: "request.headers[x-user]", notValues: ["bob"] },
              ],
            },
          ],
        }),
      ]),
    );
    expect(m.diagnostics).toEqual([]);
    expect(m.authorizationPolicies).toEqual([
      {
        key: "shop/allow",
        name: "allow",
        namespace: "shop",
        scope: { kind: "workload", selector: { app: "web" } },
        action: "ALLOW",
        rules: [
          {
            from: [
              {
                principals: ["cluster.local/ns/shop/sa/client", "cluster.local/ns/x/*"],
                namespaces: ["shop"],
                notIpBlocks: ["10.0.0.0/8"],
              },
              { principals: ["cluster.local/ns/other/sa/api"] },
            ],
            to: [{ ports: [8080], methods: ["GET"], paths: ["/api/*"] }],
            when: [
              { key: "source.ip", values: ["10.244.0.0/16"] },
              { key: "request.headers[x-user]", notValues: ["bob"] },
            ],
          },
        ],
      },
    ]);
  });

  it.each([
    ["shop", undefined, { kind: "namespace" }],
    ["shop", { app: "web" }, { kind: "workload", selector: { app: "web" } }],
    ["weft-system", undefined, { kind: "mesh" }],
    // In the root namespace a selector applies in every namespace (Istio).
    ["weft-system", { app: "web" }, { kind: "mesh", selector: { app: "web" } }],
    ["shop", {}, { kind: "namespace" }],
  ])("scope of a policy in %s with selector %j", (ns, labels, scope) => {
    const m = translate(objects([ap("p", ns, labels ? { selector: { matchLabels: labels } } : {})]));
    expect(m.authorizationPolicies[0]?.scope).toEqual(scope);
  });

  it("keeps Istio's empty-policy semantics: ALLOW without rules allows nothing, a rule {} matches all", () => {
    const m = translate(objects([ap("deny-all", "shop", {}), ap("allow-all", "shop", { rules: [{}] })]));
    expect(m.authorizationPolicies.map((p) => [p.name, p.action, p.rules])).toEqual([
      ["allow-all", "ALLOW", [{ from: [], to: [], when: [] }]],
      ["deny-all", "ALLOW", []],
    ]);
  });

  it("drops an ALLOW rule that uses an unsupported field (fail closed) and says so", () => {
    const m = translate(
      objects([
        ap("jwt", "shop", {
          rules: [{ from: [{ source: { remoteIpBlocks: ["10.0.0.0/8"] } }] }, { to: [{ operation: { ports: ["80"] } }] }],
        }),
      ]),
    );
    expect(m.authorizationPolicies[0]?.rules).toEqual([{ from: [], to: [{ ports: [80] }], when: [] }]);
    expect(msgs(m.diagnostics)).toEqual([
      "warning: spec.rules[0] uses spec.rules[0].from[0].source.remoteIpBlocks, which weft cannot check: this ALLOW rule is dropped and never matches (fail closed)",
    ]);
  });

  it("drops only the unsupported part of a DENY rule, so it denies more (fail closed)", () => {
    const m = translate(
      objects([
        ap("deny", "shop", {
          action: "DENY",
          rules: [
            {
              from: [{ source: { remoteIpBlocks: ["10.0.0.0/8"], namespaces: ["evil"] } }],
              when: [{ key: "experimental.envoy.filters.x", values: ["x"] }],
            },
          ],
        }),
      ]),
    );
    expect(m.authorizationPolicies[0]?.rules).toEqual([{ from: [{ namespaces: ["evil"] }], to: [], when: [] }]);
    expect(m.diagnostics[0]?.message).toMatch(/DENY rule denies more \(fail closed\)/);
  });

  it.each([
    ["targetRefs", { targetRefs: [{ kind: "Gateway", name: "gw" }] }, /targetRef\(s\) binds the policy to a gateway or waypoint/],
    ["targetRef", { targetRef: { kind: "Gateway", name: "gw" } }, /targetRef\(s\) binds the policy to a gateway or waypoint/],
  ])("reports a %s policy as not applied", (_n, spec, why) => {
    const m = translate(objects([ap("p", "shop", spec)]));
    expect(m.authorizationPolicies).toEqual([]);
    expect(m.diagnostics).toEqual([expect.objectContaining({ severity: "warning", message: expect.stringMatching(why) })]);
  });

  const ALL: unknown = { from: [], to: [], when: [] };
  it.each([
    ["an unknown action", { action: "MAYBE" }, "DENY", [ALL], ["spec.action: 'MAYBE' is not ALLOW, DENY, AUDIT or CUSTOM"]],
    [
      "a bad CIDR in an ALLOW",
      { rules: [{ from: [{ source: { ipBlocks: ["10.0.0.0/40"] } }] }] },
      "ALLOW",
      [],
      ["spec.rules[0].from[0].source.ipBlocks[0]: '10.0.0.0/40' is not an IP address or CIDR"],
    ],
    [
      "a bad port in a DENY",
      { action: "DENY", rules: [{ to: [{ operation: { ports: ["http"] } }] }] },
      "DENY",
      [ALL],
      ["spec.rules[0].to[0].operation.ports[0]: 'http' is not a port number"],
    ],
    [
      "an unknown condition key",
      { rules: [{ when: [{ key: "source.color", values: ["red"] }] }] },
      "ALLOW",
      [],
      ["spec.rules[0].when[0].key: 'source.color' is not a condition key Istio defines"],
    ],
    ["rules that are not a list", { rules: "all" }, "ALLOW", [], ['spec.rules: expected a list, got string "all"']],
    [
      "a provider without CUSTOM",
      { action: "DENY", provider: { name: "x" } },
      "DENY",
      [ALL],
      ["spec.provider: is only valid with action CUSTOM"],
    ],
  ])("keeps a policy with %s in force in its fail-closed form, and the rest still flows", (_n, spec, action, rules, errors) => {
    const m = translate(objects([ap("bad", "shop", spec), ap("good", "shop", { action: "DENY", rules: [{}] })]));
    expect(m.authorizationPolicies.map((p) => p.name)).toEqual(["bad", "good"]);
    expect(m.authorizationPolicies[0]).toMatchObject({ action, rules, errors });
    expect(m.diagnostics.map((d) => d.severity)).toEqual(errors.map(() => "error"));
    expect(m.diagnostics.map((d) => d.message.split("; ")[0])).toEqual(errors.map((e) => `invalid: ${e}`));
    expect(m.diagnostics[0]?.ref).toMatchObject({ kind: "AuthorizationPolicy", namespace: "shop", name: "bad" });
  });

  it("reports every unknown field with a hint, and a misspelt action denies the whole scope", () => {
    const m = translate(objects([ap("typo", "shop", { acton: "DENY", rules: [{ form: [] }] })]));
    expect(m.authorizationPolicies[0]).toMatchObject({ action: "DENY", rules: [ALL] });
    expect(m.authorizationPolicies[0]?.errors?.sort()).toEqual([
      "spec.acton: unknown field (did you mean action?)",
      "spec.rules[0].form: unknown field (did you mean from?)",
    ]);
  });

  it("tells Istio users that istio-system is not the root namespace unless configured", () => {
    const p = ap("mesh", "istio-system", { action: "DENY", rules: [{}] });
    expect(translate(objects([p])).diagnostics[0]?.message).toMatch(/run the controller with --root-namespace istio-system/);
    const m = translate(objects([p]), { trustDomain: "cluster.local", rootNamespace: "istio-system", clusterDomain: "cluster.local" });
    expect(m.diagnostics).toEqual([]);
    expect(m.authorizationPolicies[0]?.scope).toEqual({ kind: "mesh" });
  });
});

describe("translate: PeerAuthentication", () => {
  it.each([
    [{ mtls: { mode: "STRICT" } }, "STRICT"],
    [{ mtls: { mode: "permissive" } }, "PERMISSIVE"],
    [{ mtls: {} }, "UNSET"],
    [{}, "UNSET"],
    [{ mtls: { mode: "DISABLE" } }, "DISABLE"],
  ])("mode of %j is %s", (spec, mode) => {
    expect(translate(objects([pa("p", "shop", spec)])).peerAuthentications[0]?.mode).toBe(mode);
  });

  it("translates port-level modes for a workload policy", () => {
    const m = translate(
      objects([
        pa("p", "shop", {
          selector: { matchLabels: { app: "db" } },
          mtls: { mode: "STRICT" },
          portLevelMtls: { "8080": { mode: "PERMISSIVE" } },
        }),
      ]),
    );
    expect(m.peerAuthentications[0]).toEqual({
      key: "shop/p",
      name: "p",
      namespace: "shop",
      scope: { kind: "workload", selector: { app: "db" } },
      mode: "STRICT",
      portLevelMtls: { "8080": "PERMISSIVE" },
    });
  });

  it.each([
    ["an unknown mode", { mtls: { mode: "OPTIONAL" } }, ["spec.mtls.mode: 'OPTIONAL' is not one of STRICT, PERMISSIVE, DISABLE, UNSET"]],
    [
      "a mode with a trailing space",
      { mtls: { mode: "PERMISSIVE " } },
      ["spec.mtls.mode: 'PERMISSIVE ' is not one of STRICT, PERMISSIVE, DISABLE, UNSET"],
    ],
    [
      "port-level settings without a selector",
      { mtls: { mode: "DISABLE" }, portLevelMtls: { "80": { mode: "DISABLE" } } },
      ["spec.portLevelMtls: needs spec.selector (port-level settings apply to selected workloads only)"],
    ],
    [
      "a port that is not a number and a misspelt key",
      { selector: { matchLabels: { a: "b" } }, mtls: { mdoe: "DISABLE" }, portLevelMtls: { http: { mode: "DISABLE" } } },
      ["spec.mtls.mdoe: unknown field (did you mean mode?)", "spec.portLevelMtls.http: 'http' is not a port number"],
    ],
  ])("resolves a policy with %s to STRICT and reports every problem", (_n, spec, errors) => {
    const m = translate(objects([pa("bad", "shop", spec)]));
    expect(m.peerAuthentications[0]).toMatchObject({ mode: "STRICT", portLevelMtls: {} });
    expect(m.peerAuthentications[0]?.errors?.sort()).toEqual([...errors].sort());
    expect(m.diagnostics.map((d) => d.severity)).toEqual(errors.map(() => "error"));
  });

  it("ignores a root-namespace PeerAuthentication with a selector, as Istio does, and says so", () => {
    const m = translate(
      objects([
        pa("mesh", "weft-system", { mtls: { mode: "STRICT" } }),
        pa("gw", "weft-system", { selector: { matchLabels: { app: "gw" } }, mtls: { mode: "DISABLE" } }),
      ]),
    );
    expect(m.peerAuthentications.map((p) => [p.name, p.scope, p.mode])).toEqual([["mesh", { kind: "mesh" }, "STRICT"]]);
    expect(msgs(m.diagnostics)).toEqual([
      "warning: spec.selector: a PeerAuthentication with a selector in the root namespace (weft-system) is ignored, as Istio ignores it: set mesh-wide mTLS without a selector, and a workload's own in the workload's namespace",
    ]);
  });

  it("keys port-level modes by port number (080 is port 80)", () => {
    const m = translate(
      objects([pa("p", "shop", { selector: { matchLabels: { app: "db" } }, portLevelMtls: { "080": { mode: "STRICT" } } })]),
    );
    expect(m.peerAuthentications[0]?.portLevelMtls).toEqual({ "80": "STRICT" });
  });
});
