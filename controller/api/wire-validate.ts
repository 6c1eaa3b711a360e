/**
 * Decoded weft.mesh.v1 messages → validated model values. This is where an agent decides to
 * NACK: anything that would make the proxy misbehave (an address that is not an IP, a port out
 * of range, an unknown mode) is refused here, with the field's path in the reason.
 */
import { X509Certificate } from "node:crypto";
import { errorMessage } from "../../common/errors.js";
import type {
  AuthorizationPolicy,
  AuthzCondition,
  AuthzOperation,
  AuthzRule,
  AuthzSource,
  Endpoint,
  JwtClaimHeader,
  JwtRule,
  MtlsMode,
  PeerAuthentication,
  PolicyScope,
  RateLimit,
  RateLimitPolicy,
  RequestAuthentication,
  Service,
  ServicePort,
  TracingPolicy,
  Workload,
} from "./model.js";
import { claimHeaderProblem, cookieNameProblem, parseSpiffeId } from "./model.js";
import {
  bool,
  checkCidr,
  checkIp,
  compact,
  fail,
  list,
  num,
  numList,
  oneOf,
  optLabels,
  optNum,
  optStr,
  type Rec,
  rec,
  str,
  strList,
  strMap,
} from "./wire-check.js";
import type { MeshConfig, RefusedObject, TrustBundle } from "./wire-types.js";
import { destinationPolicyFromWire, routeTableFromWire } from "./wire-validate-routes.js";

const MTLS_MODES: readonly MtlsMode[] = ["STRICT", "PERMISSIVE", "DISABLE", "UNSET"];

function workload(o: Rec): Workload {
  const w: Workload = {
    uid: str(o, "uid", "", true),
    name: str(o, "name", "", true),
    namespace: str(o, "namespace", "", true),
    serviceAccount: str(o, "serviceAccount", "", true),
    identity: str(o, "identity", "", true),
    addresses: strList(o, "addresses", "", checkIp),
    node: str(o, "node", "", true),
    nodeAddress: str(o, "nodeAddress", ""),
    labels: strMap(o, "labels", ""),
    workloadName: str(o, "workloadName", "", true),
    canonicalName: str(o, "canonicalName", "", true),
    canonicalRevision: str(o, "canonicalRevision", "", true),
    enrolled: bool(o, "enrolled", ""),
    enrolmentReason: str(o, "enrolmentReason", ""),
    ready: bool(o, "ready", ""),
  };
  const id = parseSpiffeId(w.identity);
  if (!id) fail("identity", `'${w.identity}' is not a spiffe://<trust-domain>/ns/<ns>/sa/<sa> id`);
  if (id.namespace !== w.namespace || id.serviceAccount !== w.serviceAccount) {
    fail("identity", `'${w.identity}' does not match namespace '${w.namespace}' and service account '${w.serviceAccount}'`);
  }
  if (w.nodeAddress !== "") checkIp(w.nodeAddress, "nodeAddress");
  if (w.enrolled && w.addresses.length === 0) fail("addresses", "an enrolled workload needs at least one address");
  return w;
}

function servicePort(o: Rec, path: string): ServicePort {
  return compact({
    name: optStr(o, "name", path),
    port: num(o, "port", path, 1, 65535),
    targetPort: num(o, "targetPort", path, 1, 65535),
    appProtocol: oneOf(o, "appProtocol", path, ["tcp", "http", "http2", "grpc", "auto"] as const),
  });
}

function endpoint(o: Rec, path: string): Endpoint {
  const address = str(o, "address", path, true);
  checkIp(address, `${path}.address`);
  return { workloadUid: str(o, "workloadUid", path), address, ready: bool(o, "ready", path) };
}

function service(o: Rec): Service {
  const s: Service = {
    key: str(o, "key", "", true),
    name: str(o, "name", "", true),
    namespace: str(o, "namespace", "", true),
    hostname: str(o, "hostname", "", true),
    vips: strList(o, "vips", "", checkIp),
    ports: list(o, "ports", "", servicePort),
    endpoints: list(o, "endpoints", "", endpoint),
  };
  if (s.key !== `${s.namespace}/${s.name}`) fail("key", `'${s.key}' is not '${s.namespace}/${s.name}'`);
  const seen = new Set<number>();
  for (const p of s.ports) {
    if (seen.has(p.port)) fail("ports", `port ${p.port} is listed twice`);
    seen.add(p.port);
  }
  return s;
}

function scope(o: Rec, path: string): PolicyScope {
  const kind = oneOf(o, "kind", path, ["mesh", "namespace", "workload"] as const);
  const selector = optLabels(o, "selector", path);
  if (kind === "workload" && selector === undefined) fail(`${path}.selector`, "a workload-scoped policy needs a selector");
  if (kind === "namespace" && selector !== undefined) fail(`${path}.selector`, "a namespace-scoped policy has no selector");
  return compact({ kind, selector });
}

function keyed(o: Rec): { key: string; name: string; namespace: string } {
  const r = { key: str(o, "key", "", true), name: str(o, "name", "", true), namespace: str(o, "namespace", "", true) };
  if (r.key !== `${r.namespace}/${r.name}`) fail("key", `'${r.key}' is not '${r.namespace}/${r.name}'`);
  return r;
}

