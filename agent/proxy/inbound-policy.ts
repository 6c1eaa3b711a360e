/**
 * The inbound decision, shared by HBONE (15008) and same-node delivery: is the target a pod of
 * this node in the mesh, did the peer reach the identity it asked for, and does authorization
 * allow it. Pure, so both paths decide identically and tests can table it.
 */
import { isIP } from "node:net";
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
  /** The proxy traces requests: HTTP ports then go through the HTTP server, for server spans. */
  traced?: boolean;
}

/** The HTTP work the destination's proxy must do per request on an allowed connection. */
export interface HttpDuties {
  /** Authorization needs request attributes (or dry-run/AUDIT policies want them). */
  authz: boolean;
  /** RequestAuthentication applies: tokens are verified per request. */
  jwt: boolean;
  /** RateLimitPolicy applies. */
  rateLimit: boolean;
  /** Requests get server spans (tracing is on). */
  trace: boolean;
  /**
   * The port declares no protocol: the first bytes decide. Bytes that are not HTTP get what the
   * L4 path gives them (authorization without request attributes, whose HTTP parts fail closed).
   */
  sniffed: boolean;
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
  if (!destination && view.isClashingAddress(req.target.ip)) {
    return {
      ok: false,
      status: 400,
      code: "WEFT_UNKNOWN_DESTINATION",
      flags: "CONNECT",
      reason: `destination ${req.target.ip} is claimed by more than one pod; refusing rather than guessing`,
    };
  }
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
  const protocol = req.httpCapable === true ? inboundProtocol(view, destination, req.target.port) : "tcp";
  const http = protocol !== "tcp";
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
  const trace = http && req.traced === true;
  return {
    ok: true,
    destination,
    ...(source ? { source } : {}),
    policy: decision.reason,
    ...(decision.perRequest || jwt || rateLimit || trace
      ? { http: { authz: decision.perRequest === true, jwt, rateLimit, trace, sniffed: protocol === "sniff" } }
      : {}),
    ...(decision.dryRun ? { dryRun: decision.dryRun } : {}),
  };
}

/**
 * How the destination treats a pod port, as the source does for service ports: "http" when a
 * Service declares it HTTP (appProtocol or port name), "sniff" when a Service declares no
 * protocol (the first bytes decide), "tcp" when declared TCP or no Service names it.
 */
export function inboundProtocol(view: MeshView, destination: Workload, port: number): "http" | "sniff" | "tcp" {
  for (const s of view.servicesOf(destination)) {
    for (const p of s.ports) if (p.targetPort === port && p.appProtocol !== "tcp") return p.appProtocol === "auto" ? "sniff" : "http";
  }
  return "tcp";
}

/**
 * Decides a captured plaintext connection (15006): the destination must be an enrolled pod of this
 * node whose mTLS mode for the port is not STRICT (portLevelMtls honoured), and authorization runs
 * with no peer identity, so a rule that names principals or namespaces never matches it.
 */
