/**
 * `weft explain`: a dry run of what this node would do with one connection from a local pod,
 * made of the very decisions the data path takes — the connect hook's capture rules (mirrored from
 * bpf/connect.c), `buildRequest` (outbound) and `checkInbound` (destination side) — over the
 * agent's current view. No I/O: the admin endpoint and the CLI supply the facts.
 *
 * A service has several endpoints and the proxy picks one at random, so every ready endpoint is
 * explained. A destination on another node is judged by that node's agent: this agent only holds
 * the policies of its own pods, so it says what it knows and hands the CLI a query for the
 * destination's agent (`explainInbound` there).
 */
import type { Workload } from "../controller/api/model.js";
import {
  addr,
  type CaptureFacts,
  type CaptureVerdict,
  captureVerdict,
  ExplainError,
  findPod,
  ipv4Of,
  podName,
  resolveDestination,
} from "./admin-explain-input.js";
import { inboundModeOf } from "./capture/desired.js";
import { explainHttp, type HttpExplanation, type HttpSample } from "./explain-http.js";
import type { CertificateStatus } from "./identity/manager.js";
import { checkInbound, checkPlaintext } from "./proxy/inbound-policy.js";
import { buildRequest, type EndpointPicker, type OutboundRequest, randomPicker, type SocketAddr } from "./proxy/request.js";
import type { InboundMode } from "./redirect/types.js";
import type { EffectiveMtls, MeshView } from "./state/view.js";

/** How a connection ends up. */
export type Outcome =
  /** Through the mesh, authorization allows it. */
  | "allowed"
  /** An AuthorizationPolicy denies it. */
  | "denied"
  /** The proxy or the destination's agent refuses it for another reason. */
  | "refused"
  /** Captured but sent as plain TCP: the destination is outside the mesh. */
  | "passthrough"
  /** Not captured; a STRICT guard drops the plaintext SYN at the destination. */
  | "dropped"
  /** Not captured; reaches the destination directly in plaintext. */
  | "direct"
  /** Decided by the destination node's agent, which was not asked. */
  | "remote";

/** What the destination side needs to decide: the same facts the inbound listener has. */
export interface InboundQuery {
  /** "mesh": HBONE or same-node delivery; "plaintext": a connection that bypassed the proxy. */
  kind: "mesh" | "plaintext";
  /** Authenticated source identity (mesh only). */
  sourceIdentity?: string;
  sourceIp: string;
  /** Destination pod "ip:port". */
  target: string;
  /** Identity the source asked the destination to present (SNI); remote mesh connections only. */
  presentedIdentity?: string;
}

/** The destination side's decision. */
export interface InboundVerdict {
  /** The destination's node. */
  node: string;
  /** Node whose agent evaluated it; absent when nobody did (yet). */
  evaluatedBy?: string;
  allowed?: boolean;
  /** HTTP status the HBONE server answers with when it refuses. */
  status?: number;
  /** The proxy's own words (what its access log prints as `policy`). */
  reason?: string;
  /** AuthorizationPolicies applying to the destination, as far as the evaluating agent knows. */
  policies: { key: string; action: string }[];
  mtls?: EffectiveMtls;
  guard?: InboundMode;
  note?: string;
  query: InboundQuery;
}

/** One way the connection can go (one per ready endpoint of a service). */
export interface Candidate {
  /** Where the bytes go ("ip:port"). */
  target: string;
  /** Destination workload "ns/name", when known. */
  workload?: string;
  node?: string;
  path: "hbone" | "same-node" | "passthrough" | "reject" | "direct";
  /** The route in words. */
  detail: string;
  /** Destination node's HBONE listener (remote hbone). */
  hbone?: string;
  expectedIdentity?: string;
  inbound?: InboundVerdict;
  outcome: Outcome;
  /** The outcome and why, one line. */
  why: string;
}

