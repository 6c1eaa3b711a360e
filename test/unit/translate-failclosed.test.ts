/**
 * Malformed security policy never widens access. Oracle: the agent's own authorizer
 * (agent/proxy/authz.ts) evaluated on sample connections against the translation of the
 * well-formed intent and against the translation of a broken variant of it; whatever the broken
 * variant allows, the intent must allow too, and the broken variant must be reported.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { authorize, type ConnectionFacts } from "../../agent/proxy/authz.js";
import type { AuthorizationPolicy, PolicyScope } from "../../controller/api/model.js";
import { translate } from "../../controller/translate/index.js";
import type { MeshModel } from "../../controller/translate/types.js";
import { custom, objects } from "../helpers/control-objects.js";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Spec = { [k: string]: Json };

const ap = (name: string, spec: unknown) => custom("security.istio.io/v1", "AuthorizationPolicy", name, "shop", spec);
const pa = (name: string, spec: unknown) => custom("security.istio.io/v1beta1", "PeerAuthentication", name, "shop", spec);

/** Destination workloads (labels) and sample connections to them. */
const DESTS: Record<string, string>[] = [{ app: "web" }, { app: "db" }];
const SAMPLES: ConnectionFacts[] = [];
for (const id of [
  undefined,
  "spiffe://cluster.local/ns/a/sa/x",
  "spiffe://cluster.local/ns/b/sa/y",
  "spiffe://cluster.local/ns/shop/sa/web",
])
  for (const sourceIp of ["10.0.0.5", "10.1.2.3", "192.168.1.1"])
    for (const destinationPort of [80, 8080, 9090])
      SAMPLES.push({ ...(id ? { sourceIdentity: id } : {}), sourceIp, destinationIp: "10.0.9.9", destinationPort });

function applies(scope: PolicyScope, labels: Record<string, string>): boolean {
  if (!scope.selector) return scope.kind !== "workload";
  return Object.entries(scope.selector).every(([k, v]) => labels[k] === v);
}

/** Every (destination, connection) pair the policies allow. */
function allowedSet(policies: readonly AuthorizationPolicy[]): Set<string> {
  const out = new Set<string>();
  for (const [d, labels] of DESTS.entries()) {
    const applying = policies.filter((p) => applies(p.scope, labels));
    for (const [i, f] of SAMPLES.entries()) if (authorize(applying, f).allowed) out.add(`${d}:${i}`);
  }
  return out;
}

const errorsOf = (m: MeshModel, name: string) => m.diagnostics.filter((d) => d.severity === "error" && d.ref.name === name);