/** Drops empty lists: the model leaves a match field out when it is not used. */
function nonEmpty<T>(v: T[]): T[] | undefined {
  return v.length ? v : undefined;
}

function authzSource(o: Rec, path: string): AuthzSource {
  return compact({
    principals: nonEmpty(strList(o, "principals", path)),
    notPrincipals: nonEmpty(strList(o, "notPrincipals", path)),
    namespaces: nonEmpty(strList(o, "namespaces", path)),
    notNamespaces: nonEmpty(strList(o, "notNamespaces", path)),
    ipBlocks: nonEmpty(strList(o, "ipBlocks", path, checkCidr)),
    notIpBlocks: nonEmpty(strList(o, "notIpBlocks", path, checkCidr)),
    requestPrincipals: nonEmpty(strList(o, "requestPrincipals", path)),
    notRequestPrincipals: nonEmpty(strList(o, "notRequestPrincipals", path)),
  });
}

function authzOperation(o: Rec, path: string): AuthzOperation {
  return compact({
    ports: nonEmpty(numList(o, "ports", path, 1, 65535)),
    notPorts: nonEmpty(numList(o, "notPorts", path, 1, 65535)),
    hosts: nonEmpty(strList(o, "hosts", path)),
    notHosts: nonEmpty(strList(o, "notHosts", path)),
    methods: nonEmpty(strList(o, "methods", path)),
    notMethods: nonEmpty(strList(o, "notMethods", path)),
    paths: nonEmpty(strList(o, "paths", path)),
    notPaths: nonEmpty(strList(o, "notPaths", path)),
  });
}

function authzCondition(o: Rec, path: string): AuthzCondition {
  const key = str(o, "key", path, true);
  const values = nonEmpty(strList(o, "values", path));
  const notValues = nonEmpty(strList(o, "notValues", path));
  if (!values && !notValues) fail(path, `condition '${key}' has neither values nor notValues`);
  return compact({ key, values, notValues });
}

function authzRule(o: Rec, path: string): AuthzRule {
  return { from: list(o, "from", path, authzSource), to: list(o, "to", path, authzOperation), when: list(o, "when", path, authzCondition) };
}

function authorizationPolicy(o: Rec): AuthorizationPolicy {
  return {
    ...keyed(o),
    scope: scope(rec(o.scope, "scope"), "scope"),
    action: oneOf(o, "action", "", ["ALLOW", "DENY", "AUDIT"] as const),
    rules: list(o, "rules", "", authzRule),
    ...(o.dryRun === true ? { dryRun: true } : {}),
    ...errorsOf(o),
  };
}

function jwtRule(o: Rec, path: string): JwtRule {
  const jwks = o.jwks === undefined || o.jwks === null ? undefined : str(o, "jwks", path, true);
  const jwksUri = o.jwksUri === undefined || o.jwksUri === null ? undefined : str(o, "jwksUri", path, true);
  const out =
    o.outputPayloadToHeader === undefined || o.outputPayloadToHeader === null ? undefined : str(o, "outputPayloadToHeader", path, true);
  const unusable = optStr(o, "unusable", path);
  return compact({
    // An unusable rule's issuer may be unknown (empty): it then fails every token at its locations.
    issuer: str(o, "issuer", path, unusable === undefined),
    audiences: nonEmpty(strList(o, "audiences", path)),
    jwks,
    jwksUri,
    fromHeaders: nonEmpty(
      list(o, "fromHeaders", path, (h, p) => {
        const prefix = h.prefix === undefined || h.prefix === null ? undefined : str(h, "prefix", p, false);
        return compact({ name: str(h, "name", p, true), prefix });
      }),
    ),
    fromParams: nonEmpty(strList(o, "fromParams", path)),
    fromCookies: nonEmpty(
      strList(o, "fromCookies", path, (c, p) => {
        const problem = cookieNameProblem(c);
        if (problem) fail(p, problem);
      }),
    ),
    forwardOriginalToken: o.forwardOriginalToken === true ? true : undefined,
    outputPayloadToHeader: out,
    outputClaimToHeaders: nonEmpty(list(o, "outputClaimToHeaders", path, (c, p) => claimHeader(c, p, unusable !== undefined))),
    unusable,
  });
}

/**
 * A claim header: a header name weft may write (lower case, as the controller sends it) and a
 * claim, which an unusable rule's entry may lack (it is kept only to drop the client's copies).
 */
function claimHeader(o: Rec, path: string, marker: boolean): JwtClaimHeader {
  const header = str(o, "header", path, true);
  const problem = claimHeaderProblem(header);
  if (problem) fail(`${path}.header`, problem);
  if (header !== header.toLowerCase()) fail(`${path}.header`, `'${header}' is not lower case`);
  return { header, claim: str(o, "claim", path, !marker) };
}

function requestAuthentication(o: Rec): RequestAuthentication {
  return {
    ...keyed(o),
    scope: scope(rec(o.scope, "scope"), "scope"),
    jwtRules: list(o, "jwtRules", "", jwtRule),
    ...errorsOf(o),
  };
}

