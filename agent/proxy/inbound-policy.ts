/**
 * The inbound decision, shared by HBONE (15008) and same-node delivery: is the target a pod of
 * this node in the mesh, did the peer reach the identity it asked for, and does authorization
 * allow it. Pure, so both paths decide identically and tests can table it.
 */
import type { ErrorCode } from "../../common/errors.js";
import type { Workload } from "../../controller/api/model.js";
import type { MeshView } from "../state/view.js";
import type { ResponseFlag } from "../telemetry/labels.js";
import { authorize, authorizeStaged, type ConnectionFacts, type DryRunOutcome, l7Note, type StagedDecision } from "./authz.js";
import type { SocketAddr } from "./request.js";

/** What arrived: who (authenticated), from where, to which pod address. */
export interface InboundRequest {
  sourceIdentity: string;
  sourceIp: string;
  target: SocketAddr;
  /** The identity the client asked the server to present (SNI); absent on same-node delivery. */
  presentedIdentity?: string;
  /**
   * The caller can run the destination's HTTP server on this connection: on an HTTP port,
   * policies with HTTP attributes are then decided per request instead of failing closed.
   */
  httpCapable?: boolean;
}

/** The HTTP work the destination's proxy must do per request on an allowed connection. */
export interface HttpDuties {
  /** Authorization needs request attributes (or dry-run/AUDIT policies want them). */
  authz: boolean;
  /** RequestAuthentication applies: tokens are verified per request. */
  jwt: boolean;
  /** RateLimitPolicy applies. */
  rateLimit: boolean;
}

/** Allowed (with the policy outcome) or refused with an HTTP status and why. */
export type InboundDecision =
  | {
      ok: true;
      destination: Workload;
      source?: Workload;
      policy: string;
      /** Present when the destination's HTTP server must handle the connection. */
      http?: HttpDuties;
      dryRun?: DryRunOutcome[];
    }
  | { ok: false; status: number; code: ErrorCode; flags: ResponseFlag; reason: string; destination?: Workload; source?: Workload };

/** Decides an inbound tunnel request. */
export function checkInbound(view: MeshView, req: InboundRequest): InboundDecision {
  const destination = view.workloadByAddress(req.target.ip);
  const claimed = view.workloadByAddress(req.sourceIp);
  // Only trust the source workload the forwarded address names if its identity is the authenticated one.
  const source = claimed && claimed.identity === req.sourceIdentity ? claimed : undefined;
  if (!destination) {
    return {
      ok: false,
      status: 400,
      code: "WEFT_UNKNOWN_DESTINATION",
      flags: "CONNECT",
      reason: `unknown destination ${req.target.ip}`,
      ...(source ? { source } : {}),
    };
  }
  if (destination.node !== view.nodeName) {
    return {
      ok: false,
      status: 400,
      code: "WEFT_WRONG_NODE",
      flags: "CONNECT",
      reason: `destination ${destination.namespace}/${destination.name} is on node ${destination.node}, not ${view.nodeName}`,
      destination,
    };
  }
  if (!destination.enrolled) {
    return {
      ok: false,
      status: 400,
      code: "WEFT_NOT_IN_MESH",
      flags: "CONNECT",
      reason: `destination ${destination.namespace}/${destination.name} is not in the mesh`,
      destination,
    };
  }
  if (req.presentedIdentity !== undefined && req.presentedIdentity !== destination.identity) {
    return {
      ok: false,
      status: 421,
      code: "WEFT_IDENTITY_MISMATCH",
      flags: "CONNECT",
      reason: `connection authenticated as ${req.presentedIdentity} cannot reach ${destination.namespace}/${destination.name} (${destination.identity})`,
      destination,
    };
  }
  const policies = view.authorizationPoliciesFor(destination);
  const facts: ConnectionFacts = {
    sourceIdentity: req.sourceIdentity,
    sourceIp: req.sourceIp,
    destinationIp: req.target.ip,
    destinationPort: req.target.port,
  };
  const http = req.httpCapable === true && isHttpPort(view, destination, req.target.port);
  const decision: StagedDecision = http ? authorizeStaged(policies, facts) : authorize(policies, facts);
  if (!decision.allowed) {
    const note = http ? undefined : l7Note(policies, facts);
    return {
      ok: false,
      status: 403,
      code: "WEFT_AUTHZ_DENIED",
      flags: "DENY",
      reason: note ? `${decision.reason} (${note})` : decision.reason,
      destination,
      ...(source ? { source } : {}),
    };
  }
  const jwt = http && view.jwtRulesFor(destination).length > 0;
  const rateLimit = http && view.rateLimitsFor(destination).length > 0;
  return {
    ok: true,
    destination,
    ...(source ? { source } : {}),
    policy: decision.reason,
    ...(decision.perRequest || jwt || rateLimit ? { http: { authz: decision.perRequest === true, jwt, rateLimit } } : {}),
    ...(decision.dryRun ? { dryRun: decision.dryRun } : {}),
  };
}

/** True when the pod port is a target port of an HTTP-declared (or undeclared, sniffed) Service port. */
export function isHttpPort(view: MeshView, destination: Workload, port: number): boolean {
  for (const s of view.servicesOf(destination)) {
    for (const p of s.ports) if (p.targetPort === port && p.appProtocol !== "tcp") return p.appProtocol !== "auto";
  }
  return false;
}

/** Parses an RFC 7239 `forwarded` header's first `for=` address (IPv4, or [IPv6] quoted). */
export function forwardedFor(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  const m = /(?:^|[;,\s])for=("?)\[?([0-9a-fA-F.:]+)\]?(?::\d+)?\1/i.exec(value);
  return m?.[2];
}

/** Parses an HBONE `:authority` ("ip:port" or "[v6]:port"). */
export function parseAuthority(authority: string | undefined): SocketAddr | null {
  if (!authority) return null;
  const m = /^\[?([0-9a-fA-F.:]+?)\]?:(\d{1,5})$/.exec(authority);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return { ip: m[1] as string, port };
}
