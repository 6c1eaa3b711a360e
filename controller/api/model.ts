/**
 * The mesh model: what the controller computes from its sources and pushes to agents, and what
 * the agent's proxy reads. Plain data only (no classes, no Maps), so a snapshot can be cloned to
 * proxy worker threads and dumped by the admin API as it is.
 */

/** Default SPIFFE trust domain. */
export const DEFAULT_TRUST_DOMAIN = "cluster.local";

/** A pod, as the mesh sees it. */
export interface Workload {
  /** Kubernetes pod uid. */
  uid: string;
  name: string;
  namespace: string;
  serviceAccount: string;
  /** spiffe://<trust-domain>/ns/<namespace>/sa/<serviceAccount> */
  identity: string;
  /** Pod IPs (IPv4 first). */
  addresses: string[];
  /** Node name (spec.nodeName). */
  node: string;
  /** Where the node's HBONE listener (15008) is reached: the node's InternalIP (status.hostIP). */
  nodeAddress: string;
  labels: Record<string, string>;
  /** Workload name for telemetry (owning Deployment etc., else the pod name). */
  workloadName: string;
  /** Istio's canonical service name (service.istio.io/canonical-name, app.kubernetes.io/name, app, else workloadName). */
  canonicalName: string;
  /** Istio's canonical revision (service.istio.io/canonical-revision, app.kubernetes.io/version, version, else "latest"). */
  canonicalRevision: string;
  /** In the mesh: its connections are captured and it is reached over HBONE. */
  enrolled: boolean;
  /** Why enrolled or not, for operators ("namespace shop has weft.dev/mesh=enabled"). */
  enrolmentReason: string;
  /** Ready to receive traffic. */
  ready: boolean;
}

/**
 * Application protocol of a service port (from appProtocol or the port name). "auto": the port
 * declares nothing, so the proxy sniffs the client's first bytes (Istio's protocol detection).
 */
export type AppProtocol = "tcp" | "http" | "http2" | "grpc" | "auto";

/** A port of a service. */
export interface ServicePort {
  name?: string;
  port: number;
  /** Endpoint port (EndpointSlice port matched by name, else the Service's numeric targetPort). */
  targetPort: number;
  appProtocol: AppProtocol;
}

/** One backend of a service. */
export interface Endpoint {
  workloadUid: string;
  address: string;
  ready: boolean;
}

/** A Kubernetes Service. */
export interface Service {
  /** "<namespace>/<name>" */
  key: string;
  name: string;
  namespace: string;
  /** <name>.<namespace>.svc.<cluster domain> */
  hostname: string;
  vips: string[];
  ports: ServicePort[];
  endpoints: Endpoint[];
}

/** Which workloads a policy applies to. */
export interface PolicyScope {
  /**
   * "mesh" for the root namespace, "namespace" without selector, "workload" with one. A mesh
   * AuthorizationPolicy may carry a selector: it then applies to matching workloads in every
   * namespace (Istio's root-namespace semantics).
   */
  kind: "mesh" | "namespace" | "workload";
  /** matchLabels of spec.selector (workload scope, or mesh scope with a selector). */
  selector?: Record<string, string>;
}

/** security.istio.io AuthorizationPolicy source (all present fields must match). */
export interface AuthzSource {
  principals?: string[];
  notPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  /** JWT principals ("<iss>/<sub>"), from RequestAuthentication: HTTP only. */
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
}

/** AuthorizationPolicy operation; methods/paths/hosts are L7 and need an HTTP-aware path. */
export interface AuthzOperation {
  ports?: number[];
  notPorts?: number[];
  hosts?: string[];
  notHosts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}

/** AuthorizationPolicy condition (`when`). */
export interface AuthzCondition {
  key: string;
  values?: string[];
  notValues?: string[];
}

/** One rule: any `from` matches AND any `to` matches AND every `when` matches (missing = any). */
export interface AuthzRule {
  from: AuthzSource[];
  to: AuthzOperation[];
  when: AuthzCondition[];
}