function rateLimit(o: Rec, path: string): RateLimit {
  const rps = o.requestsPerSecond;
  const burst = o.burst;
  if (typeof rps !== "number" || !(rps > 0)) fail(`${path}.requestsPerSecond`, "must be a positive number");
  if (typeof burst !== "number" || !Number.isInteger(burst) || burst < 1) fail(`${path}.burst`, "must be a positive integer");
  return { requestsPerSecond: rps as number, burst: burst as number };
}

function rateLimitPolicy(o: Rec): RateLimitPolicy {
  const opt = (k: string) => (o[k] === undefined || o[k] === null ? undefined : rateLimit(rec(o[k], k), k));
  return compact({
    ...keyed(o),
    scope: scope(rec(o.scope, "scope"), "scope"),
    total: opt("total"),
    perClient: opt("perClient"),
    overrides: list(o, "overrides", "", (r, p) => ({
      clients: strList(r, "clients", p),
      limit: rateLimit(rec(r.limit, `${p}.limit`), `${p}.limit`),
    })),
    ...errorsOf(o),
  }) as RateLimitPolicy;
}

function peerAuthentication(o: Rec): PeerAuthentication {
  const portLevelMtls: Record<string, MtlsMode> = {};
  for (const [port, mode] of Object.entries(strMap(o, "portLevelMtls", ""))) {
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) fail("portLevelMtls", `'${port}' is not a port number`);
    if (!(MTLS_MODES as readonly string[]).includes(mode))
      fail(`portLevelMtls.${port}`, `'${mode}' is not one of ${MTLS_MODES.join(", ")}`);
    portLevelMtls[port] = mode as MtlsMode;
  }
  return {
    ...keyed(o),
    scope: scope(rec(o.scope, "scope"), "scope"),
    mode: oneOf(o, "mode", "", MTLS_MODES),
    portLevelMtls,
    ...errorsOf(o),
  };
}

/** Validation errors an invalid (fail-closed) policy carries; absent when there are none. */
function errorsOf(o: Rec): { errors?: string[] } {
  const errors = strList(o, "errors", "");
  return errors.length ? { errors } : {};
}

function trustBundle(o: Rec): TrustBundle {
  const rootsPem = strList(o, "rootsPem", "", (pem, path) => {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch (e) {
      fail(path, `not a PEM certificate: ${errorMessage(e)}`);
    }
    if (!cert.ca) fail(path, `certificate '${cert.subject}' is not a CA certificate`);
  });
  if (rootsPem.length === 0) fail("rootsPem", "a trust bundle needs at least one root");
  const signingRootSha256 = str(o, "signingRootSha256", "", true);
  if (!/^[0-9a-f]{64}$/.test(signingRootSha256)) fail("signingRootSha256", "not a hex SHA-256");
  return { trustDomain: str(o, "trustDomain", "", true), rootsPem, signingRootSha256 };
}

function refusedObject(o: Rec, path: string): RefusedObject {
  return {
    kind: str(o, "kind", path, true),
    namespace: str(o, "namespace", path, true),
    name: str(o, "name", path, true),
    errors: strList(o, "errors", path),
  };
}

function tracingPolicy(o: Rec, path: string): TracingPolicy {
  const key = str(o, "key", path, true);
  const name = str(o, "name", path, true);
  const namespace = str(o, "namespace", path, true);
  if (key !== `${namespace}/${name}`) fail(`${path}.key`, `'${key}' is not '${namespace}/${name}'`);
  return compact({
    key,
    name,
    namespace,
    scope: scope(rec(o.scope, `${path}.scope`), `${path}.scope`),
    samplingPercentage: optNum(o, "samplingPercentage", path, 0, 100),
    createdAt: str(o, "createdAt", path),
  });
}

function meshConfig(o: Rec): MeshConfig {
  const refused = list(o, "refused", "", refusedObject);
  const tracing = list(o, "tracing", "", tracingPolicy);
  return {
    trustDomain: str(o, "trustDomain", "", true),
    rootNamespace: str(o, "rootNamespace", "", true),
    clusterDomain: str(o, "clusterDomain", "", true),
    ...(refused.length ? { refused } : {}),
    ...(tracing.length ? { tracing } : {}),
  };
}

/** A decoded message of the given resource type as a validated model value. */
export function fromWire(kind: string, raw: unknown): never {
  const o = rec(raw, "");
  switch (kind) {
    case "Workload":
      return workload(o) as never;
    case "Service":
      return service(o) as never;
    case "AuthorizationPolicy":
      return authorizationPolicy(o) as never;
    case "PeerAuthentication":
      return peerAuthentication(o) as never;
    case "RequestAuthentication":
      return requestAuthentication(o) as never;
    case "RateLimitPolicy":
      return rateLimitPolicy(o) as never;
    case "RouteTable":
      return routeTableFromWire(o) as never;
    case "DestinationPolicy":
      return destinationPolicyFromWire(o) as never;
    case "TrustBundle":
      return trustBundle(o) as never;
    case "MeshConfig":
      return meshConfig(o) as never;
    default:
      return fail("", `unknown resource type ${kind}`);
  }
}
