/**
 * RequestAuthentication at the destination, with Istio's semantics: a request may carry no token
 * (it is then unauthenticated, and only an AuthorizationPolicy requiring requestPrincipals
 * refuses it); a token that is present must verify against a rule for its issuer, or the request
 * is refused with 401. Verification is jose's (signature, exp/nbf, issuer, audiences); this file
 * only finds the token, picks the rule and shapes the outcome. A rule the controller could not
 * translate (JwtRule.unusable) is Istio's fake JWKS: its tokens always fail, never pass.
 */
import { createLocalJWKSet, decodeJwt, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from "jose";
import type { JwtRule } from "../../../controller/api/model.js";
import type { RequestAuth } from "../authz.js";

/** The keys a rule's tokens verify against (inline jwks, or the fetched jwksUri document). */
export type KeySource = (rule: JwtRule) => Promise<JWTVerifyGetKey>;

/**
 * What authentication made of a request. headers: the request's headers to check and send on,
 * never carrying a payload or claim header the client wrote itself.
 */
export type JwtOutcome =
  | { kind: "none"; headers: Record<string, string | string[]> }
  | { kind: "valid"; auth: RequestAuth; headers: Record<string, string | string[]> }
  | { kind: "invalid"; reason: string };

interface Location {
  header?: { name: string; prefix: string };
  param?: string;
  cookie?: string;
}

/** Where a request's tokens may be: its headers, its query and the cookies some rule names. */
interface Sources {
  headers: Record<string, string | string[]>;
  query: URLSearchParams;
  /** Every value each named cookie is sent with, in order. */
  cookies: Map<string, string[]>;
}

const DEFAULT_LOCATIONS: Location[] = [{ header: { name: "authorization", prefix: "Bearer " } }, { param: "access_token" }];

/** A rule's token locations in Envoy's order (headers, params, cookies); the defaults only when it names none. */
function locationsOf(rule: JwtRule): Location[] {
  const out: Location[] = [];
  for (const h of rule.fromHeaders ?? []) out.push({ header: { name: h.name.toLowerCase(), prefix: h.prefix ?? "" } });
  for (const p of rule.fromParams ?? []) out.push({ param: p });
  for (const c of rule.fromCookies ?? []) out.push({ cookie: c });
  return out.length > 0 ? out : DEFAULT_LOCATIONS;
}

function sameLocation(a: Location, b: Location): boolean {
  if (a.header) return a.header.name === b.header?.name && a.header.prefix === b.header.prefix;
  return a.param !== undefined ? a.param === b.param : a.cookie === b.cookie;
}

function tokenAt(loc: Location, src: Sources): string | undefined {
  if (loc.header) {
    const raw = src.headers[loc.header.name];
    const v = Array.isArray(raw) ? raw[0] : raw;
    if (v === undefined || !v.startsWith(loc.header.prefix)) return undefined;
    const t = v.slice(loc.header.prefix.length).trim();
    return t === "" ? undefined : t;
  }
  if (loc.cookie !== undefined) {
    const v = src.cookies.get(loc.cookie)?.[0];
    return v === undefined || v === "" ? undefined : v;
  }
  return src.query.get(loc.param as string) ?? undefined;
}

/**
 * The named cookies of every Cookie header (RFC 6265 §5.4: `name=value` pairs split at ";",
 * whitespace trimmed, a pair without "=" skipped, a value in double quotes unquoted, as Envoy).
 */
function cookiesOf(headers: Record<string, string | string[]>, names: ReadonlySet<string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (names.size === 0) return out;
  const raw = headers.cookie;
  for (const line of raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]) {
    for (const pair of line.split(";")) {
      const eq = pair.indexOf("=");
      if (eq < 0) continue;
      const name = pair.slice(0, eq).trim();
      if (!names.has(name)) continue;
      let value = pair.slice(eq + 1).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      const seen = out.get(name);
      if (seen) seen.push(value);
      else out.set(name, [value]);
    }
  }
  return out;
}

/** Claims Envoy copies to a header: a string as is, a number or boolean as text; nothing else. */
function claimText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v !== "number" || !Number.isFinite(v)) return undefined;
  // Envoy prints a whole double as an int64; JavaScript would write 1e+21.
  return Number.isInteger(v) && Math.abs(v) < 2 ** 63 ? BigInt(v).toString() : String(v);
}

/**
 * The header value for a claim ("." walks into nested claims, as Envoy's claim_to_headers), as
 * the UTF-8 bytes header strings carry; undefined (no header) when the claim is absent, empty, not
 * a string, number or boolean, or holds a control character (it would split the header).
 */