/** A validated AuthorizationPolicy. */
export interface AuthorizationPolicy {
  /** "<namespace>/<name>" */
  key: string;
  name: string;
  namespace: string;
  scope: PolicyScope;
  action: "ALLOW" | "DENY" | "AUDIT";
  /** ALLOW with no rules allows nothing; a rule {} matches everything (Istio semantics). */
  rules: AuthzRule[];
  /** `istio.io/dry-run: "true"`: evaluated and counted, never enforced. */
  dryRun?: boolean;
  /**
   * Why the object failed validation (field path: problem). Present only then; the policy is
   * already in its fail-closed form (ALLOW with fewer or no rules, or DENY of the whole scope).
   */
  errors?: string[];
}

/** Where a JWT is read from: a header, with an optional value prefix ("Bearer "). */
export interface JwtHeader {
  name: string;
  prefix?: string;
}

/** A claim copied to a header (`claim` may name a nested claim with "."); `header` is lower case. */
export interface JwtClaimHeader {
  header: string;
  claim: string;
}

/** One RequestAuthentication jwtRule. */
export interface JwtRule {
  issuer: string;
  audiences?: string[];
  /** Inline JWKS document (JSON). */
  jwks?: string;
  /** Where the JWKS is fetched from: a service in the mesh. */
  jwksUri?: string;
  fromHeaders?: JwtHeader[];
  fromParams?: string[];
  /** Cookies a token is read from, after fromHeaders and fromParams (Envoy's order). */
  fromCookies?: string[];
  forwardOriginalToken?: boolean;
  outputPayloadToHeader?: string;
  /**
   * Headers written from a verified token's claims (Envoy's claim_to_headers). Every request the
   * rule applies to loses the client's own copies, token or not: the app trusts them as the mesh's.
   */
  outputClaimToHeaders?: JwtClaimHeader[];
  /**
   * Why the rule cannot be used (object, field, problem). Such a rule has no keys but still turns
   * verification on: every token of its issuer fails, or every token at its locations when its
   * issuer could not be read (issuer ""). A request without a token is unaffected.
   */
  unusable?: string;
}

/** A validated security.istio.io RequestAuthentication. */
export interface RequestAuthentication {
  key: string;
  name: string;
  namespace: string;
  scope: PolicyScope;
  jwtRules: JwtRule[];
  /** Why the object failed validation; invalid rules are kept as unusable markers (see JwtRule.unusable). */
  errors?: string[];
}

/** A token bucket: refilled at requestsPerSecond, holding at most burst tokens. */
export interface RateLimit {
  requestsPerSecond: number;
  burst: number;
}

/** Per-client limits for the named client identities (Istio principals), instead of the default. */
export interface RateLimitOverride {
  clients: string[];
  limit: RateLimit;
}

/**
 * The tracing part of a validated telemetry.istio.io Telemetry. Istio merges Telemetry from the
 * root namespace, the workload's namespace and a selector-scoped one, the more specific setting
 * winning field by field; an unset field inherits.
 */
export interface TracingPolicy {
  key: string;
  name: string;
  namespace: string;
  scope: PolicyScope;
  /** spec.tracing[0].randomSamplingPercentage, 0–100 (absent: inherited). */
  samplingPercentage?: number;
  /** Oldest first breaks ties between two policies of the same scope, as Istio does. */
  createdAt: string;
}

/** A validated weft.dev/v1alpha1 RateLimitPolicy: local rate limits at the destination's proxy. */
export interface RateLimitPolicy {
  key: string;
  name: string;
  namespace: string;
  scope: PolicyScope;
  /** Shared by every client of each selected workload. */
  total?: RateLimit;
  /** Each client identity's own bucket. */
  perClient?: RateLimit;
  overrides: RateLimitOverride[];
  errors?: string[];
}