/** Asserts: broken is reported and allows nothing the intent does not. */
function expectNoWidening(intent: Spec, broken: unknown, other?: Spec): MeshModel {
  const extra = other ? [ap("other", other)] : [];
  const good = translate(objects([ap("p", intent), ...extra]));
  expect(good.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
  const bad = translate(objects([ap("p", broken), ...extra]));
  expect(errorsOf(bad, "p").length).toBeGreaterThan(0);
  const allowedBad = allowedSet(bad.authorizationPolicies);
  const allowedGood = allowedSet(good.authorizationPolicies);
  const widened = [...allowedBad].filter((k) => !allowedGood.has(k));
  expect(widened).toEqual([]);
  return bad;
}

describe("fail-closed security translation: the malformed policies of issue 13", () => {
  const allowFromA: Spec = { selector: { matchLabels: { app: "web" } }, rules: [{ from: [{ source: { namespaces: ["a"] } }] }] };
  const denyFromB: Spec = { action: "DENY", rules: [{ from: [{ source: { namespaces: ["b"] } }] }] };
  it.each<[string, Spec, unknown, RegExp]>([
    [
      "source.namespace (typo) in an ALLOW",
      allowFromA,
      { selector: { matchLabels: { app: "web" } }, rules: [{ from: [{ source: { namespace: ["a"] } }] }] },
      /spec\.rules\[0\]\.from\[0\]\.source\.namespace: unknown field \(did you mean namespaces\?\)/,
    ],
    [
      "source.namespace (typo) in a DENY",
      denyFromB,
      { action: "DENY", rules: [{ from: [{ source: { namespace: ["b"] } }] }] },
      /source\.namespace: unknown field \(did you mean namespaces\?\)/,
    ],
    [
      "acton: DENY",
      denyFromB,
      { acton: "DENY", rules: [{ from: [{ source: { namespaces: ["b"] } }] }] },
      /spec\.acton: unknown field \(did you mean action\?\)/,
    ],
    ['action: "DENY "', denyFromB, { ...denyFromB, action: "DENY " }, /spec\.action: 'DENY ' is not ALLOW, DENY, AUDIT or CUSTOM/],
    [
      "a bad CIDR 10.0.0.0/33 in an ALLOW",
      { rules: [{ from: [{ source: { ipBlocks: ["10.0.0.0/8"] } }] }] },
      { rules: [{ from: [{ source: { ipBlocks: ["10.0.0.0/33"] } }] }] },
      /ipBlocks\[0\]: '10\.0\.0\.0\/33' is not an IP address or CIDR/,
    ],
    [
      "a bad CIDR in a DENY's notIpBlocks",
      { action: "DENY", rules: [{ from: [{ source: { notIpBlocks: ["10.0.0.0/8"] } }] }] },
      { action: "DENY", rules: [{ from: [{ source: { notIpBlocks: ["10.0.0.0/33"] } }] }] },
      /notIpBlocks\[0\]/,
    ],
    [
      "a port range string",
      { rules: [{ to: [{ operation: { ports: ["8080"] } }] }] },
      { rules: [{ to: [{ operation: { ports: ["8000-9000"] } }] }] },
      /ports\[0\]: '8000-9000' is not a port number/,
    ],
    [
      "a DENY with a port range string",
      { action: "DENY", rules: [{ to: [{ operation: { notPorts: ["8080"] } }] }] },
      { action: "DENY", rules: [{ to: [{ operation: { notPorts: ["8000-9000"] } }] }] },
      /notPorts\[0\]/,
    ],
    [
      "a wrong type (namespaces as a string)",
      allowFromA,
      { selector: { matchLabels: { app: "web" } }, rules: [{ from: [{ source: { namespaces: "a" } }] }] },
      /namespaces: expected a list of strings/,
    ],
    ["a wrong type (selector as a list)", allowFromA, { ...allowFromA, selector: ["app=web"] }, /spec\.selector: expected a mapping/],
    [
      "an empty principals list in an ALLOW",
      allowFromA,
      { selector: { matchLabels: { app: "web" } }, rules: [{ from: [{ source: { principals: [] } }] }] },
      /source\.principals: is an empty list/,
    ],
    [
      "an empty source in an ALLOW",
      allowFromA,
      { selector: { matchLabels: { app: "web" } }, rules: [{ from: [{ source: {} }] }] },
      /from\[0\]\.source: is empty/,
    ],
    [
      "an empty operation in an ALLOW",
      { rules: [{ to: [{ operation: { ports: ["8080"] } }] }] },
      { rules: [{ to: [{ operation: {} }] }] },
      /to\[0\]\.operation: is empty/,
    ],
    [
      "an empty notNamespaces list in a DENY",
      { action: "DENY", rules: [{ from: [{ source: { notNamespaces: ["a"] } }] }] },
      { action: "DENY", rules: [{ from: [{ source: { notNamespaces: [] } }] }] },
      /notNamespaces: is an empty list/,
    ],
  ])("%s: reported, and allows nothing the intent does not", (_n, intent, broken, message) => {
    for (const other of [undefined, { rules: [{}] }, { rules: [{ from: [{ source: { namespaces: ["b"] } }] }] }]) {
      const m = expectNoWidening(intent, broken, other);
      const p = m.authorizationPolicies.find((x) => x.name === "p");
      expect(p?.errors?.join("\n")).toMatch(message);
      expect(
        errorsOf(m, "p")
          .map((d) => d.message)
          .join("\n"),
      ).toMatch(message);
    }
  });

  it("reports every error of one object, not just the first", () => {
    const m = translate(
      objects([
        ap("p", {
          action: "DENY",
          rules: [
            { from: [{ source: { namespace: ["b"], ipBlocks: ["1.2.3.4/40"] } }] },
            { to: [{ operation: { ports: ["x"] } }], when: [{ key: "source.ip", values: ["300.0.0.1"] }] },
          ],
        }),
      ]),
    );
    expect(m.authorizationPolicies[0]?.errors?.sort()).toEqual(
      [
        "spec.rules[0].from[0].source.namespace: unknown field (did you mean namespaces?)",
        "spec.rules[0].from[0].source.ipBlocks[0]: '1.2.3.4/40' is not an IP address or CIDR",
        "spec.rules[1].to[0].operation.ports[0]: 'x' is not a port number",
        "spec.rules[1].when[0].values[0]: '300.0.0.1' is not an IP address or CIDR",
      ].sort(),
    );
    expect(errorsOf(m, "p")).toHaveLength(4);
  });

  it("an invalid DENY rule turns the DENY into a deny of its whole scope; valid ALLOW rules of an ALLOW stay", () => {
    const deny = translate(objects([ap("p", { action: "DENY", rules: [{ from: [{ source: { namespaces: ["b"] } }] }, { bogus: 1 }] })]));
    expect(deny.authorizationPolicies[0]?.rules).toEqual([{ from: [], to: [], when: [] }]);
    const allow = translate(objects([ap("p", { rules: [{ from: [{ source: { namespaces: ["a"] } }] }, { bogus: 1 }] })]));
    expect(allow.authorizationPolicies[0]).toMatchObject({ action: "ALLOW", rules: [{ from: [{ namespaces: ["a"] }], to: [], when: [] }] });
  });

  it("CUSTOM denies what its rules match, other requests keep their ALLOW", () => {
    const allowAll = ap("allow-all", { rules: [{}] });
    const m = translate(
      objects([allowAll, ap("p", { action: "custom", provider: { name: "ext" }, rules: [{ to: [{ operation: { ports: ["8080"] } }] }] })]),
    );
    const allowed = allowedSet(m.authorizationPolicies);
    const ports = (k: string) => SAMPLES[Number(k.split(":")[1])]?.destinationPort;
    expect(new Set([...allowed].map(ports))).toEqual(new Set([80, 9090]));
    expect(allowed.size).toBe((SAMPLES.length * DESTS.length * 2) / 3);
  });

  it("a DENY on remote.ip (unsupported) denies every connection its rule otherwise matches", () => {
    const m = translate(objects([ap("p", { action: "DENY", rules: [{ when: [{ key: "remote.ip", values: ["172.16.0.0/12"] }] }] })]));
    expect(allowedSet(m.authorizationPolicies).size).toBe(0);
  });

  it("a DENY on destination.port 080 denies port 80", () => {
    const m = translate(objects([ap("p", { action: "DENY", rules: [{ when: [{ key: "destination.port", values: ["080"] }] }] })]));
    const allowed = [...allowedSet(m.authorizationPolicies)].map((k) => SAMPLES[Number(k.split(":")[1])]?.destinationPort);
    expect(allowed.length).toBeGreaterThan(0);
    expect(allowed).not.toContain(80);
  });

  it.each([
    [{ mtls: { mode: "STRICT " } }, /'STRICT ' is not one of/],
    [{ mtls: { mode: "PERMISSIVE" }, portLevelMtls: { "8080": { mode: "DISABLE" } } }, /portLevelMtls: needs spec.selector/],
    [{ mtls: { mode: "DISABLE", extra: 1 } }, /spec\.mtls\.extra: unknown field/],
    [
      { selector: { matchLabel: { app: "web" } }, mtls: { mode: "DISABLE" } },
      /spec\.selector\.matchLabel: unknown field \(did you mean matchLabels\?\)/,
    ],
  ])("PeerAuthentication %j resolves to STRICT for its (widest) scope", (spec, message) => {
    const m = translate(objects([pa("p", spec)]));
    expect(m.peerAuthentications).toEqual([
      expect.objectContaining({
        mode: "STRICT",
        portLevelMtls: {},
        scope: { kind: "namespace" },
        errors: [expect.stringMatching(message)],
      }),
    ]);
    expect(errorsOf(m, "p")).toHaveLength(1);
  });
});

// ---- property: ≥ 1,000 generated intents, each broken in one random place ----

const cidr = fc.constantFrom("10.0.0.0/8", "10.1.0.0/16", "192.168.1.1", "0.0.0.0/0");
const port = fc.constantFrom("80", "8080", "9090");
const some = <T>(arb: fc.Arbitrary<T>) => fc.uniqueArray(arb, { minLength: 1, maxLength: 2 });
// An empty source or operation is invalid (Istio rejects it), so the intents never have one.
const nonEmpty = <T extends object>(arb: fc.Arbitrary<T>) => arb.filter((o) => Object.keys(o).length > 0);
const sourceArb = nonEmpty(
  fc.record(
    {
      namespaces: some(fc.constantFrom("a", "b", "shop", "*")),
      notNamespaces: some(fc.constantFrom("a", "b")),
      principals: some(fc.constantFrom("cluster.local/ns/a/sa/x", "spiffe://cluster.local/ns/b/sa/y", "*")),
      ipBlocks: some(cidr),
      notIpBlocks: some(cidr),
    },
    { requiredKeys: [] },
  ),
);
const operationArb = nonEmpty(fc.record({ ports: some(port), notPorts: some(port) }, { requiredKeys: [] }));
const conditionArb = fc.oneof(
  fc.record({ key: fc.constant("source.ip"), values: some(cidr) }),
  fc.record({ key: fc.constant("destination.port"), notValues: some(port) }),
  fc.record({ key: fc.constant("source.namespace"), values: some(fc.constantFrom("a", "b")) }),
);
const ruleArb = fc.record(
  {
    from: fc.array(fc.record({ source: sourceArb }), { minLength: 1, maxLength: 2 }),
    to: fc.array(fc.record({ operation: operationArb }), { minLength: 1, maxLength: 2 }),
    when: fc.array(conditionArb, { minLength: 1, maxLength: 2 }),
  },
  { requiredKeys: [] },
);
const specArb: fc.Arbitrary<Spec> = fc.record(
  {
    action: fc.constantFrom("ALLOW", "DENY"),
    selector: fc.constant({ matchLabels: { app: "web" } }),
    rules: fc.array(ruleArb, { maxLength: 3 }),
  },
  { requiredKeys: ["rules"] },
) as fc.Arbitrary<Spec>;

/** Every mapping in the spec (outside label maps) with its keys: where a mutation can go. */
function mappings(v: Json, out: { [k: string]: Json }[] = []): { [k: string]: Json }[] {
  if (Array.isArray(v)) for (const x of v) mappings(x, out);
  else if (v !== null && typeof v === "object") {
    out.push(v);
    for (const [k, x] of Object.entries(v)) if (k !== "matchLabels") mappings(x, out);
  }
  return out;
}

type Mutation = "rename" | "wrongType" | "unknownKey" | "badValue" | "actionSpace";

/** Breaks the spec in one place (a clone); the choice comes from fast-check. */
function mutate(spec: Spec, kind: Mutation, pick: number): Spec {
  const s = structuredClone(spec) as Spec;
  const maps = mappings(s);
  const m = maps[pick % maps.length] as { [k: string]: Json };
  const keys = Object.keys(m);
  const key = keys.length ? (keys[pick % keys.length] as string) : undefined;
  if (kind === "actionSpace") {
    s.action = `${(s.action as string | undefined) ?? "ALLOW"} `;
  } else if (kind === "unknownKey" || key === undefined) {
    m.bogusField = ["x"];
  } else if (kind === "rename") {
    const v = m[key] as Json;
    delete m[key];
    m[key.length > 3 ? key.slice(0, -1) : `${key}x`] = v;
  } else if (kind === "wrongType") {
    const v = m[key];
    m[key] = Array.isArray(v) ? "oops" : typeof v === "object" && v !== null ? ["oops"] : { oops: 1 };
  } else {
    // A bad element in a list of CIDRs or ports when the mapping has one; else an unknown key.
    const list = ["ipBlocks", "notIpBlocks", "ports", "notPorts", "values", "notValues"].find((k) => Array.isArray(m[k]));
    if (list) (m[list] as Json[])[0] = m.key === "source.namespace" ? { bad: 1 } : pick % 2 ? "10.0.0.0/33" : "8000-9000";
    else m.bogusField = 1;
  }
  return s;
}

describe("fail-closed security translation: property", () => {
  it("no broken variant of a well-formed policy widens access, and every one is reported", () => {
    fc.assert(
      fc.property(
        specArb,
        fc.constantFrom<Mutation>("rename", "wrongType", "unknownKey", "badValue", "actionSpace"),
        fc.nat(),
        fc.option(specArb, { nil: undefined }),
        (intent, kind, pick, other) => {
          expectNoWidening(intent, mutate(intent, kind, pick), other);
        },
      ),
      { numRuns: 1200 },
    );
  });
});
