/**
 * Decide first, then act: what to do with one captured outbound connection, worked out with no
 * I/O from the mesh view (ztunnel's build_request). The outbound listener carries it out.
 */
import type { ErrorCode } from "../../common/errors.js";
import { PORT_HBONE } from "../../controller/api/constants.js";
import type { Endpoint, Workload } from "../../controller/api/model.js";
import type { MeshView, ServiceMatch } from "../state/view.js";

/** An IP and port. */
export interface SocketAddr {
  ip: string;
  port: number;
}

/** Chooses one endpoint among healthy ones (load balancing). */
export type EndpointPicker = (service: ServiceMatch, endpoints: readonly Endpoint[]) => Endpoint;

/** The plan for an outbound connection. */
export type OutboundRequest =
  | {
      kind: "hbone";
      source: Workload;
      destination: Workload;
      service?: ServiceMatch;
      /** What the destination pod is dialled at (the CONNECT :authority). */
      target: SocketAddr;
      /** The destination node's HBONE listener. */
      hbone: SocketAddr;
      /** The identity the destination side must present. */
      expectedIdentity: string;
      /** Destination on this node: no network hop, same policy. */
      sameNode: boolean;
    }
  | {
      kind: "passthrough";
      source: Workload;
      destination?: Workload;
      service?: ServiceMatch;
      target: SocketAddr;
      reason: string;
    }
  | { kind: "reject"; code: ErrorCode; source?: Workload; service?: ServiceMatch; reason: string };

/** Uniform random choice: stateless, so every worker balances alike without coordination. */
export const randomPicker: EndpointPicker = (_svc, eps) => eps[Math.floor(Math.random() * eps.length)] as Endpoint;

/** Why the proxy acts for no one at an address: a code and a reason for the refusal. */
export interface SourceRefusal {
  ok: false;
  code: ErrorCode;
  reason: string;
  /** The workload the address belongs to, when it is known but may not use the mesh. */
  source?: Workload;
}

/**
 * The enrolled workload of this node that a connection came from, or why there is none. Every
 * entry point that opens something on a source's behalf (a tunnel under its identity, a
 * same-node delivery, an L7 exchange) asks this first: capture is not the only gate, so a
 * connection that reached the proxy some other way never borrows an identity.
 */
export function localSource(view: MeshView, srcIp: string): { ok: true; source: Workload } | SourceRefusal {
  if (view.isClashingAddress(srcIp)) {
    return { ok: false, code: "WEFT_NO_ROUTE", reason: `address ${srcIp} is claimed by more than one pod; refusing rather than guessing` };
  }
  const source = view.workloadByAddress(srcIp);
  if (!source || source.node !== view.nodeName) {
    return {
      ok: false,
      code: "WEFT_SOURCE_NOT_IN_MESH",
      reason: `source ${srcIp} is not a workload on node ${view.nodeName}; its capture is stale or the agent's state is behind`,
    };
  }
  if (!source.enrolled) {
    return {
      ok: false,
      code: "WEFT_SOURCE_NOT_IN_MESH",
      source,
      reason: `source ${source.namespace}/${source.name} (${srcIp}) is not enrolled in the mesh; no tunnel is opened on its behalf`,
    };
  }
  return { ok: true, source };
}

/** Works out how to carry a captured connection from srcIp to its original destination. */
export function buildRequest(view: MeshView, srcIp: string, dst: SocketAddr, pick: EndpointPicker = randomPicker): OutboundRequest {
  const from = localSource(view, srcIp);
  if (!from.ok) return { kind: "reject", code: from.code, reason: from.reason, ...(from.source ? { source: from.source } : {}) };
  if (view.isClashingAddress(dst.ip)) {
    return {
      kind: "reject",
      code: "WEFT_NO_ROUTE",
      reason: `address ${dst.ip} is claimed by more than one pod; refusing rather than guessing`,
    };
  }
  const { source } = from;
  const service = view.serviceByAddress(dst.ip, dst.port);
  if (service) {
    const ready = service.service.endpoints.filter((e) => e.ready);
    if (ready.length === 0) {
      return {
        kind: "reject",
        code: "WEFT_NO_ENDPOINTS",
        source,
        service,
        reason: `service ${service.service.key} has no ready endpoints`,
      };
    }
    const ep = pick(service, ready);
    const target = { ip: ep.address, port: service.port.targetPort };
    const destination = view.workloadByUid(ep.workloadUid) ?? view.workloadByAddress(ep.address);
    return toDestination(view, source, destination, target, service);
  }
  if (view.isServiceVip(dst.ip)) {
    return {
      kind: "reject",
      code: "WEFT_NO_ROUTE",
      source,
      reason: `${dst.ip} is a service VIP but port ${dst.port} is not one of its ports`,
    };
  }
  return toDestination(view, source, view.workloadByAddress(dst.ip), dst, undefined);
}

function toDestination(
  view: MeshView,
  source: Workload,
  destination: Workload | undefined,
  target: SocketAddr,
  service: ServiceMatch | undefined,
): OutboundRequest {
  if (!destination) {
    return { kind: "passthrough", source, target, ...(service ? { service } : {}), reason: "destination is not a known workload" };
  }
  if (!destination.enrolled) {
    return {
      kind: "passthrough",
      source,
      destination,
      target,
      ...(service ? { service } : {}),
      reason: `destination ${destination.namespace}/${destination.name} is not in the mesh`,
    };
  }
  return {
    kind: "hbone",
    source,
    destination,
    ...(service ? { service } : {}),
    target,
    hbone: { ip: destination.nodeAddress, port: PORT_HBONE },
    expectedIdentity: destination.identity,
    sameNode: destination.node === view.nodeName,
  };
}