/** mTLS mode of PeerAuthentication. */
export type MtlsMode = "STRICT" | "PERMISSIVE" | "DISABLE" | "UNSET";

/** A validated PeerAuthentication. */
export interface PeerAuthentication {
  key: string;
  name: string;
  namespace: string;
  scope: PolicyScope;
  mode: MtlsMode;
  /** Per-port overrides (workload scope only, as in Istio). */
  portLevelMtls: Record<string, MtlsMode>;
  /** Why the object failed validation; present only then, with mode already STRICT (fail closed). */
  errors?: string[];
}

// ---------------------------------------------------------------------------------------------
// Routing and traffic policy, normalized from Istio VirtualService / DestinationRule and Gateway
// API HTTPRoute (GAMMA: parentRef to a Service). Durations are milliseconds, percentages 0–100.
// Matching semantics follow Istio: rules in order, first match wins; a rule with no matches
// matches everything; within one HttpMatch every present field must match.
// ---------------------------------------------------------------------------------------------

/**
 * How a string is compared. Regexes use RE2-compatible syntax and must match the whole value.
 * "pathPrefix" is Gateway API's PathPrefix: whole path segments, so "/foo" matches "/foo" and
 * "/foo/bar" but not "/foobar" (a trailing "/" in the value is ignored).
 */
export interface StringMatch {
  kind: "exact" | "prefix" | "regex" | "pathPrefix";
  value: string;
}

/** A request header condition. */
export interface HeaderMatch {
  /** Lower-case header name. */
  name: string;
  /** Absent: the header only has to be present. */
  match?: StringMatch;
  /** True: the request must NOT carry a matching header (VirtualService withoutHeaders). */
  invert: boolean;
}

/** A query parameter condition. */
export interface QueryParamMatch {
  name: string;
  match: StringMatch;
}

/** One way a request can match a rule (all present fields must match). */
export interface HttpMatch {
  name?: string;
  path?: StringMatch;
  /** Compare the path case-insensitively (VirtualService ignoreUriCase). */
  ignorePathCase: boolean;
  method?: StringMatch;
  authority?: StringMatch;
  scheme?: StringMatch;
  headers: HeaderMatch[];
  queryParams: QueryParamMatch[];
  /** Service port the request was sent to. */
  port?: number;
  /** Labels the calling workload must carry (VirtualService sourceLabels). */
  sourceLabels?: Record<string, string>;
  /** Namespace the calling workload must be in. */
  sourceNamespace?: string;
}

/** Header edits. */
export interface HeaderOperations {
  set: Record<string, string>;
  add: Record<string, string>;
  remove: string[];
}

/** Header edits on the request and on the response. */
export interface HeaderRewrite {
  request?: HeaderOperations;
  response?: HeaderOperations;
}

/** A weighted destination of a route. */
export interface RouteDestination {
  /** Host as written, expanded to the FQDN when it names a known Service. */
  host: string;
  /** "<namespace>/<name>" when the host is a known Service. */
  service?: string;
  /** Service port; absent means the port the request came in on. */
  port?: number;
  /** DestinationRule subset. */
  subset?: string;
  /** Relative weight (destinations of a rule need not sum to 100). */
  weight: number;
  headers?: HeaderRewrite;
}

/** Retries of a route. */
export interface RetryPolicy {
  /** Retries after the first try; 0 disables. */
  attempts: number;
  perTryTimeoutMs?: number;
  /** Envoy-style conditions ("5xx", "gateway-error", "connect-failure", "retriable-status-codes", "503", …). */
  retryOn: string[];
}

/** Fault injection of a route. */
export interface FaultInjection {
  delay?: { fixedDelayMs: number; percentage: number };
  abort?: { httpStatus?: number; grpcStatus?: string; percentage: number };
}

/** Mirroring a share of requests to another destination (responses ignored). */
export interface MirrorPolicy {
  destination: RouteDestination;
  percentage: number;
}

