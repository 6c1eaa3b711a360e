/**
 * Invalid routing objects (issue 11 item 6) are refused whole with a reason naming the field,
 * the rest of the mesh keeps working, and agents can list the refusals (`weft policies`).
 */
import { describe, expect, it } from "vitest";
import { policyRows } from "../../agent/cli/inventory.js";
import type { KubeObject } from "../../controller/api/kube-types.js";
import { translate } from "../../controller/translate/index.js";
import { checkRegex } from "../../controller/translate/virtual-service.js";
import { custom, namespace, node, objects, pod, service } from "../helpers/control-objects.js";
import { snapshot } from "../helpers/mesh-fixture.js";

const web = pod({ name: "web", ns: "shop", node: "n1", ip: "10.244.1.2" });
const base: KubeObject[] = [
  namespace("shop"),
  node("n1", "10.250.0.11"),
  web,
  ...service("web", "shop", "10.96.0.10", [{ name: "http", port: 80, targetPort: 8080 }], [web]),
];
const vs = (name: string, spec: unknown) => custom("networking.istio.io/v1", "VirtualService", name, "shop", spec);
const dr = (name: string, spec: unknown) => custom("networking.istio.io/v1", "DestinationRule", name, "shop", spec);
const hr = (name: string, spec: unknown) => custom("gateway.networking.k8s.io/v1", "HTTPRoute", name, "shop", spec);
const subsets = dr("web", {
  host: "web",
  subsets: [
    { name: "v1", labels: { v: "1" } },
    { name: "v2", labels: { v: "2" } },
  ],
});
const good = vs("good", { hosts: ["web"], http: [{ route: [{ destination: { host: "web", subset: "v1" } }] }] });
const uriRegex = (regex: string) =>
  vs("bad", { hosts: ["web"], http: [{ match: [{ uri: { regex } }], route: [{ destination: { host: "web" } }] }] });

describe("routing objects that are refused", () => {
  it.each<[string, KubeObject, RegExp]>([
    ["a regex JavaScript cannot compile", uriRegex("a[b"), /spec\.http\[0\]\.match\[0\]\.uri\.regex: regex 'a\[b' does not compile/],
    ["a lookbehind", uriRegex("(?<=/api)/v1"), /uri\.regex: regex '\(\?<=\/api\)\/v1' uses lookbehind .* RE2/],
    ["a negative lookahead", uriRegex("/(?!admin).*"), /uses lookahead/],
    ["a backreference", uriRegex("/(a+)/\\1"), /uses backreference \\1/],
    ["a named backreference", uriRegex("/(?<x>a)\\k<x>"), /named backreference/],
    [
      "an unknown subset",
      vs("bad", { hosts: ["web"], http: [{ route: [{ destination: { host: "web", subset: "v3" } }] }] }),
      /spec\.http\[0\]\.route\[0\]\.destination\.subset: subset 'v3' of host web\.shop\.svc\.cluster\.local is unknown: the DestinationRules for that host do not define it/,
    ],
    [
      "weights that do not add up to 100",
      vs("bad", {
        hosts: ["web"],
        http: [
          {
            route: [
              { destination: { host: "web", subset: "v1" }, weight: 50 },
              { destination: { host: "web", subset: "v2" }, weight: 40 },
            ],
          },
        ],
      }),
      /spec\.http\[0\]\.route: weights of the 2 destinations add up to 90, not 100/,
    ],
    [
      "a destination without host",
      vs("bad", { hosts: ["web"], http: [{ route: [{ destination: { subset: "v1" } }] }] }),
      /destination\.host: is required/,
    ],
    ["no hosts", vs("bad", { http: [{ route: [{ destination: { host: "web" } }] }] }), /spec\.hosts: needs at least one host/],
    ["a DestinationRule without host", dr("bad", { subsets: [{ name: "v9" }] }), /spec\.host: is required/],
    [
      "an HTTPRoute with a lookbehind",
      hr("bad", {
        parentRefs: [{ group: "", kind: "Service", name: "web", port: 80 }],
        rules: [{ matches: [{ path: { type: "RegularExpression", value: "(?<!x)/y" } }], backendRefs: [{ name: "web", port: 80 }] }],
      }),
      /RE2/,
    ],
  ])("refuses %s, names the field, keeps the rest, and lists the refusal", (_n, bad, message) => {
    const m = translate(objects([...base, subsets, good, bad]));
    expect(m.routes.map((r) => r.name)).toEqual(["good"]);
    expect(m.destinationPolicies.map((d) => d.name)).toEqual(["web"]);
    const errors = m.diagnostics.filter((d) => d.severity === "error");
    expect(errors.map((d) => d.ref.name)).toEqual(errors.map(() => "bad"));
    expect(errors.map((d) => d.message).join("\n")).toMatch(message);
    expect(m.meshConfig.refused).toEqual([{ kind: bad.kind, namespace: "shop", name: "bad", errors: [expect.stringMatching(message)] }]);
    const rows = policyRows({ ...snapshot("n1", [], [], []), refused: m.meshConfig.refused ?? [] });
    expect(rows).toEqual([
      expect.objectContaining({ kind: bad.kind, name: "bad", detail: expect.stringMatching(/^REFUSED \(not applied\): /) }),
    ]);
  });

  it("accepts what RE2 accepts: groups, classes with escapes, named groups, alternation", () => {
    for (const r of ["/api/(?:v1|v2)/.*", "[\\1(?=]x", "(?<ver>v[0-9]+)", "a{2,3}|b+?"]) expect(() => checkRegex(r, "p")).not.toThrow();
  });

  it("a subset becomes valid when its DestinationRule appears (the VirtualService is no longer refused)", () => {
    const v3 = vs("bad", { hosts: ["web"], http: [{ route: [{ destination: { host: "web", subset: "v3" } }] }] });
    expect(translate(objects([...base, v3])).routes).toEqual([]);
    const m = translate(objects([...base, v3, dr("web", { host: "web", subsets: [{ name: "v3", labels: { v: "3" } }] })]));
    expect(m.routes.map((r) => r.name)).toEqual(["bad"]);
    expect(m.meshConfig.refused).toBeUndefined();
  });

  it("weft policies shows an invalid AuthorizationPolicy as enforced fail-closed, with its errors", () => {
    const m = translate(
      objects([
        custom("security.istio.io/v1", "AuthorizationPolicy", "typo", "shop", { rules: [{ from: [{ source: { namespace: ["a"] } }] }] }),
      ]),
    );
    const rows = policyRows({ ...snapshot("n1", [], [], m.authorizationPolicies) });
    expect(rows[0]?.detail).toBe(
      "ALLOW, 0 rules (allows nothing); INVALID, enforced fail-closed: spec.rules[0].from[0].source.namespace: unknown field (did you mean namespaces?)",
    );
  });
});