/** The whole dry run. */
export interface Explanation {
  /** The agent that explained it. */
  node: string;
  /** Mesh config version the view holds. */
  version: string;
  source: {
    pod: string;
    ip: string;
    node: string;
    identity: string;
    enrolled: boolean;
    enrolmentReason: string;
    /** State of the source identity's certificate on this node. */
    certificate: string;
  };
  destination: {
    input: string;
    ip: string;
    port: number;
    service?: { key: string; hostname: string; port: number; targetPort: number; endpoints: number; readyEndpoints: number };
    workload?: string;
  };
  capture: CaptureVerdict;
  /** For an HTTP service port: what the router does with the sample request. */
  http?: HttpExplanation;
  /** How one candidate is chosen when there are several. */
  selection?: string;
  candidates: Candidate[];
  outcome: Outcome | "depends";
  summary: string;
}

function policiesOf(view: MeshView, w: Workload): { key: string; action: string }[] {
  // A dry-run policy is shown, marked: it is evaluated and counted but never enforced.
  return view.authorizationPoliciesFor(w).map((p) => ({ key: p.key, action: p.dryRun ? `${p.action}, dry-run` : p.action }));
}

/**
 * The destination side's decision, evaluated by the agent of the destination's node: the same
 * checkInbound its HBONE server and same-node delivery run, or for plaintext the guard's rule.
 */
export function explainInbound(view: MeshView, q: InboundQuery): InboundVerdict {
  const m = /^(.+):(\d{1,5})$/.exec(q.target);
  const target: SocketAddr = { ip: m?.[1] ?? q.target, port: Number(m?.[2] ?? 0) };
  const dest = view.workloadByAddress(target.ip);
  const base: InboundVerdict = { node: dest?.node ?? view.nodeName, evaluatedBy: view.nodeName, policies: [], query: q };
  if (!dest || dest.node !== view.nodeName) {
    return {
      ...base,
      allowed: false,
      status: 400,
      reason: dest ? `destination ${podName(dest)} is on node ${dest.node}, not ${view.nodeName}` : `unknown destination ${target.ip}`,
    };
  }
  const extra = { policies: policiesOf(view, dest), mtls: view.mtlsModeFor(dest, target.port), guard: inboundModeOf(view, dest) };
  if (q.kind === "plaintext") {
    if (!dest.enrolled)
      return { ...base, ...extra, allowed: true, reason: `destination ${podName(dest)} is not in the mesh: plain TCP, no policy` };
    // Captured to the node proxy's 15006 and decided there (portLevelMtls, then authorization).
    const p = checkPlaintext(view, { sourceIp: q.sourceIp, target });
    return p.ok
      ? {
          ...base,
          ...extra,
          allowed: true,
          reason: `plaintext captured to 15006 and accepted (mTLS ${extra.mtls.mode} from ${extra.mtls.source}): ${p.policy}`,
        }
      : { ...base, ...extra, allowed: false, status: p.status, reason: `plaintext captured to 15006 and refused: ${p.reason}` };
  }
  const d = checkInbound(view, {
    sourceIdentity: q.sourceIdentity ?? "",
    sourceIp: q.sourceIp,
    target,
    ...(q.presentedIdentity !== undefined ? { presentedIdentity: q.presentedIdentity } : {}),
    httpCapable: true,
  });
  return d.ok
    ? { ...base, ...extra, allowed: true, reason: d.policy }
    : { ...base, ...extra, allowed: false, status: d.status, reason: d.reason };
}

/** The outcome and one-line why of a candidate whose destination side is (or is not) known. */
export function settle(c: Candidate): Candidate {
  const v = c.inbound;
  // Without a destination side (refused before a tunnel could open) the candidate is settled already.
  if (!v) return c;
  if (c.path === "hbone" || c.path === "same-node") {
    if (v.allowed === undefined) {
      const known = v.policies.length
        ? `; policies this agent holds that apply: ${v.policies.map((p) => `${p.key} (${p.action})`).join(", ")}`
        : "";
      return {
        ...c,
        outcome: "remote",
        why: `decided by the agent of node ${c.node} when the tunnel arrives (this agent holds only its own pods' policies${known})`,
      };
    }
    if (v.allowed) return { ...c, outcome: "allowed", why: `${v.reason}${v.evaluatedBy ? ` (decided by ${v.evaluatedBy})` : ""}` };
    return {
      ...c,
      outcome: v.status === 403 ? "denied" : "refused",
      why: `${v.reason} (HTTP ${v.status} from ${v.evaluatedBy}; the client sees a reset)`,
    };
  }
  if (c.path === "direct") {
    if (v.allowed === undefined)
      return { ...c, outcome: "remote", why: `not through the proxy; whether node ${c.node}'s guard lets plaintext in is decided there` };
    if (!v.allowed) return { ...c, outcome: "dropped", why: `${v.reason} (the client's connect times out)` };
    return { ...c, outcome: "direct", why: `not through the proxy: ${v.reason}` };
  }
  return c;
}