/** Answer with a redirect instead of forwarding. */
export interface HttpRedirect {
  scheme?: string;
  authority?: string;
  port?: number;
  /** Replace the whole path. */
  path?: string;
  /** Replace the matched path prefix. */
  pathPrefix?: string;
  statusCode: number;
}

/** Rewrite before forwarding. */
export interface HttpRewrite {
  authority?: string;
  /** Replace the whole path. */
  path?: string;
  /** Replace the matched path prefix. */
  pathPrefix?: string;
  /** Regex substitution on the path. */
  pathRegex?: { pattern: string; substitution: string };
}

/** Answer directly. */
export interface DirectResponse {
  status: number;
  body?: string;
}

/** One HTTP routing rule. */
export interface HttpRouteRule {
  name?: string;
  /** Any one must match; empty matches every request. */
  matches: HttpMatch[];
  /** Weighted destinations; empty only with redirect or directResponse. */
  destinations: RouteDestination[];
  redirect?: HttpRedirect;
  directResponse?: DirectResponse;
  rewrite?: HttpRewrite;
  headers?: HeaderRewrite;
  /** Whole-request timeout; 0 disables. */
  timeoutMs?: number;
  retries?: RetryPolicy;
  fault?: FaultInjection;
  mirrors: MirrorPolicy[];
}

/** One TCP routing rule (VirtualService tcp). */
export interface TcpRouteRule {
  /** Any one must match; empty matches every connection. */
  matches: { port?: number; sourceLabels?: Record<string, string>; sourceNamespace?: string; destinationSubnets?: string[] }[];
  destinations: RouteDestination[];
}

/** The routes one VirtualService or HTTPRoute defines for its services. */
export interface RouteTable {
  /** "<kind>/<namespace>/<name>" */
  key: string;
  kind: "VirtualService" | "HTTPRoute";
  name: string;
  namespace: string;
  /** Services ("<namespace>/<name>") whose traffic these rules route. */
  services: string[];
  /** Hosts as written that are not known Services (kept for dumps; not routed). */
  unresolvedHosts: string[];
  /**
   * Namespaces whose clients use these routes: "*" all. VirtualService exportTo ("." resolved
   * to its own namespace); an HTTPRoute in its Service's namespace is a producer route (all),
   * elsewhere a consumer route (its own namespace only), as GAMMA defines.
   */
  exportTo: string[];
  http: HttpRouteRule[];
  tcp: TcpRouteRule[];
  /** creationTimestamp: among several tables for one service the oldest wins, as in Istio. */
  createdAt: string;
}

/** Load balancing of a destination. */
export interface LoadBalancerSettings {
  simple?: "ROUND_ROBIN" | "LEAST_REQUEST" | "RANDOM" | "PASSTHROUGH" | "UNSPECIFIED";
  /** Session affinity: exactly one key source is set. */
  consistentHash?: {
    header?: string;
    cookie?: { name: string; path?: string; ttlMs?: number };
    sourceIp?: boolean;
    queryParameter?: string;
  };
  warmupDurationMs?: number;
}

/** Connection limits of a destination. */
export interface ConnectionPoolSettings {
  tcp?: { maxConnections?: number; connectTimeoutMs?: number; idleTimeoutMs?: number };
  http?: {
    http1MaxPendingRequests?: number;
    http2MaxRequests?: number;
    maxRequestsPerConnection?: number;
    maxRetries?: number;
    idleTimeoutMs?: number;
    maxConcurrentStreams?: number;
  };
}

/** Passive health checking (ejection of failing endpoints). */
export interface OutlierDetection {
  consecutive5xxErrors?: number;
  consecutiveGatewayErrors?: number;
  consecutiveLocalOriginFailures?: number;
  intervalMs?: number;
  baseEjectionTimeMs?: number;
  maxEjectionPercent?: number;
  minHealthPercent?: number;
}

/** Traffic policy for one port of a destination. */
export interface PortTrafficPolicy {
  port: number;
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
}

