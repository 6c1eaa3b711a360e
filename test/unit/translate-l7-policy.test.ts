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

  it("translates fromCookies and outputClaimToHeaders, header names in lower case", () => {
    const m = translate(
      objects([
        custom("security.istio.io/v1", "RequestAuthentication", "jwt", "shop", {
          jwtRules: [
            {
              issuer: "https://issuer.test",
              jwks: JWKS,
              fromCookies: ["session", "__Host-jwt"],
              outputClaimToHeaders: [
                { header: "X-Jwt-Claim-Sub", claim: "sub" },
                { header: "x-jwt-claim-group", claim: "realm.group" },
              ],
            },
          ],
        }),
      ]),
    );
    expect(m.diagnostics).toEqual([]);
    expect(m.requestAuthentications?.[0]?.jwtRules).toEqual([
      {
        issuer: "https://issuer.test",
        jwks: JWKS,
        fromCookies: ["session", "__Host-jwt"],
        outputClaimToHeaders: [
          { header: "x-jwt-claim-sub", claim: "sub" },
          { header: "x-jwt-claim-group", claim: "realm.group" },
        ],
      },
    ]);
  });

  it.each([
    ["a cookie name that is no token", { fromCookies: ["a b"] }, /jwtRules\[0\]\.fromCookies\[0\]: 'a b' is not a cookie name/],
    ["fromCookies that is not a list", { fromCookies: "session" }, /jwtRules\[0\]\.fromCookies: expected a list of strings/],
    [
      "a claim header that is no header name",
      { outputClaimToHeaders: [{ header: "x-claim:sub", claim: "sub" }] },
      /outputClaimToHeaders\[0\]\.header: 'x-claim:sub' is not a header name/,
    ],
    [
      "a claim header the proxy owns",
      { outputClaimToHeaders: [{ header: "Content-Length", claim: "sub" }] },
      /outputClaimToHeaders\[0\]\.header: 'Content-Length' is a header the proxy owns/,
    ],
    [
      "one header for two claims",
      {
        outputClaimToHeaders: [
          { header: "x-sub", claim: "sub" },
          { header: "X-Sub", claim: "name" },
        ],
      },
      /outputClaimToHeaders\[1\]\.header: 'X-Sub' is named by more than one entry/,
    ],
    ["a claim header with no claim", { outputClaimToHeaders: [{ header: "x-sub" }] }, /outputClaimToHeaders\[0\]\.claim: is required/],
    [
      "a claim header entry with a typo",
      { outputClaimToHeaders: [{ header: "x-sub", claim: "sub", claims: "x" }] },
      /outputClaimToHeaders\[0\]\.claims: unknown field/,
    ],
  ])("makes a rule with %s unusable, naming the field", (_n, extra, why) => {
    const m = translate(
      objects([
        custom("security.istio.io/v1", "RequestAuthentication", "jwt", "shop", {
          jwtRules: [{ issuer: "https://issuer.test", jwks: JWKS, ...extra }],
        }),
      ]),
    );
    const rules = m.requestAuthentications?.[0]?.jwtRules ?? [];
    expect(rules).toHaveLength(1);
    expect(rules[0]).toMatchObject({ issuer: "https://issuer.test", unusable: expect.stringMatching(why) });
    expect(rules[0]).not.toHaveProperty("jwks");
    expect(msgs(m.diagnostics).join("\n")).toMatch(why);
  });

  it("keeps an unusable rule's readable cookies and claim headers, so their tokens still fail and forged headers are still dropped", () => {
    const m = translate(
      objects([
        custom("security.istio.io/v1", "RequestAuthentication", "jwt", "shop", {
          jwtRules: [
            {
              issuer: "https://accounts.google.com",
              jwksUri: "https://www.googleapis.com/oauth2/v3/certs",
              fromCookies: ["session", "bad name", 5],
              outputClaimToHeaders: [
                { header: "X-Jwt-Claim-Sub", claim: "sub" },
                { header: "x-jwt-claim-role" },
                { header: "content-length", claim: "sub" },
                { header: "x y", claim: "sub" },
                "garbage",
              ],
            },
            { issuer: "https://only-cookies.test", jwksUri: "https://example.com/jwks", fromCookies: ["jwt"] },
          ],
        }),
      ]),
    );
    expect(m.requestAuthentications?.[0]?.jwtRules).toEqual([
      {
        issuer: "https://accounts.google.com",
        // An unreadable cookie name adds the default locations, as an unreadable header does.
        fromHeaders: [{ name: "Authorization", prefix: "Bearer " }],
        fromParams: ["access_token"],
        fromCookies: ["session"],
        outputClaimToHeaders: [
          { header: "x-jwt-claim-sub", claim: "sub" },
          { header: "x-jwt-claim-role", claim: "" },
        ],
        unusable: expect.stringMatching(/jwtRules\[0\]\.jwksUri/),
      },
      // Only cookies given: the defaults stay replaced, as for a usable rule.
      { issuer: "https://only-cookies.test", fromCookies: ["jwt"], unusable: expect.stringMatching(/jwtRules\[1\]\.jwksUri/) },
    ]);
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
  ])("keeps a rule with %s as an unusable marker without keys, and says where", (_n, rule, why) => {
    const m = translate(objects([custom("security.istio.io/v1", "RequestAuthentication", "jwt", "shop", { jwtRules: [rule] })]));
    const rules = m.requestAuthentications?.[0]?.jwtRules ?? [];
    expect(rules).toHaveLength(1);
    expect(rules[0]).toMatchObject({ issuer: "i", unusable: expect.stringMatching(why) });
    expect(rules[0]?.unusable).toMatch(/^RequestAuthentication shop\/jwt: /);
    expect(rules[0]).not.toHaveProperty("jwks");
    expect(rules[0]).not.toHaveProperty("jwksUri");
    expect(msgs(m.diagnostics).join("\n")).toMatch(why);
  });

  it("keeps a rule whose jwksUri is outside the cluster as a marker, so its workloads still verify tokens", () => {
    const m = translate(
      objects([
        custom("security.istio.io/v1", "RequestAuthentication", "google", "shop", {
          jwtRules: [
            {
              issuer: "https://accounts.google.com",
              jwksUri: "https://www.googleapis.com/oauth2/v3/certs",
              fromHeaders: [{ name: "x-goog-jwt", prefix: "Bearer " }, { name: "x-raw", prefix: 7 }, { prefix: "Token " }],
              outputPayloadToHeader: "x-jwt-payload",
            },
          ],
        }),
      ]),
    );
    expect(m.requestAuthentications?.[0]?.jwtRules).toEqual([
      {
        issuer: "https://accounts.google.com",
        // An unreadable prefix reads the whole header; a header with no name adds the default locations.
        fromHeaders: [
          { name: "x-goog-jwt", prefix: "Bearer " },
          { name: "x-raw", prefix: "" },
          { name: "Authorization", prefix: "Bearer " },
        ],
        fromParams: ["access_token"],
        outputPayloadToHeader: "x-jwt-payload",
        unusable: expect.stringMatching(/spec\.jwtRules\[0\]\.jwksUri: 'www\.googleapis\.com' is not a service of this cluster/),
      },
    ]);
  });

  it("keeps a marker of unknown issuer for a rule with no readable issuer, or jwtRules that are not a list", () => {
    const translated = (spec: Record<string, unknown>) =>
      translate(objects([custom("security.istio.io/v1", "RequestAuthentication", "jwt", "shop", spec)])).requestAuthentications?.[0]
        ?.jwtRules;
    expect(translated({ jwtRules: [{ issuer: 5, jwks: JWKS }, "garbage"] })).toEqual([
      { issuer: "", unusable: expect.stringMatching(/jwtRules\[0\]\.issuer/) },
      { issuer: "", unusable: expect.stringMatching(/jwtRules\[1\]: expected a mapping/) },
    ]);
    expect(translated({ jwtRules: { issuer: "i" } })).toEqual([
      { issuer: "", unusable: expect.stringMatching(/spec\.jwtRules: expected a list/) },
    ]);
  });

  it("applies a root-namespace policy with a selector to matching workloads of every namespace", () => {
    const m = translate(
      objects([
        custom("security.istio.io/v1", "RequestAuthentication", "jwt", "weft-system", {
          selector: { matchLabels: { app: "web" } },
          jwtRules: [{ issuer: "https://issuer.test", jwks: JWKS }],
        }),
      ]),
    );
    expect(m.requestAuthentications?.[0]?.scope).toEqual({ kind: "mesh", selector: { app: "web" } });
  });

  it("treats an empty targetRefs as absent, as Istio does", () => {
    const m = translate(
      objects([
        custom("security.istio.io/v1", "RequestAuthentication", "jwt", "shop", {
          targetRefs: [],
          jwtRules: [{ issuer: "https://issuer.test", jwks: JWKS }],
        }),
      ]),
    );
    expect(m.diagnostics).toEqual([]);
    expect(m.requestAuthentications?.[0]).toMatchObject({ key: "shop/jwt", jwtRules: [{ issuer: "https://issuer.test" }] });
    const bound = translate(
      objects([custom("security.istio.io/v1", "RequestAuthentication", "jwt", "shop", { targetRefs: [{ kind: "Gateway", name: "gw" }] })]),
    );
    expect(bound.requestAuthentications ?? []).toEqual([]);
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
