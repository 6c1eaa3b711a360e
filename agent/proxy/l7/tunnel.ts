/**
 * One byte stream to an upstream endpoint, for an upstream HTTP connection to ride on: a CONNECT
 * stream on the pooled HBONE session (remote node), a checked direct dial (same node: the
 * destination's inbound policy still runs), or plain TCP (endpoints outside the mesh).
 */
import { randomBytes } from "node:crypto";
import { constants as h2 } from "node:http2";
import type { Duplex } from "node:stream";
import { PASSTHROUGH_MARK, PORT_HBONE } from "../../../controller/api/constants.js";
import type { Endpoint, Workload } from "../../../controller/api/model.js";
import type { MeshView } from "../../state/view.js";
import type { ProxyContext } from "../context.js";
import { dial } from "../dial.js";
import { checkInbound, refusedSince } from "../inbound-policy.js";
import { baggageOf } from "../names.js";
import type { SocketAddr } from "../request.js";

/** How an endpoint is reached. */
export interface UpstreamTarget {
  endpoint: Endpoint;
  workload?: Workload;
  /** The pod address and target port (the CONNECT :authority). */
  target: SocketAddr;
  /**
   * hbone: another node's pod, through its HBONE listener; same-node: a pod of this node, after
   * its inbound policy; passthrough: outside the mesh; local: the destination proxy delivering to
   * its own pod (policy already decided), with the proxy's mark so the guard and the plaintext
   * capture let it through.
   */
  mode: "hbone" | "same-node" | "passthrough" | "local";
  /** Destination node's HBONE listener (hbone mode). */
  hbone?: SocketAddr;
}

/** A tunnel the destination refused, with the status it answered (403: denied by policy). */
export class TunnelRefusedError extends Error {
  override readonly name = "TunnelRefusedError";
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

interface SameNodeConn {
  identity: string;
  sourceIp: string;
  target: SocketAddr;
}

/** Direct same-node upstream connections (pooled keep-alive): a policy change may need to close them. */
const sameNode = new Map<Duplex, SameNodeConn>();

function trackSameNode(sock: Duplex, identity: string, sourceIp: string, target: SocketAddr): Duplex {
  sameNode.set(sock, { identity, sourceIp, target });
  sock.once("close", () => sameNode.delete(sock));
  return sock;
}

/**
 * Policy changed: closes direct same-node connections the destination's policy now denies, or
 * whose requests must now be checked one by one by the HTTP server (the next request opens a
 * tunnel through it). Returns how many were closed.
 */
export function recheckSameNode(view: MeshView, traced: boolean): number {
  let n = 0;
  for (const [sock, c] of sameNode) {
    const d = checkInbound(view, { sourceIdentity: c.identity, sourceIp: c.sourceIp, target: c.target, httpCapable: true, traced });
    if (d.ok && !d.http) continue;
    sock.destroy();
    n++;
  }
  return n;
}

/** Works out how to reach an endpoint of a service port (no I/O). */
export function targetOf(view: MeshView, endpoint: Endpoint, targetPort: number): UpstreamTarget {
  const workload = view.workloadByUid(endpoint.workloadUid) ?? view.workloadByAddress(endpoint.address);
  const target = { ip: endpoint.address, port: targetPort };
  if (!workload?.enrolled) return { endpoint, ...(workload ? { workload } : {}), target, mode: "passthrough" };
  if (workload.node === view.nodeName) return { endpoint, workload, target, mode: "same-node" };
  return { endpoint, workload, target, mode: "hbone", hbone: { ip: workload.nodeAddress, port: PORT_HBONE } };
}

/** Opens a byte stream from `source` (whose address is sourceIp) to the target. */
export async function openTunnel(
  ctx: ProxyContext,
  source: Workload,
  sourceIp: string,
  t: UpstreamTarget,
  connectTimeoutMs = ctx.config.connectTimeoutMs,
): Promise<Duplex> {
  if (t.mode === "passthrough") return dial(t.target, connectTimeoutMs, ctx.config.transparent ? { mark: PASSTHROUGH_MARK } : {});
  if (t.mode === "local") return dial(t.target, connectTimeoutMs);
  const workload = t.workload as Workload;
  let hbone = t.hbone as SocketAddr;
  if (t.mode === "same-node") {
    const input = { sourceIdentity: source.identity, sourceIp, target: t.target, httpCapable: true, traced: ctx.tracer !== undefined };
    const view = ctx.view();
    const decision = checkInbound(view, input);
    if (!decision.ok) throw new TunnelRefusedError(decision.reason, decision.status);
    if (!decision.http) {
      // From the client pod's own address, as the HBONE path delivers it on the destination node.
      const sock = await dial(t.target, connectTimeoutMs, ctx.config.transparent ? { source: sourceIp } : {});
      const late = refusedSince(view, ctx.view(), (v) => checkInbound(v, input));
      if (late) {
        sock.destroy();
        throw new TunnelRefusedError(late.reason, late.status);
      }
      return trackSameNode(sock, source.identity, sourceIp, t.target);
    }
    // Requests must be checked one by one: through this node's own HBONE listener, whose HTTP
    // server does that, exactly as for a tunnel from another node.
    hbone = { ip: workload.nodeAddress, port: PORT_HBONE };
  }
  const stream = await ctx.pool.stream(
    { srcIdentity: source.identity, dstIdentity: workload.identity, address: hbone },
    {
      ":method": "CONNECT",
      ":authority": `${t.target.ip}:${t.target.port}`,
      forwarded: `for=${sourceIp}`,
      traceparent: `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`,
      baggage: baggageOf(source),
    },
  );
  return new Promise<Duplex>((resolve, reject) => {
    const timer = setTimeout(() => {
      stream.close(h2.NGHTTP2_CANCEL);
      reject(new Error(`HBONE CONNECT to ${t.target.ip}:${t.target.port} unanswered after ${connectTimeoutMs} ms`));
    }, connectTimeoutMs);
    stream.once("response", (h) => {
      clearTimeout(timer);
      const status = Number(h[":status"]);
      if (status === 200) {
        stream.off("close", onClose);
        resolve(stream);
        return;
      }
      stream.close(h2.NGHTTP2_CANCEL);
      reject(new TunnelRefusedError(`destination refused the tunnel to ${t.target.ip}:${t.target.port}: HTTP ${status}`, status));
    });
    const onClose = () => {
      clearTimeout(timer);
      reject(new Error(`HBONE tunnel to ${t.target.ip}:${t.target.port} closed before the destination answered`));
    };
    stream.once("close", onClose);
    stream.on("error", () => undefined);
  });
}