/** Traffic policy of a destination or subset. */
export interface TrafficPolicy {
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
  portLevel: PortTrafficPolicy[];
}

/** A named group of a service's endpoints, selected by labels. */
export interface Subset {
  name: string;
  labels: Record<string, string>;
  trafficPolicy?: TrafficPolicy;
}

/** A validated DestinationRule. */
export interface DestinationPolicy {
  /** "<namespace>/<name>" */
  key: string;
  name: string;
  namespace: string;
  /** Host as written, expanded to the FQDN when it names a known Service. */
  host: string;
  /** "<namespace>/<name>" when the host is a known Service. */
  service?: string;
  /** Namespaces whose clients use it ("*" all), as RouteTable.exportTo. */
  exportTo: string[];
  /** Only clients with these labels use it (DestinationRule workloadSelector). */
  workloadSelector?: Record<string, string>;
  trafficPolicy?: TrafficPolicy;
  subsets: Subset[];
  createdAt: string;
}

/** Everything an agent holds: the unit the state updater publishes. */
export interface MeshSnapshotData {
  /** Changes whenever any resource changes (the last ACKed version per type, joined). */
  version: string;
  /** This agent's node. */
  nodeName: string;
  trustDomain: string;
  /** Namespace whose policies apply mesh-wide (Istio's istio-system; weft's weft-system). */
  rootNamespace: string;
  workloads: Workload[];
  services: Service[];
  authorizationPolicies: AuthorizationPolicy[];
  peerAuthentications: PeerAuthentication[];
  /** JWT rules (RequestAuthentication). Optional only so older fixtures stay valid. */
  requestAuthentications?: RequestAuthentication[];
  /** Local rate limits (RateLimitPolicy). Optional like requestAuthentications. */
  rateLimitPolicies?: RateLimitPolicy[];
  /** Tracing settings (Telemetry), from the MeshConfig. Optional like requestAuthentications. */
  tracingPolicies?: TracingPolicy[];
  /**
   * HTTP/TCP routing per service (VirtualService, HTTPRoute). Always set in snapshots the agent
   * publishes; optional only so fixtures written before routes existed stay valid.
   */
  routes?: RouteTable[];
  /** Traffic policies per destination (DestinationRule). Always set by the agent, like routes. */
  destinationPolicies?: DestinationPolicy[];
  /** Routing objects the controller refused as invalid, with why (absent: none). */
  refused?: { kind: string; namespace: string; name: string; errors: string[] }[];
}

/** SPIFFE id of a service account. */
export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** Parses a SPIFFE id of the ns/sa form; null when it is not one. */
export function parseSpiffeId(id: string): { trustDomain: string; namespace: string; serviceAccount: string } | null {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id);
  if (!m) return null;
  return { trustDomain: m[1] as string, namespace: m[2] as string, serviceAccount: m[3] as string };
}

/**
 * Headers an outputClaimToHeaders entry may not name: framing and routing headers the proxy
 * itself reads or writes, which a claim value (or their removal) would change the meaning of.
 */
const PROXY_OWNED_HEADERS = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "upgrade",
  "expect",
]);

/** Why a name cannot be an outputClaimToHeaders header (Istio's `^[-_A-Za-z0-9]+$`), or undefined when it can. */
export function claimHeaderProblem(name: string): string | undefined {
  if (!/^[-_A-Za-z0-9]+$/.test(name)) return `'${name}' is not a header name (letters, digits, '-' and '_' only)`;
  if (PROXY_OWNED_HEADERS.has(name.toLowerCase())) return `'${name}' is a header the proxy owns (framing or routing)`;
  return undefined;
}

/** Why a name cannot be a fromCookies cookie (an RFC 6265 cookie-name: an HTTP token), or undefined when it can. */
export function cookieNameProblem(name: string): string | undefined {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name) ? undefined : `'${name}' is not a cookie name (an RFC 6265 token)`;
}