/** Folds the candidates' outcomes into the explanation's verdict. */
export function summarize(e: Explanation): Explanation {
  const candidates = e.candidates.map(settle);
  const outcomes = [...new Set(candidates.map((c) => c.outcome))];
  if (outcomes.length === 1) {
    const only = outcomes[0] as Outcome;
    const summary =
      candidates.length === 1 ? (candidates[0] as Candidate).why : `whichever of the ${candidates.length} endpoints is picked`;
    return { ...e, candidates, outcome: only, summary };
  }
  const counts = outcomes.map((o) => `${o} for ${candidates.filter((c) => c.outcome === o).length}`).join(", ");
  return { ...e, candidates, outcome: "depends", summary: `depends on the endpoint picked: ${counts} of ${candidates.length}` };
}

function pickIndex(i: number): EndpointPicker {
  return (_svc, eps) => eps[i] ?? randomPicker(_svc, eps);
}

/** What the proxy does with one plan from buildRequest. */
function fromPlan(view: MeshView, req: OutboundRequest, srcIp: string, dst: SocketAddr, cert: CertificateStatus | undefined): Candidate {
  switch (req.kind) {
    case "reject":
      return {
        target: addr(dst),
        path: "reject",
        detail: "the proxy refuses it",
        outcome: "refused",
        why: `the proxy resets it: ${req.reason}`,
      };
    case "passthrough":
      return {
        target: addr(req.target),
        ...(req.destination ? { workload: podName(req.destination), node: req.destination.node } : {}),
        path: "passthrough",
        detail: `plain TCP from the proxy to ${addr(req.target)}, no mTLS, no policy`,
        outcome: "passthrough",
        why: req.reason,
      };
    case "hbone": {
      const d = req.destination;
      const common = { target: addr(req.target), workload: podName(d), node: d.node, expectedIdentity: req.expectedIdentity };
      if (req.sameNode) {
        const inbound = explainInbound(view, {
          kind: "mesh",
          sourceIdentity: req.source.identity,
          sourceIp: srcIp,
          target: addr(req.target),
        });
        return {
          ...common,
          path: "same-node",
          detail: "same node: no tunnel, the proxy applies the destination's checks itself and dials the pod",
          inbound,
          outcome: "remote",
          why: "",
        };
      }
      if (cert?.state !== "valid")
        return {
          ...common,
          path: "hbone",
          hbone: addr(req.hbone),
          detail: `HBONE tunnel to ${addr(req.hbone)}`,
          outcome: "refused",
          why: `this node holds no valid certificate for ${req.source.identity} (${cert?.state ?? "not requested"}${cert?.lastError ? `: ${cert.lastError}` : ""}), so the tunnel cannot open`,
        };
      return {
        ...common,
        path: "hbone",
        hbone: addr(req.hbone),
        detail: `HBONE: HTTP/2 CONNECT over a pooled mTLS connection to ${addr(req.hbone)} (node ${d.node})`,
        inbound: {
          node: d.node,
          policies: policiesOf(view, d),
          query: {
            kind: "mesh",
            sourceIdentity: req.source.identity,
            sourceIp: srcIp,
            target: addr(req.target),
            presentedIdentity: req.expectedIdentity,
          },
        },
        outcome: "remote",
        why: "",
      };
    }
  }
}

