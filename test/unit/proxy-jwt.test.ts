import { Readable } from "node:stream";
import { exportJWK, generateKeyPair, type JSONWebKeySet, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import type { ProxyContext } from "../../agent/proxy/context.js";
import { checkInbound } from "../../agent/proxy/inbound-policy.js";
import type { Downstream } from "../../agent/proxy/l7/downstream.js";
import { InboundHttp, type InboundHttpScope } from "../../agent/proxy/l7/inbound-http.js";
import { authenticate, JwksCache } from "../../agent/proxy/l7/jwt.js";
import { MeshView } from "../../agent/state/view.js";
import type { JwtRule, RequestAuthentication, Workload } from "../../controller/api/model.js";
import { decodeResource, encodeResource } from "../../controller/api/resources.js";
import { translate } from "../../controller/translate/index.js";
import { custom, objects } from "../helpers/control-objects.js";
import { service, snapshot, workload } from "../helpers/mesh-fixture.js";

const ISS = "https://issuer.weft.test";
let jwks: JSONWebKeySet;
let sign: (claims: Record<string, unknown>, opts?: { iss?: string; aud?: string; exp?: number }) => Promise<string>;
let otherKeyToken: string;

beforeAll(async () => {
  const { publicKey, privateKey } = await generateKeyPair("RS256");
  const other = await generateKeyPair("RS256");
  jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256" }] };
  sign = (claims, o = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .setIssuer(o.iss ?? ISS)
      .setSubject("alice")
      .setAudience(o.aud ?? "bookinfo")
      .setIssuedAt()
      .setExpirationTime(o.exp ?? Math.floor(Date.now() / 1000) + 600)
      .sign(privateKey);
  otherKeyToken = await new SignJWT({})
    .setProtectedHeader({ alg: "RS256", kid: "k1" })
    .setIssuer(ISS)
    .setSubject("eve")
    .sign(other.privateKey);
});

function rule(extra: Partial<JwtRule> = {}): JwtRule {
  return { issuer: ISS, audiences: ["bookinfo"], jwks: JSON.stringify(jwks), ...extra };
}

const noFetch = new JwksCache(async () => {
  throw new Error("no fetch in this test");
});

describe("RequestAuthentication (JWT) at the destination", () => {
  it("a request without a token is unauthenticated, not refused", async () => {
    expect(await authenticate([rule()], { other: "x" }, "/", noFetch.keys)).toEqual({ kind: "none", headers: { other: "x" } });
  });

  it("a valid bearer token yields the principal, audiences and claims, and is removed by default", async () => {
    const t = await sign({ groups: ["dev"] });
    const r = await authenticate([rule()], { authorization: `Bearer ${t}`, other: "x" }, "/", noFetch.keys);
    expect(r.kind).toBe("valid");
    if (r.kind !== "valid") return;
    expect([r.auth.issuer, r.auth.subject]).toEqual([ISS, "alice"]);
    expect(r.auth.audiences).toEqual(["bookinfo"]);
    expect(r.auth.claims.groups).toEqual(["dev"]);
    expect(r.headers).toEqual({ other: "x" });
  });

  it.each<[string, () => Promise<Record<string, string>>, RegExp]>([
    ["expired", async () => ({ authorization: `Bearer ${await sign({}, { exp: Math.floor(Date.now() / 1000) - 60 })}` }), /exp/],
    ["wrong issuer", async () => ({ authorization: `Bearer ${await sign({}, { iss: "https://evil.test" })}` }), /issuer .* not configured/],
    ["wrong audience", async () => ({ authorization: `Bearer ${await sign({}, { aud: "other" })}` }), /aud/],
    ["bad signature", async () => ({ authorization: `Bearer ${otherKeyToken}` }), /signature/],
    ["not a JWT", async () => ({ authorization: "Bearer abc" }), /Header\.Payload\.Signature/],
  ])("refuses a token that is %s", async (_name, headers, why) => {
    const r = await authenticate([rule()], await headers(), "/", noFetch.keys);
    expect(r.kind).toBe("invalid");
    if (r.kind === "invalid") expect(r.reason).toMatch(why);
  });

  it("reads fromHeaders with a prefix and fromParams, and only those when they are given", async () => {
    const t = await sign({});
    const r = rule({ fromHeaders: [{ name: "x-jwt", prefix: "Token " }], fromParams: ["tok"] });
    expect((await authenticate([r], { "x-jwt": `Token ${t}` }, "/", noFetch.keys)).kind).toBe("valid");
    expect((await authenticate([r], {}, `/p?tok=${t}`, noFetch.keys)).kind).toBe("valid");
    // The default Authorization header is not read when locations are configured.
    expect((await authenticate([r], { authorization: `Bearer ${t}` }, "/", noFetch.keys)).kind).toBe("none");
  });

  it("keeps the token with forwardOriginalToken and writes the payload to outputPayloadToHeader", async () => {
    const t = await sign({ role: "admin" });
    const r = await authenticate(
      [rule({ forwardOriginalToken: true, outputPayloadToHeader: "x-jwt-payload" })],
      { authorization: `Bearer ${t}` },
      "/",
      noFetch.keys,
    );
    expect(r.kind).toBe("valid");
    if (r.kind !== "valid") return;
    expect(r.headers.authorization).toBe(`Bearer ${t}`);
    const payload = JSON.parse(Buffer.from(String(r.headers["x-jwt-payload"]), "base64url").toString("utf8"));
    expect(payload).toMatchObject({ role: "admin", iss: ISS, sub: "alice" });
  });

  it("drops a payload header the client wrote itself, with no token, with a token of another rule, and under the verified one", async () => {
    const forged = Buffer.from(JSON.stringify({ iss: ISS, sub: "admin", role: "admin" })).toString("base64url");
    const rules = [
      rule({ outputPayloadToHeader: "X-Jwt-Payload" }),
      rule({ issuer: "https://other.test", outputPayloadToHeader: "x-other-payload" }),
    ];
    const none = await authenticate(rules, { "x-jwt-payload": forged, "x-other-payload": forged, other: "x" }, "/", noFetch.keys);
    expect(none).toEqual({ kind: "none", headers: { other: "x" } });
    const t = await sign({ role: "dev" });
    const valid = await authenticate(
      rules,
      { authorization: `Bearer ${t}`, "x-jwt-payload": forged, "x-other-payload": forged },
      "/",
      noFetch.keys,
    );
    expect(valid.kind).toBe("valid");
    if (valid.kind !== "valid") return;
    expect(valid.headers["x-other-payload"]).toBeUndefined();
    const payload = JSON.parse(Buffer.from(String(valid.headers["x-jwt-payload"]), "base64url").toString("utf8"));
    expect(payload).toMatchObject({ sub: "alice", role: "dev" });
    // Headers no rule names pass untouched.
    const untouched = { "x-jwt-payload": forged };
    expect(await authenticate([rule()], untouched, "/", noFetch.keys)).toEqual({ kind: "none", headers: untouched });
  });

  it("fetches jwksUri keys once, caches them, and refuses tokens while no keys could be fetched", async () => {
    let calls = 0;
    let fail = true;
    const cache = new JwksCache(async () => {
      calls++;
      if (fail) throw new Error("connection refused");
      return jwks;
    });
    const r = rule({ jwks: undefined, jwksUri: "http://keys.auth.svc.cluster.local/jwks.json" });
    delete r.jwks;
    const h = { authorization: `Bearer ${await sign({})}` };
    const refused = await authenticate([r], h, "/", cache.keys);
    expect(refused.kind).toBe("invalid");
    if (refused.kind === "invalid") expect(refused.reason).toMatch(/connection refused/);
    fail = false;
    const fresh = new JwksCache(async () => {
      calls++;
      return jwks;
    });
    expect((await authenticate([r], h, "/", fresh.keys)).kind).toBe("valid");
    expect((await authenticate([r], h, "/", fresh.keys)).kind).toBe("valid");
    expect(calls).toBe(2);
  });
});

describe("outputClaimToHeaders", () => {
  // Built per test: the keys exist only once beforeAll ran.
  const claims = () =>
    rule({
      outputClaimToHeaders: [
        { header: "x-jwt-claim-sub", claim: "sub" },
        { header: "X-Jwt-Claim-Group", claim: "realm.group" },
        { header: "x-jwt-claim-level", claim: "level" },
        { header: "x-jwt-claim-ratio", claim: "ratio" },
        { header: "x-jwt-claim-admin", claim: "admin" },
        { header: "x-jwt-claim-roles", claim: "roles" },
        { header: "x-jwt-claim-realm", claim: "realm" },
        { header: "x-jwt-claim-empty", claim: "empty" },
        { header: "x-jwt-claim-missing", claim: "missing" },
        { header: "x-jwt-claim-evil", claim: "evil" },
        { header: "x-jwt-claim-name", claim: "name" },
      ],
    });
  const forged = {
    "x-jwt-claim-sub": "admin",
    "x-jwt-claim-group": "root",
    "x-jwt-claim-roles": "admin",
    "x-jwt-claim-missing": "admin",
    "x-jwt-claim-evil": "admin",
    other: "x",
  };

  it("drops the client's own claim headers when there is no token", async () => {
    expect(await authenticate([claims()], forged, "/", noFetch.keys)).toEqual({ kind: "none", headers: { other: "x" } });
  });

  it("writes each header from the verified token's claim: strings, nested ones, numbers and booleans; nothing else", async () => {
    const t = await sign({
      realm: { group: "dev" },
      level: 3,
      ratio: 0.5,
      admin: false,
      roles: ["a", "b"],
      empty: "",
      evil: "a\r\nx-injected: 1",
      name: "Zoë",
    });
    const r = await authenticate([claims()], { ...forged, authorization: `Bearer ${t}` }, "/", noFetch.keys);
    expect(r.kind).toBe("valid");
    if (r.kind !== "valid") return;
    expect(r.headers).toEqual({
      other: "x",
      "x-jwt-claim-sub": "alice",
      "x-jwt-claim-group": "dev",
      "x-jwt-claim-level": "3",
      "x-jwt-claim-ratio": "0.5",
      "x-jwt-claim-admin": "false",
      // Header strings carry bytes: the UTF-8 of "Zoë", as any other header value read off the wire.
      "x-jwt-claim-name": Buffer.from("Zoë", "utf8").toString("latin1"),
    });
  });

  it("refuses a request whose token does not verify, forged claim headers or not", async () => {
    const r = await authenticate([claims()], { ...forged, authorization: `Bearer ${otherKeyToken}` }, "/", noFetch.keys);
    expect(r.kind).toBe("invalid");
  });

  it("drops every applicable rule's claim headers, even when another rule's token verified", async () => {
    const other = rule({ issuer: "https://other.test", outputClaimToHeaders: [{ header: "x-other-sub", claim: "sub" }] });
    const marker: JwtRule = {
      issuer: "https://gone.test",
      outputClaimToHeaders: [{ header: "x-gone-sub", claim: "" }],
      unusable: "broken",
    };
    const t = await sign({});
    const r = await authenticate(
      [claims(), other, marker],
      { authorization: `Bearer ${t}`, "x-other-sub": "admin", "x-gone-sub": "admin" },
      "/",
      noFetch.keys,
    );
    expect(r.kind).toBe("valid");
    if (r.kind === "valid") expect(r.headers).toEqual({ "x-jwt-claim-sub": "alice" });
  });
});

describe("fromCookies", () => {
  const cookieRule = () => rule({ fromCookies: ["session", "jwt"] });

  it("verifies a token in a configured cookie, and refuses a bad one", async () => {
    const t = await sign({});
    const ok = await authenticate([cookieRule()], { cookie: `theme=dark; session=${t}; other=1` }, "/", noFetch.keys);
    expect(ok.kind).toBe("valid");
    if (ok.kind === "valid") expect([ok.auth.issuer, ok.auth.subject]).toEqual([ISS, "alice"]);
    const bad = await authenticate([cookieRule()], { cookie: `session=${otherKeyToken}` }, "/", noFetch.keys);
    expect(bad.kind).toBe("invalid");
    expect((await authenticate([cookieRule()], { cookie: "jwt=garbage" }, "/", noFetch.keys)).kind).toBe("invalid");
  });

  it("reads cookies as RFC 6265 and Envoy do: quoted values, several Cookie lines, other names ignored", async () => {
    const t = await sign({});
    expect((await authenticate([cookieRule()], { cookie: `jwt="${t}"` }, "/", noFetch.keys)).kind).toBe("valid");
    expect((await authenticate([cookieRule()], { cookie: ["a=1", ` jwt = ${t} `] }, "/", noFetch.keys)).kind).toBe("valid");
    expect((await authenticate([cookieRule()], { cookie: `xsession=${otherKeyToken}; jwt` }, "/", noFetch.keys)).kind).toBe("none");
    // The same token twice is one token; two different values leave which one the app reads open: refused.
    expect((await authenticate([cookieRule()], { cookie: `jwt=${t}; jwt=${t}` }, "/", noFetch.keys)).kind).toBe("valid");
    const twice = await authenticate([cookieRule()], { cookie: `jwt=${t}; jwt=${otherKeyToken}` }, "/", noFetch.keys);
    expect(twice.kind).toBe("invalid");
  });

  it("refuses a token header or query parameter sent twice with different values (an app may read the unverified one)", async () => {
    const t = await sign({});
    const forwarded = rule({ forwardOriginalToken: true });
    const twice = await authenticate([forwarded], { authorization: [`Bearer ${t}`, `Bearer ${otherKeyToken}`] }, "/", noFetch.keys);
    expect(twice).toMatchObject({ kind: "invalid", reason: expect.stringContaining("header authorization is sent more than once") });
    const custom = rule({ fromHeaders: [{ name: "X-Jwt" }] });
    expect((await authenticate([custom], { "x-jwt": [t, "forged"] }, "/", noFetch.keys)).kind).toBe("invalid");
    const params = await authenticate([rule()], {}, `/?access_token=${t}&access_token=${otherKeyToken}`, noFetch.keys);
    expect(params).toMatchObject({ kind: "invalid", reason: expect.stringContaining("query parameter access_token") });
    // The same value twice is one token; a repeated header no rule reads is not looked at.
    expect((await authenticate([forwarded], { authorization: [`Bearer ${t}`, `Bearer ${t}`] }, "/", noFetch.keys)).kind).toBe("valid");
    expect((await authenticate([rule()], { authorization: `Bearer ${t}`, "x-jwt": ["a", "b"] }, "/", noFetch.keys)).kind).toBe("valid");
  });

  it("replaces the default locations: with only fromCookies, Authorization and access_token are not read", async () => {
    const t = await sign({});
    expect((await authenticate([cookieRule()], { authorization: `Bearer ${otherKeyToken}` }, "/", noFetch.keys)).kind).toBe("none");
    expect((await authenticate([cookieRule()], {}, `/?access_token=${otherKeyToken}`, noFetch.keys)).kind).toBe("none");
    // Headers come before params and cookies (Envoy's order): the header's bad token decides.
    const both = rule({ fromHeaders: [{ name: "x-jwt" }], fromCookies: ["jwt"] });
    expect((await authenticate([both], { "x-jwt": otherKeyToken, cookie: `jwt=${t}` }, "/", noFetch.keys)).kind).toBe("invalid");
  });

  it("refuses a token in an unusable rule's cookie", async () => {
    const marker: JwtRule = { issuer: ISS, fromCookies: ["jwt"], unusable: "RequestAuthentication shop/jwt: broken" };
    const r = await authenticate([rule(), marker], { cookie: `jwt=${await sign({})}` }, "/", noFetch.keys);
    expect(r.kind).toBe("invalid");
    if (r.kind === "invalid") expect(r.reason).toMatch(/no usable keys/);
  });
});

describe("RequestAuthentication on the wire", () => {
  const ra = (rules: JwtRule[]): RequestAuthentication => ({
    key: "shop/jwt",
    name: "jwt",
    namespace: "shop",
    scope: { kind: "namespace" },
    jwtRules: rules,
  });
  const roundTrip = (v: RequestAuthentication) =>
    decodeResource("RequestAuthentication", v.key, encodeResource("RequestAuthentication", v));

  it("carries fromCookies and outputClaimToHeaders", () => {
    const v = ra([rule({ fromCookies: ["session"], outputClaimToHeaders: [{ header: "x-sub", claim: "sub" }] })]);
    expect(roundTrip(v)).toEqual(v);
  });

  it.each<[string, Partial<JwtRule>, RegExp]>([
    ["a cookie name with '='", { fromCookies: ["a=b"] }, /fromCookies\[0\]: 'a=b' is not a cookie name/],
    ["a header name with a space", { outputClaimToHeaders: [{ header: "x sub", claim: "sub" }] }, /outputClaimToHeaders\[0\]\.header/],
    ["a header the proxy owns", { outputClaimToHeaders: [{ header: "content-length", claim: "sub" }] }, /the proxy owns/],
    ["an upper-case header", { outputClaimToHeaders: [{ header: "X-Sub", claim: "sub" }] }, /not lower case/],
    ["an empty claim", { outputClaimToHeaders: [{ header: "x-sub", claim: "" }] }, /claim: must not be empty/],
  ])("refuses %s", (_n, extra, why) => {
    expect(() => roundTrip(ra([rule(extra)]))).toThrow(why);
  });
});

describe("RequestAuthentication whose jwtRule cannot be used", () => {
  const GOOGLE = "https://accounts.google.com";
  const client = workload({ name: "client", ns: "shop", ip: "10.244.1.2", node: "node1", nodeAddress: "10.250.0.11" });
  const api = workload({ name: "api", ns: "shop", ip: "10.244.2.2", node: "node2", nodeAddress: "10.250.0.12", labels: { app: "api" } });
  const other = workload({
    name: "other",
    ns: "billing",
    ip: "10.244.2.3",
    node: "node2",
    nodeAddress: "10.250.0.12",
    labels: { app: "api" },
  });
  const plain = workload({
    name: "plain",
    ns: "billing",
    ip: "10.244.2.4",
    node: "node2",
    nodeAddress: "10.250.0.12",
    labels: { app: "x" },
  });
  const svc = {
    ...service("api", "shop", "10.96.0.9", 80, 8080, [api, other, plain]),
    ports: [{ port: 80, targetPort: 8080, appProtocol: "http" as const }],
  };

  const viewOf = (ns: string, spec: Record<string, unknown>) => {
    const m = translate(objects([custom("security.istio.io/v1", "RequestAuthentication", "jwt", ns, spec)]));
    return new MeshView({
      ...snapshot("node2", [client, api, other, plain], [svc]),
      requestAuthentications: m.requestAuthentications ?? [],
    });
  };
  const inbound = (v: MeshView, to: Workload) =>
    checkInbound(v, {
      sourceIdentity: client.identity,
      sourceIp: client.addresses[0] as string,
      target: { ip: to.addresses[0] as string, port: 8080 },
      httpCapable: true,
    });
  const forged = (iss: string) =>
    `${Buffer.from(JSON.stringify({ alg: "RS256", kid: "k1" })).toString("base64url")}.${Buffer.from(JSON.stringify({ iss, sub: "admin" })).toString("base64url")}.Z2FyYmFnZQ`;

  it("still sends the connection to the HTTP server and refuses a forged token of its issuer, letting tokenless requests through", async () => {
    const v = viewOf("shop", { jwtRules: [{ issuer: GOOGLE, jwksUri: "https://www.googleapis.com/oauth2/v3/certs" }] });
    expect(inbound(v, api)).toMatchObject({ ok: true, http: { jwt: true } });
    const rules = v.jwtRulesFor(api);
    const refused = await authenticate(rules, { authorization: `Bearer ${forged(GOOGLE)}` }, "/", noFetch.keys);
    expect(refused.kind).toBe("invalid");
    if (refused.kind === "invalid")
      expect(refused.reason).toMatch(
        /issuer https:\/\/accounts\.google\.com has no usable keys: RequestAuthentication shop\/jwt: spec\.jwtRules\[0\]\.jwksUri/,
      );
    expect(await authenticate(rules, { other: "x" }, "/", noFetch.keys)).toEqual({ kind: "none", headers: { other: "x" } });
    // A token of another issuer matches no rule, as before.
    expect((await authenticate(rules, { authorization: `Bearer ${await sign({})}` }, "/", noFetch.keys)).kind).toBe("invalid");
  });

  it("refuses its issuer's tokens even beside a usable rule of that issuer, or after another token verified", async () => {
    const marker: JwtRule = {
      issuer: ISS,
      fromHeaders: [{ name: "x-jwt", prefix: "" }],
      unusable: "RequestAuthentication shop/jwt: broken",
    };
    const t = await sign({});
    expect((await authenticate([rule(), marker], { authorization: `Bearer ${t}` }, "/", noFetch.keys)).kind).toBe("valid");
    expect((await authenticate([rule(), marker], { authorization: `Bearer ${t}`, "x-jwt": t }, "/", noFetch.keys)).kind).toBe("invalid");
    expect(
      (await authenticate([rule(), { ...marker, fromHeaders: undefined }], { authorization: `Bearer ${t}` }, "/", noFetch.keys)).kind,
    ).toBe("invalid");
    await expect(noFetch.keys(marker)).rejects.toThrow(/no usable keys/);
  });

  it("refuses every token at its locations when its issuer is unknown, and strips a forged payload header", async () => {
    const v = viewOf("shop", { jwtRules: [{ issuer: ["?"], jwks: "{}", outputPayloadToHeader: "x-jwt-payload" }] });
    const rules = v.jwtRulesFor(api);
    expect(inbound(v, api)).toMatchObject({ ok: true, http: { jwt: true } });
    expect((await authenticate(rules, { authorization: `Bearer ${await sign({})}` }, "/", noFetch.keys)).kind).toBe("invalid");
    expect((await authenticate(rules, {}, `/?access_token=${forged("https://any.test")}`, noFetch.keys)).kind).toBe("invalid");
    expect(await authenticate(rules, { "x-jwt-payload": "e30", other: "x" }, "/", noFetch.keys)).toEqual({
      kind: "none",
      headers: { other: "x" },
    });
  });

  it("answers the client a generic 401 body, keeping the detailed reason for the access log", async () => {
    const v = viewOf("shop", { jwtRules: [{ issuer: GOOGLE, jwksUri: "https://www.googleapis.com/oauth2/v3/certs" }] });
    const logged: Record<string, unknown>[] = [];
    const log = (fields: Record<string, unknown>) => {
      logged.push(fields);
    };
    const ctx = {
      config: { connectTimeoutMs: 1000 },
      view: () => v,
      metrics: { requests: { record: () => undefined }, limitHit: () => undefined, dryRun: () => undefined },
      log: { info: log, warn: log, error: log, debug: log },
    } as unknown as ProxyContext;
    const server = new InboundHttp(ctx);
    const replies: { status: number; body: string; headers: unknown }[] = [];
    const down: Downstream = {
      protocol: "http1",
      method: "GET",
      path: "/",
      authority: "api.shop",
      headers: { authorization: `Bearer ${forged(GOOGLE)}` },
      body: Readable.from([]),
      bodyless: true,
      grpc: false,
      headersSent: false,
      reply: (status, body, headers) => {
        replies.push({ status, body, headers });
        return body.length;
      },
      start: () => {
        throw new Error("a refused request is never forwarded");
      },
      abort: () => undefined,
      onGone: () => undefined,
    };
    const scope = {
      sourceIdentity: client.identity,
      sourceIp: client.addresses[0] as string,
      destination: api,
      target: { ip: api.addresses[0] as string, port: 8080 },
      duties: { authz: false, jwt: true, rateLimit: false, trace: false, sniffed: false },
    } as InboundHttpScope;
    try {
      await (server as unknown as { handle(s: InboundHttpScope, d: Downstream): Promise<void> }).handle(scope, down);
    } finally {
      server.close();
    }
    expect(replies).toEqual([{ status: 401, body: "Jwt verification fails", headers: { "www-authenticate": 'Bearer realm="weft"' } }]);
    expect(logged.map((f) => f.reason)).toContainEqual(expect.stringMatching(/RequestAuthentication shop\/jwt: .*www\.googleapis\.com/));
  });

  it("applies a root-namespace policy with a selector to matching workloads of every namespace", () => {
    const v = viewOf("weft-system", { selector: { matchLabels: { app: "api" } }, jwtRules: [{ issuer: ISS, jwks: JSON.stringify(jwks) }] });
    expect(v.jwtRulesFor(api)).toHaveLength(1);
    expect(v.jwtRulesFor(other)).toHaveLength(1);
    expect(v.jwtRulesFor(plain)).toHaveLength(0);
    expect(inbound(v, other)).toMatchObject({ ok: true, http: { jwt: true } });
  });
});
