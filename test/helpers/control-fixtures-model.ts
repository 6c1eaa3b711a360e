/** Fully populated model values of every resource type (every optional field set somewhere). */
import type {
  AuthorizationPolicy,
  DestinationPolicy,
  PeerAuthentication,
  RateLimitPolicy,
  RequestAuthentication,
  RouteTable,
  Service,
  Workload,
} from "../../controller/api/model.js";
import type { ResourceKind, ResourceValues } from "../../controller/api/resources.js";
import type { MeshConfig, TrustBundle } from "../../controller/api/wire-types.js";

/** A workload with every field. */
export const WORKLOAD: Workload = {
  uid: "u-1",
  name: "web-7d9f",
  namespace: "shop",
  serviceAccount: "web",
  identity: "spiffe://cluster.local/ns/shop/sa/web",
  addresses: ["10.244.1.2", "fd00::2"],
  node: "n1",
  nodeAddress: "10.250.0.11",
  labels: { app: "web", version: "v1" },
  workloadName: "web",
  canonicalName: "web",
  canonicalRevision: "v1",
  enrolled: true,
  enrolmentReason: "namespace shop has weft.dev/mesh=enabled",
  ready: true,
};

/** A service with every field. */
export const SERVICE: Service = {
  key: "shop/web",
  name: "web",
  namespace: "shop",
  hostname: "web.shop.svc.cluster.local",
  vips: ["10.96.0.10"],
  ports: [
    { name: "http", port: 80, targetPort: 8080, appProtocol: "http" },
    { port: 9000, targetPort: 9000, appProtocol: "tcp" },
  ],
  endpoints: [{ workloadUid: "u-1", address: "10.244.1.2", ready: true }],
};

/** An AuthorizationPolicy with every field. */
export const AUTHZ: AuthorizationPolicy = {
  key: "shop/allow",
  name: "allow",
  namespace: "shop",
  scope: { kind: "workload", selector: { app: "web" } },
  action: "ALLOW",
  rules: [
    {
      from: [
        {
          principals: ["cluster.local/ns/shop/sa/client"],
          notPrincipals: ["cluster.local/ns/shop/sa/evil"],
          namespaces: ["shop"],
          notNamespaces: ["other"],
          ipBlocks: ["10.0.0.0/8"],
          notIpBlocks: ["10.1.0.0/16"],
          requestPrincipals: ["https://issuer.test/alice"],
          notRequestPrincipals: ["https://issuer.test/eve"],
        },
      ],
      to: [
        {
          ports: [80],
          notPorts: [81],
          hosts: ["web"],
          notHosts: ["x"],
          methods: ["GET"],
          notMethods: ["DELETE"],
          paths: ["/api/*"],
          notPaths: ["/admin"],
        },
      ],
      when: [{ key: "request.headers[x-user]", values: ["a"], notValues: ["b"] }],
    },
  ],
  dryRun: true,
  errors: ["spec.rules[1].from[0].source.namespace: unknown field (did you mean namespaces?)"],
};

/** A RateLimitPolicy with every field. */
export const RATE_LIMIT: RateLimitPolicy = {
  key: "shop/limit",
  name: "limit",
  namespace: "shop",
  scope: { kind: "workload", selector: { app: "web" } },
  total: { requestsPerSecond: 10, burst: 10 },
  perClient: { requestsPerSecond: 2.5, burst: 5 },
  overrides: [{ clients: ["cluster.local/ns/shop/sa/client"], limit: { requestsPerSecond: 50, burst: 50 } }],
  errors: ["spec.total.requestsPerSecond: a positive number is required"],
};

/** A RequestAuthentication with every field. */
export const JWT: RequestAuthentication = {
  key: "shop/jwt",
  name: "jwt",
  namespace: "shop",
  scope: { kind: "workload", selector: { app: "web" } },
  jwtRules: [
    {
      issuer: "https://issuer.test",
      audiences: ["web"],
      jwks: '{"keys":[]}',
      fromHeaders: [{ name: "x-jwt", prefix: "Bearer " }],
      fromParams: ["token"],
      fromCookies: ["session", "__Host-jwt"],
      forwardOriginalToken: true,
      outputPayloadToHeader: "x-jwt-payload",
      outputClaimToHeaders: [
        { header: "x-jwt-claim-sub", claim: "sub" },
        { header: "x-jwt-claim-group", claim: "realm.group" },
      ],
    },
    { issuer: "https://other.test", jwksUri: "http://keys.auth.svc.cluster.local/jwks.json", fromHeaders: [{ name: "x-other" }] },
    {
      issuer: "",
      fromParams: ["t"],
      fromCookies: ["t"],
      // A marker's claim may be unreadable: the entry only drops the client's copy of the header.
      outputClaimToHeaders: [{ header: "x-jwt-claim-role", claim: "" }],
      unusable: "RequestAuthentication shop/jwt: spec.jwtRules[2].issuer: required",
    },
  ],
  errors: ["spec.jwtRules[2].issuer: required"],
};

/** A PeerAuthentication with every field. */
export const PEER: PeerAuthentication = {
  key: "shop/strict",
  name: "strict",
  namespace: "shop",
  scope: { kind: "workload", selector: { app: "web" } },
  mode: "STRICT",
  portLevelMtls: { "8080": "PERMISSIVE" },
  errors: ["spec.mtls.mdoe: unknown field (did you mean mode?)"],
};

const ops = { set: { "x-a": "1" }, add: { "x-b": "2" }, remove: ["x-c"] };