export function checkPlaintext(view: MeshView, req: { sourceIp: string; target: SocketAddr }): InboundDecision {
  const destination = view.workloadByAddress(req.target.ip);
  const claimed = view.workloadByAddress(req.sourceIp);
  const source = claimed?.enrolled ? undefined : claimed;
  if (!destination || destination.node !== view.nodeName || !destination.enrolled) {
    return {
      ok: false,
      status: 400,
      code: "WEFT_UNKNOWN_DESTINATION",
      flags: "CONNECT",
      reason: view.isClashingAddress(req.target.ip)
        ? `destination ${req.target.ip} is claimed by more than one pod; refusing rather than guessing`
        : `plaintext to ${req.target.ip} reached the proxy but it is no enrolled pod of node ${view.nodeName}`,
      ...(source ? { source } : {}),
    };
  }
  const mtls = view.mtlsModeFor(destination, req.target.port);
  if (mtls.mode === "STRICT") {
    return {
      ok: false,
      status: 403,
      code: "WEFT_UNAUTHENTICATED",
      flags: "DENY",
      reason: `plaintext refused: mTLS is STRICT for ${destination.namespace}/${destination.name} port ${req.target.port} (PeerAuthentication ${mtls.source})`,
      destination,
      ...(source ? { source } : {}),
    };
  }
  // Plaintext is spliced, never read request by request: where tokens must be checked or requests
  // counted, it would pass both, so it is refused (as an ALLOW rule with HTTP parts refuses it).
  if (inboundProtocol(view, destination, req.target.port) !== "tcp") {
    const duty =
      view.jwtRulesFor(destination).length > 0
        ? "RequestAuthentication"
        : view.rateLimitsFor(destination).length > 0
          ? "RateLimitPolicy"
          : undefined;
    if (duty)
      return {
        ok: false,
        status: 403,
        code: "WEFT_UNAUTHENTICATED",
        flags: "DENY",
        reason: `plaintext refused: a ${duty} applies to ${destination.namespace}/${destination.name} port ${req.target.port}, and plaintext is not checked request by request (use the mesh's mTLS)`,
        destination,
        ...(source ? { source } : {}),
      };
  }
  const decision = authorize(view.authorizationPoliciesFor(destination), {
    sourceIp: req.sourceIp,
    destinationIp: req.target.ip,
    destinationPort: req.target.port,
  });
  if (!decision.allowed)
    return {
      ok: false,
      status: 403,
      code: "WEFT_AUTHZ_DENIED",
      flags: "DENY",
      reason: decision.reason,
      destination,
      ...(source ? { source } : {}),
    };
  return { ok: true, destination, ...(source ? { source } : {}), policy: decision.reason };
}

/** Why a connection allowed with an older view is refused by the view in force now. */
export interface LateRefusal {
  status: number;
  code: ErrorCode;
  flags: ResponseFlag;
  reason: string;
}

/**
 * Decides again, with the view in force now, a connection allowed for L4 delivery with an older
 * view before an await (the dial to the pod). A policy change re-checks the connections the proxy
 * tracks, and this one was not tracked yet: without this, a DENY that lands while the pod is being
 * dialled would never reach it. Null when the view is unchanged or it is still allowed at L4.
 */
export function refusedSince(decidedWith: MeshView, now: MeshView, decide: (view: MeshView) => InboundDecision): LateRefusal | null {
  if (now === decidedWith) return null;
  const d = decide(now);
  if (!d.ok) return { status: d.status, code: d.code, flags: d.flags, reason: `policy changed while connecting: ${d.reason}` };
  if (d.http)
    return {
      status: 503,
      code: "WEFT_UNAVAILABLE",
      flags: "CONNECT",
      reason: "policy changed while connecting: it now needs HTTP attributes, checked by the destination's HTTP server (reconnect)",
    };
  return null;
}

/** The source address policy sees for an HBONE stream, or why the stream is refused. */
export type Attribution = { ok: true; ip: string; trusted: boolean } | { ok: false; reason: string };

/**
 * Who an HBONE stream comes from. The `forwarded` header is the peer's claim: it is believed only
 * when it names a workload whose identity is the authenticated peer and whose node is the TCP peer
 * (a node proxy speaking for one of its own pods); otherwise the TCP peer's address is the source.
 * A header that is not an IP address is refused: input we cannot read never widens access.
 */
export function attributeSource(view: MeshView, header: string | string[] | undefined, peerIdentity: string, peerIp: string): Attribution {
  const peer = peerIp.startsWith("::ffff:") && isIP(peerIp.slice(7)) === 4 ? peerIp.slice(7) : peerIp;
  if (header === undefined) return { ok: true, ip: peer, trusted: false };
  const claimed = forwardedFor(header);
  if (!claimed || isIP(claimed) === 0)
    return { ok: false, reason: `forwarded header ${JSON.stringify(header)} does not name an IP address` };
  const w = view.workloadByAddress(claimed);
  if (w && w.identity === peerIdentity && w.nodeAddress === peer) return { ok: true, ip: claimed, trusted: true };
  return { ok: true, ip: peer, trusted: false };
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
