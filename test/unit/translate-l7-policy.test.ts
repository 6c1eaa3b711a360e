/** Translation of the destination's L7 policy kinds: RequestAuthentication, RateLimitPolicy, dry-run and requestPrincipals. */
import { describe, expect, it } from "vitest";
import { translate } from "../../controller/translate/index.js";
import type { Diagnostic } from "../../controller/translate/types.js";
import { custom, objects } from "../helpers/control-objects.js";

const msgs = (d: Diagnostic[]) => d.map((x) => `${x.severity}: ${x.message}`);
const JWKS = JSON.stringify({ keys: [{ kty: "oct", k: "AAAA" }] });

describe("translate: RequestAuthentication", () => {
  it("translates every jwtRule field", () => {
    const m = translate(
      objects([
        custom("security.istio.io/v1", "RequestAuthentication", "jwt", "shop", {
          selector: { matchLabels: { app: "web" } },
          jwtRules: [
            {
              issuer: "https://issuer.test",
              audiences: ["web"],
              jwks: JWKS,
              fromHeaders: [{ name: "x-jwt", prefix: "Bearer " }],
              fromParams: ["token"],
              forwardOriginalToken: true,
              outputPayloadToHeader: "x-payload",
            },
            { issuer: "https://other.test", jwksUri: "http://keys.auth.svc.cluster.local:8080/jwks.json" },
          ],
        }),
      ]),
    );
    expect(m.diagnostics).toEqual([]);
    expect(m.requestAuthentications?.[0]).toMatchObject({
      key: "shop/jwt",
      scope: { kind: "workload", selector: { app: "web" } },
      jwtRules: [
        {
          issuer: "https://issuer.test",
          audiences: ["web"],
          jwks: JWKS,
          fromHeaders: [{ name: "x-jwt", prefix: "Bearer " }],
          fromParams: ["token"],
          forwardOriginalToken: true,
          outputPayloadToHeader: "x-payload",
        },
        { issuer: "https://other.test", jwksUri: "http://keys.auth.svc.cluster.local:8080/jwks.json" },
      ],
    });
  });

  it.each([
    [
      "a jwksUri outside the cluster",
      { issuer: "i", jwksUri: "https://example.com/jwks" },
      /jwtRules\[0\]\.jwksUri: 'example\.com' is not a service of this cluster/,
    ],
    ["no keys at all", { issuer: "i" }, /jwtRules\[0\]: needs jwks or jwksUri/],
    ["jwks that is not a JWKS", { issuer: "i", jwks: "{}" }, /jwtRules\[0\]\.jwks: not a JWKS document/],
    ["a typo", { issuer: "i", jwks: JWKS, audience: ["x"] }, /jwtRules\[0\]\.audience: unknown field/],
  ])("drops a rule with %s and says where", (_n, rule, why) => {
    const m = translate(objects([custom("security.istio.io/v1", "RequestAuthentication", "jwt", "shop", { jwtRules: [rule] })]));
    expect(m.requestAuthentications?.[0]?.jwtRules).toEqual([]);
    expect(msgs(m.diagnostics).join("\n")).toMatch(why);
  });
});

describe("translate: RateLimitPolicy (weft.dev/v1alpha1)", () => {
  it("translates total, perClient and overrides", () => {
    const m = translate(
      objects([
        custom("weft.dev/v1alpha1", "RateLimitPolicy", "rl", "shop", {
          selector: { matchLabels: { app: "web" } },
          total: { requestsPerSecond: 10, burst: 20 },
          perClient: { requestsPerSecond: 2 },
          overrides: [{ clients: ["spiffe://cluster.local/ns/shop/sa/vip"], limit: { requestsPerSecond: 50, burst: 50 } }],
        }),
      ]),
    );
    expect(m.diagnostics).toEqual([]);
    expect(m.rateLimitPolicies?.[0]).toEqual({
      key: "shop/rl",
      name: "rl",
      namespace: "shop",
      scope: { kind: "workload", selector: { app: "web" } },
      total: { requestsPerSecond: 10, burst: 20 },
      perClient: { requestsPerSecond: 2, burst: 2 },
      overrides: [{ clients: ["cluster.local/ns/shop/sa/vip"], limit: { requestsPerSecond: 50, burst: 50 } }],
    });
  });

  it("reports a bad limit with its path and keeps the others", () => {
    const m = translate(
      objects([
        custom("weft.dev/v1alpha1", "RateLimitPolicy", "rl", "shop", {
          total: { requestsPerSecond: -1 },
          perClient: { requestsPerSecond: 5 },
        }),
      ]),
    );
    expect(m.rateLimitPolicies?.[0]?.total).toBeUndefined();
    expect(m.rateLimitPolicies?.[0]?.perClient).toEqual({ requestsPerSecond: 5, burst: 5 });
    expect(msgs(m.diagnostics).join("\n")).toMatch(/spec\.total\.requestsPerSecond/);
  });
});

describe("translate: AuthorizationPolicy L7 additions", () => {
  it("reads the dry-run annotation, requestPrincipals and request.auth conditions", () => {
    const obj = custom("security.istio.io/v1", "AuthorizationPolicy", "p", "shop", {
      rules: [
        { from: [{ source: { requestPrincipals: ["https://i/*"] } }], when: [{ key: "request.auth.claims[groups]", values: ["dev"] }] },
      ],
    });
    obj.metadata.annotations = { "istio.io/dry-run": "true" };
    const m = translate(objects([obj]));
    expect(m.diagnostics).toEqual([]);
    expect(m.authorizationPolicies[0]).toMatchObject({
      dryRun: true,
      rules: [{ from: [{ requestPrincipals: ["https://i/*"] }], when: [{ key: "request.auth.claims[groups]", values: ["dev"] }] }],
    });
  });

  it("enforces a policy whose dry-run annotation cannot be read, and says so", () => {
    const obj = custom("security.istio.io/v1", "AuthorizationPolicy", "p", "shop", { action: "DENY", rules: [{}] });
    obj.metadata.annotations = { "istio.io/dry-run": "yes" };
    const m = translate(objects([obj]));
    expect(m.authorizationPolicies[0]?.dryRun).toBeUndefined();
    expect(msgs(m.diagnostics).join("\n")).toMatch(/istio\.io\/dry-run: 'yes' is not "true" or "false"; the policy is enforced/);
  });
});