/** A route table with every field. */
export const ROUTES: RouteTable = {
  key: "VirtualService/shop/web",
  kind: "VirtualService",
  name: "web",
  namespace: "shop",
  services: ["shop/web"],
  unresolvedHosts: ["*.example.com"],
  exportTo: ["*"],
  http: [
    {
      name: "canary",
      matches: [
        {
          name: "m",
          path: { kind: "prefix", value: "/api" },
          ignorePathCase: true,
          method: { kind: "exact", value: "GET" },
          authority: { kind: "regex", value: "web(\\..*)?" },
          scheme: { kind: "exact", value: "http" },
          headers: [
            { name: "x-canary", match: { kind: "exact", value: "1" }, invert: false },
            { name: "x-debug", invert: true },
          ],
          queryParams: [{ name: "v", match: { kind: "pathPrefix", value: "/x" } }],
          port: 80,
          sourceLabels: { app: "client" },
          sourceNamespace: "shop",
        },
      ],
      destinations: [
        {
          host: "web.shop.svc.cluster.local",
          service: "shop/web",
          port: 80,
          subset: "v2",
          weight: 10,
          headers: { request: ops, response: ops },
        },
        { host: "web.shop.svc.cluster.local", service: "shop/web", subset: "v1", weight: 90 },
      ],
      rewrite: { authority: "web", pathPrefix: "/v2/api" },
      headers: { request: ops },
      timeoutMs: 5000,
      retries: { attempts: 3, perTryTimeoutMs: 1000, retryOn: ["5xx", "connect-failure"] },
      fault: { delay: { fixedDelayMs: 100, percentage: 1.5 }, abort: { httpStatus: 503, grpcStatus: "UNAVAILABLE", percentage: 0.1 } },
      mirrors: [{ destination: { host: "shadow.shop.svc.cluster.local", service: "shop/shadow", weight: 100 }, percentage: 5 }],
    },
    { matches: [], destinations: [], redirect: { scheme: "https", authority: "a", port: 443, path: "/new", statusCode: 301 }, mirrors: [] },
    { matches: [], destinations: [], redirect: { pathPrefix: "/p", statusCode: 302 }, mirrors: [] },
    { matches: [], destinations: [], directResponse: { status: 418, body: "teapot" }, mirrors: [] },
    { matches: [], destinations: [{ host: "h", weight: 1 }], rewrite: { path: "/full" }, mirrors: [] },
    {
      matches: [],
      destinations: [{ host: "h", weight: 1 }],
      rewrite: { pathRegex: { pattern: "^/a/(.*)$", substitution: "/b/\\1" } },
      mirrors: [],
    },
  ],
  tcp: [
    {
      matches: [{ port: 9000, sourceLabels: { app: "c" }, sourceNamespace: "shop", destinationSubnets: ["10.96.0.0/16"] }],
      destinations: [{ host: "web", weight: 100 }],
    },
  ],
  createdAt: "2026-01-01T00:00:00Z",
};

const tp = {
  loadBalancer: { simple: "LEAST_REQUEST" as const, warmupDurationMs: 1000 },
  connectionPool: {
    tcp: { maxConnections: 100, connectTimeoutMs: 500, idleTimeoutMs: 60_000 },
    http: {
      http1MaxPendingRequests: 10,
      http2MaxRequests: 100,
      maxRequestsPerConnection: 5,
      maxRetries: 3,
      idleTimeoutMs: 30_000,
      maxConcurrentStreams: 50,
    },
  },
  outlierDetection: {
    consecutive5xxErrors: 5,
    consecutiveGatewayErrors: 3,
    consecutiveLocalOriginFailures: 2,
    intervalMs: 10_000,
    baseEjectionTimeMs: 30_000,
    maxEjectionPercent: 50,
    minHealthPercent: 10,
  },
};

/** A destination policy with every field. */
export const DESTINATION: DestinationPolicy = {
  key: "shop/web",
  name: "web",
  namespace: "shop",
  host: "web.shop.svc.cluster.local",
  service: "shop/web",
  exportTo: ["shop"],
  workloadSelector: { app: "client" },
  trafficPolicy: {
    ...tp,
    portLevel: [{ port: 80, ...tp, loadBalancer: { consistentHash: { cookie: { name: "s", path: "/", ttlMs: 1000 } } } }],
  },
  subsets: [
    { name: "v1", labels: { version: "v1" }, trafficPolicy: { loadBalancer: { consistentHash: { header: "x-user" } }, portLevel: [] } },
    { name: "v2", labels: { version: "v2" }, trafficPolicy: { loadBalancer: { consistentHash: { sourceIp: true } }, portLevel: [] } },
    { name: "v3", labels: { version: "v3" }, trafficPolicy: { loadBalancer: { consistentHash: { queryParameter: "u" } }, portLevel: [] } },
  ],
  createdAt: "2026-01-01T00:00:00Z",
};

/** Mesh settings. */
export const MESH: MeshConfig = {
  trustDomain: "cluster.local",
  rootNamespace: "weft-system",
  clusterDomain: "cluster.local",
  refused: [{ kind: "VirtualService", namespace: "shop", name: "bad", errors: ["spec.hosts: needs at least one host"] }],
  tracing: [
    {
      key: "shop/web-tracing",
      name: "web-tracing",
      namespace: "shop",
      scope: { kind: "workload", selector: { app: "web" } },
      samplingPercentage: 12.5,
      createdAt: "2026-01-02T03:04:05Z",
    },
  ],
};

/** One fixture per resource type. */
export function fixtures(bundle: TrustBundle): { [K in ResourceKind]: ResourceValues[K] } {
  return {
    MeshConfig: MESH,
    TrustBundle: bundle,
    Workload: WORKLOAD,
    Service: SERVICE,
    AuthorizationPolicy: AUTHZ,
    PeerAuthentication: PEER,
    RequestAuthentication: JWT,
    RateLimitPolicy: RATE_LIMIT,
    DestinationPolicy: DESTINATION,
    RouteTable: ROUTES,
  };
}
