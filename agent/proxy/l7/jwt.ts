/**
 * RequestAuthentication at the destination, with Istio's semantics: a request may carry no token
 * (it is then unauthenticated, and only an AuthorizationPolicy requiring requestPrincipals
 * refuses it); a token that is present must verify against a rule for its issuer, or the request
 * is refused with 401. Verification is jose's (signature, exp/nbf, issuer, audiences); this file
 * only finds the token, picks the rule and shapes the outcome.
 */
import { createLocalJWKSet, decodeJwt, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from "jose";
import type { JwtRule } from "../../../controller/api/model.js";
import type { RequestAuth } from "../authz.js";

/** The keys a rule's tokens verify against (inline jwks, or the fetched jwksUri document). */
export type KeySource = (rule: JwtRule) => Promise<JWTVerifyGetKey>;

/**
 * What authentication made of a request. headers: the request's headers to check and send on,
 * never carrying a payload header the client wrote itself.
 */
export type JwtOutcome =
  | { kind: "none"; headers: Record<string, string | string[]> }
  | { kind: "valid"; auth: RequestAuth; headers: Record<string, string | string[]> }
  | { kind: "invalid"; reason: string };

interface Location {
  header?: { name: string; prefix: string };
  param?: string;
}

const DEFAULT_LOCATIONS: Location[] = [{ header: { name: "authorization", prefix: "Bearer " } }, { param: "access_token" }];

function locationsOf(rule: JwtRule): Location[] {
  const out: Location[] = [];
  for (const h of rule.fromHeaders ?? []) out.push({ header: { name: h.name.toLowerCase(), prefix: h.prefix ?? "" } });
  for (const p of rule.fromParams ?? []) out.push({ param: p });
  return out.length > 0 ? out : DEFAULT_LOCATIONS;
}

function sameLocation(a: Location, b: Location): boolean {
  return a.header ? a.header.name === b.header?.name && a.header.prefix === b.header.prefix : a.param === b.param;
}

function tokenAt(loc: Location, headers: Record<string, string | string[]>, query: URLSearchParams): string | undefined {
  if (loc.header) {
    const raw = headers[loc.header.name];
    const v = Array.isArray(raw) ? raw[0] : raw;
    if (v === undefined || !v.startsWith(loc.header.prefix)) return undefined;
    const t = v.slice(loc.header.prefix.length).trim();
    return t === "" ? undefined : t;
  }
  return query.get(loc.param as string) ?? undefined;
}

function authOf(p: JWTPayload): RequestAuth {
  const aud = p.aud === undefined ? [] : Array.isArray(p.aud) ? p.aud : [p.aud];
  return {
    principal: `${p.iss ?? ""}/${p.sub ?? ""}`,
    audiences: aud,
    ...(typeof p.azp === "string" ? { presenter: p.azp } : {}),
    claims: p as Record<string, unknown>,
  };
}

/** Authenticates one request against the RequestAuthentication rules that apply to its workload. */
export async function authenticate(
  rules: readonly JwtRule[],
  headers: Record<string, string | string[]>,
  path: string,
  keys: KeySource,
): Promise<JwtOutcome> {
  if (rules.length === 0) return { kind: "none", headers };
  const clean = withoutPayloadHeaders(rules, headers);
  const q = path.indexOf("?");
  const query = new URLSearchParams(q >= 0 ? path.slice(q + 1) : "");
  const seen: Location[] = [];
  for (const rule of rules) {
    for (const loc of locationsOf(rule)) {
      if (seen.some((s) => sameLocation(s, loc))) continue;
      seen.push(loc);
      const token = tokenAt(loc, headers, query);
      if (token === undefined) continue;
      return verify(rules, loc, token, clean, keys);
    }
  }
  return { kind: "none", headers: clean };
}

/**
 * The headers without any that a rule writes a verified payload to (outputPayloadToHeader): an app
 * trusts those as the mesh's word, so a client's own copy is dropped, token or not (fail closed).
 */
function withoutPayloadHeaders(rules: readonly JwtRule[], headers: Record<string, string | string[]>): Record<string, string | string[]> {
  let out = headers;
  for (const r of rules) {
    const name = r.outputPayloadToHeader?.toLowerCase();
    if (name === undefined || out[name] === undefined) continue;
    if (out === headers) out = { ...headers };
    delete out[name];
  }
  return out;
}

async function verify(
  rules: readonly JwtRule[],
  loc: Location,
  token: string,
  headers: Record<string, string | string[]>,
  keys: KeySource,
): Promise<JwtOutcome> {
  let iss: string | undefined;
  try {
    iss = decodeJwt(token).iss;
  } catch {
    return { kind: "invalid", reason: "Jwt is not in the form of Header.Payload.Signature" };
  }
  const rule = rules.find((r) => r.issuer === iss && locationsOf(r).some((l) => sameLocation(l, loc)));
  if (!rule) return { kind: "invalid", reason: `Jwt issuer ${iss ?? "(none)"} is not configured` };
  try {
    const { payload } = await jwtVerify(token, await keys(rule), {
      issuer: rule.issuer,
      ...(rule.audiences && rule.audiences.length > 0 ? { audience: rule.audiences } : {}),
    });
    const out = { ...headers };
    if (!rule.forwardOriginalToken && loc.header) delete out[loc.header.name];
    if (rule.outputPayloadToHeader)
      out[rule.outputPayloadToHeader.toLowerCase()] = Buffer.from(JSON.stringify(payload)).toString("base64url");
    return { kind: "valid", auth: authOf(payload), headers: out };
  } catch (e) {
    return { kind: "invalid", reason: `Jwt verification fails: ${(e as Error).message}` };
  }
}

/** A JWKS document fetched from a jwksUri. */
export type JwksFetcher = (uri: string) => Promise<JSONWebKeySet>;

/** How long fetched keys are used before they are fetched again (Istio's default refresh). */
const REFRESH_MS = 20 * 60 * 1000;
/** After a failed fetch, the next request may retry after this long. */
const RETRY_MS = 5_000;

interface Fetched {
  keys?: JWTVerifyGetKey;
  at: number;
  pending?: Promise<void>;
  error?: string;
}

/**
 * Keys per rule: inline jwks parsed once; jwksUri documents fetched on first use, cached and
 * refreshed in the background (the old keys serve until new ones arrive; a failed refresh keeps
 * them). Without keys yet, a token cannot verify: the request gets 401, never a pass.
 */
export class JwksCache {
  private readonly inline = new Map<string, JWTVerifyGetKey>();
  private readonly remote = new Map<string, Fetched>();

  constructor(private readonly fetcher: JwksFetcher) {}

  /** The KeySource for authenticate(). */
  readonly keys: KeySource = async (rule) => {
    if (rule.jwks !== undefined) {
      let k = this.inline.get(rule.jwks);
      if (!k) {
        k = createLocalJWKSet(JSON.parse(rule.jwks) as JSONWebKeySet);
        this.inline.set(rule.jwks, k);
      }
      return k;
    }
    const uri = rule.jwksUri;
    if (uri === undefined) throw new Error(`issuer ${rule.issuer} has neither jwks nor jwksUri`);
    let f = this.remote.get(uri);
    if (!f) {
      f = { at: 0 };
      this.remote.set(uri, f);
    }
    const age = Date.now() - f.at;
    if (!f.pending && (f.keys ? age > REFRESH_MS : age > RETRY_MS || f.at === 0)) f.pending = this.refresh(uri, f);
    if (!f.keys && f.pending) await f.pending;
    if (!f.keys) throw new Error(`Jwks remote fetch failed for ${uri}: ${f.error ?? "no keys"}`);
    return f.keys;
  };

  private async refresh(uri: string, f: Fetched): Promise<void> {
    try {
      f.keys = createLocalJWKSet(await this.fetcher(uri));
      delete f.error;
    } catch (e) {
      f.error = (e as Error).message;
    } finally {
      f.at = Date.now();
      delete f.pending;
    }
  }
}
