import { exportJWK, generateKeyPair, type JSONWebKeySet, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { authenticate, JwksCache } from "../../agent/proxy/l7/jwt.js";
import type { JwtRule } from "../../controller/api/model.js";

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
    expect(r.auth.principal).toBe(`${ISS}/alice`);
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
