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

/** Works out how to carry a captured connection from srcIp to its original destination. */
export function buildRequest(view: MeshView, srcIp: string, dst: SocketAddr, pick: EndpointPicker = randomPicker): OutboundRequest {
  const source = view.workloadByAddress(srcIp);
  if (view.isClashingAddress(srcIp) || view.isClashingAddress(dst.ip)) {
    const ip = view.isClashingAddress(srcIp) ? srcIp : dst.ip;
    return {
      kind: "reject",
      code: "WEFT_NO_ROUTE",
      reason: `address ${ip} is claimed by more than one pod; refusing rather than guessing`,
    };
  }
  if (!source || source.node !== view.nodeName) {
    return {
      kind: "reject",
      code: "WEFT_NO_ROUTE",
      reason: `source ${srcIp} is not a workload on node ${view.nodeName}; its capture is stale or the agent's state is behind`,
    };
  }
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