function claimHeaderValue(payload: JWTPayload, claim: string): string | undefined {
  let v: unknown = payload;
  for (const part of claim.split(".")) {
    if (v === null || typeof v !== "object" || Array.isArray(v) || !Object.hasOwn(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  const text = claimText(v);
  if (text === undefined || text === "") return undefined;
  const bytes = Buffer.from(text, "utf8").toString("latin1");
  return /[^\t\x20-\x7e\x80-\xff]/.test(bytes) ? undefined : bytes;
}

/** A claim that names someone: a non-empty string, else absent (an empty or odd `sub` is no principal). */
function nameClaim(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

function authOf(p: JWTPayload): RequestAuth {
  const aud = p.aud === undefined ? [] : Array.isArray(p.aud) ? p.aud : [p.aud];
  return {
    issuer: nameClaim(p.iss),
    subject: nameClaim(p.sub),
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
  const clean = withoutOutputHeaders(rules, headers);
  const q = path.indexOf("?");
  const cookieNames = new Set(rules.flatMap((r) => r.fromCookies ?? []));
  const src: Sources = {
    headers,
    query: new URLSearchParams(q >= 0 ? path.slice(q + 1) : ""),
    cookies: cookiesOf(headers, cookieNames),
  };
  const repeated = repeatedLocation(rules, src);
  if (repeated) return { kind: "invalid", reason: `Jwt verification fails: ${repeated} is sent more than once, with different values` };
  const refused = unusableHit(rules, src);
  if (refused) return refused;
  const seen: Location[] = [];
  for (const rule of rules) {
    for (const loc of locationsOf(rule)) {
      if (seen.some((s) => sameLocation(s, loc))) continue;
      seen.push(loc);
      const token = tokenAt(loc, src);
      if (token === undefined) continue;
      return verify(rules, loc, token, clean, keys);
    }
  }
  return { kind: "none", headers: clean };
}

/**
 * A token location sent more than once with different values (a header line, a query parameter
 * or a cookie): only the first would be verified, and an app may read another, so the request is
 * refused rather than guessed at.
 */
function repeatedLocation(rules: readonly JwtRule[], src: Sources): string | undefined {
  const differ = (values: readonly string[]) => values.some((v) => v !== values[0]);
  for (const [name, values] of src.cookies) if (differ(values)) return `cookie ${name}`;
  for (const rule of rules) {
    for (const loc of locationsOf(rule)) {
      if (loc.header) {
        const raw = src.headers[loc.header.name];
        if (Array.isArray(raw) && differ(raw)) return `header ${loc.header.name}`;
      } else if (loc.param !== undefined && differ(src.query.getAll(loc.param))) return `query parameter ${loc.param}`;
    }
  }
  return undefined;
}

/**
 * The headers without any that a rule writes from a verified token (outputPayloadToHeader,
 * outputClaimToHeaders): an app trusts those as the mesh's word, so a client's own copy is
 * dropped, token or not (fail closed), as Envoy's jwt_authn sanitizes them.
 */
function withoutOutputHeaders(rules: readonly JwtRule[], headers: Record<string, string | string[]>): Record<string, string | string[]> {
  let out = headers;
  const drop = (name: string) => {
    if (out[name] === undefined) return;
    if (out === headers) out = { ...headers };
    delete out[name];
  };
  for (const r of rules) {
    if (r.outputPayloadToHeader !== undefined) drop(r.outputPayloadToHeader.toLowerCase());
    for (const c of r.outputClaimToHeaders ?? []) drop(c.header.toLowerCase());
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
    for (const c of rule.outputClaimToHeaders ?? []) {
      const v = claimHeaderValue(payload, c.claim);
      if (v !== undefined) out[c.header.toLowerCase()] = v;
    }
    return { kind: "valid", auth: authOf(payload), headers: out };
  } catch (e) {
    return { kind: "invalid", reason: `Jwt verification fails: ${(e as Error).message}` };
  }
}

/**
 * A token at an unusable rule's location that the rule may have been for: of its issuer, any
 * token when its issuer is unknown, or one whose issuer cannot be read. Checked at every such
 * location before any usable rule, so another token verifying first never lets it reach the app,
 * and a usable rule of the same issuer never stands in for what the broken one would demand.
 */
function unusableHit(rules: readonly JwtRule[], src: Sources): JwtOutcome | undefined {
  for (const rule of rules) {
    if (rule.unusable === undefined) continue;
    for (const loc of locationsOf(rule)) {
      const token = tokenAt(loc, src);
      if (token === undefined) continue;
      let iss: string | undefined;
      try {
        iss = decodeJwt(token).iss;
      } catch {
        return { kind: "invalid", reason: `Jwt is not in the form of Header.Payload.Signature (${at(loc)})` };
      }
      if (rule.issuer !== "" && rule.issuer !== iss) continue;
      const whose = rule.issuer === "" ? `a jwtRule of unknown issuer reads ${at(loc)} (token issuer ${iss ?? "(none)"})` : `issuer ${iss}`;
      return { kind: "invalid", reason: `Jwt verification fails: ${whose} has no usable keys: ${rule.unusable}` };
    }
  }
  return undefined;
}

function at(loc: Location): string {
  if (loc.header) return `header ${loc.header.name}`;
  return loc.param !== undefined ? `query parameter ${loc.param}` : `cookie ${loc.cookie}`;
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
    if (rule.unusable !== undefined) throw new Error(`issuer ${rule.issuer} has no usable keys: ${rule.unusable}`);
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