/** A connection that bypasses the proxy: where it lands and whether the destination's guard lets it in. */
function direct(view: MeshView, srcIp: string, target: SocketAddr, dest: Workload | undefined, how: string): Candidate {
  const c: Candidate = {
    target: addr(target),
    ...(dest ? { workload: podName(dest), node: dest.node } : {}),
    path: "direct",
    detail: how,
    outcome: "direct",
    why: dest
      ? `not through the proxy, and ${podName(dest)} is not in the mesh: plain TCP, no policy`
      : "not through the proxy, to an address that is not a mesh pod this agent knows: plain TCP, no policy",
  };
  if (!dest?.enrolled) return c;
  const query: InboundQuery = { kind: "plaintext", sourceIp: srcIp, target: addr(target) };
  if (dest.node === view.nodeName) return { ...c, inbound: explainInbound(view, query) };
  return { ...c, inbound: { node: dest.node, policies: policiesOf(view, dest), query } };
}

/** Explains a connection from a local pod to "host:port". */
export function explain(
  view: MeshView,
  srcRef: string,
  dstText: string,
  facts: CaptureFacts,
  certs: readonly CertificateStatus[],
  sample: HttpSample = { method: "GET", path: "/", headers: {} },
): Explanation {
  const source = findPod(view, srcRef);
  if (source.node !== view.nodeName)
    throw new ExplainError(
      `pod ${podName(source)} runs on node ${source.node}, not on this agent's node ${view.nodeName}: its connections are captured and decided there (use --node ${source.node})`,
      409,
    );
  const srcIp = ipv4Of(source);
  const dstRes = resolveDestination(view, dstText, source.namespace);
  const dst: SocketAddr = { ip: dstRes.ip, port: dstRes.port };
  const match = view.serviceByAddress(dst.ip, dst.port);
  const ready = match ? match.service.endpoints.filter((e) => e.ready) : [];
  const destWorkload = match ? undefined : view.workloadByAddress(dst.ip);
  const cert = certs.find((c) => c.identity === source.identity);
  const capture = captureVerdict(source, srcIp, dst, facts);
  let candidates: Candidate[];
  let selection: string | undefined;
  if (capture.captured) {
    if (match && ready.length > 1) selection = `the proxy picks one of the ${ready.length} ready endpoints at random for each connection`;
    const picks = match && ready.length > 0 ? ready.map((_, i) => pickIndex(i)) : [randomPicker];
    candidates = picks.map((pick) => fromPlan(view, buildRequest(view, srcIp, dst, pick), srcIp, dst, cert));
  } else if (match) {
    if (ready.length > 1) selection = `the node's service proxy (kube-proxy, not weft) picks one of the ${ready.length} ready endpoints`;
    candidates = ready.map((e) =>
      direct(
        view,
        srcIp,
        { ip: e.address, port: match.port.targetPort },
        view.workloadByUid(e.workloadUid) ?? view.workloadByAddress(e.address),
        "not captured: the node's service proxy (kube-proxy) translates the VIP, weft is not involved",
      ),
    );
    if (candidates.length === 0)
      candidates = [
        {
          target: addr(dst),
          path: "direct",
          detail: "not captured",
          outcome: "refused",
          why: `service ${match.service.key} has no ready endpoints: nothing answers`,
        },
      ];
  } else if (view.isServiceVip(dst.ip)) {
    candidates = [
      {
        target: addr(dst),
        path: "direct",
        detail: "not captured",
        outcome: "refused",
        why: `${dst.ip} is a service VIP without port ${dst.port}`,
      },
    ];
  } else {
    candidates = [direct(view, srcIp, dst, destWorkload, "not captured: the pod connects directly")];
  }
  return summarize({
    node: view.nodeName,
    version: view.version,
    source: {
      pod: podName(source),
      ip: srcIp,
      node: source.node,
      identity: source.identity,
      enrolled: source.enrolled,
      enrolmentReason: source.enrolmentReason,
      certificate: cert?.state ?? "none",
    },
    destination: {
      input: dstText,
      ...dst,
      ...(match
        ? {
            service: {
              key: match.service.key,
              hostname: match.service.hostname,
              port: match.port.port,
              targetPort: match.port.targetPort,
              endpoints: match.service.endpoints.length,
              readyEndpoints: ready.length,
            },
          }
        : {}),
      ...(destWorkload ? { workload: podName(destWorkload) } : {}),
    },
    capture,
    ...(match && capture.captured ? { http: explainHttp(view, source, match, sample) } : {}),
    ...(selection ? { selection } : {}),
    candidates,
    outcome: "remote",
    summary: "",
  });
}
