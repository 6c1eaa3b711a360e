/**
 * Inbound plaintext (15006): connections from outside the mesh to an enrolled pod of this node,
 * captured by the node's tproxy rule (agent/capture/node-rules.ts) onto this IP_TRANSPARENT
 * listener, so the accepted socket's local address is the pod and port the client dialled and its
 * remote address the real client. Refused on ports whose mTLS mode is STRICT; otherwise
 * AuthorizationPolicy applies with no peer identity, and the pod is dialled from the client's own
 * address. Reported with connection_security_policy="none".
 */
import { createServer, type Server, type Socket } from "node:net";
import { errorMessage } from "../../common/errors.js";
import { transparentListener } from "../../native/transparent.js";
import { trafficLabels } from "../telemetry/labels.js";
import { abortSocket } from "./abort.js";
import type { ConnectionInfo } from "./connection-manager.js";
import type { ProxyContext } from "./context.js";
import { spliceWith } from "./copy.js";
import { dial } from "./dial.js";
import { checkPlaintext, type InboundDecision, refusedSince } from "./inbound-policy.js";
import { workloadRef } from "./names.js";
import type { SocketAddr } from "./request.js";

/** Strips the IPv4-mapped prefix Node may report. */
function v4(ip: string | undefined): string {
  const a = ip ?? "";
  return a.startsWith("::ffff:") ? a.slice(7) : a;
}

/** The 15006 listener. */
export class PlaintextInbound {
  private server?: Server;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly listen: SocketAddr,
  ) {}

  /** Starts listening (IP_TRANSPARENT: it accepts connections addressed to the node's pods). */
  async start(): Promise<void> {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (sock) => {
      void this.handle(sock).catch((e: Error) => {
        this.ctx.log.error({ err: e.message }, "inbound plaintext connection failed unexpectedly");
        sock.destroy();
      });
    });
    const fd = transparentListener(this.listen.ip, this.listen.port, this.ctx.config.reusePort ?? false);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ fd }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
  }

  private labels(d: InboundDecision) {
    const service = d.destination ? this.ctx.view().servicesOf(d.destination)[0] : undefined;
    return trafficLabels({
      reporter: "destination",
      ...(d.source ? { source: d.source } : {}),
      ...(d.destination ? { destination: d.destination } : {}),
      ...(service ? { service } : {}),
      mtls: false,
      responseFlags: d.ok ? "-" : d.flags,
    });
  }

  private async handle(sock: Socket): Promise<void> {
    sock.on("error", () => undefined);
    const src = { ip: v4(sock.remoteAddress), port: sock.remotePort ?? 0 };
    const target = { ip: v4(sock.localAddress), port: sock.localPort ?? 0 };
    const view = this.ctx.view();
    const decision = checkPlaintext(view, { sourceIp: src.ip, target });
    const info: ConnectionInfo = {
      direction: "inbound",
      mode: "plaintext",
      src,
      dst: target,
      target,
      hbone: undefined,
      srcIdentity: undefined,
      srcWorkload: decision.source ? workloadRef(decision.source) : undefined,
      dstWorkload: decision.destination ? workloadRef(decision.destination) : undefined,
      dstIdentity: undefined,
      service: undefined,
      policy: decision.ok ? decision.policy : decision.reason,
    };
    const labels = this.labels(decision);
    if (!decision.ok) {
      abortSocket(sock);
      this.ctx.connections.rejected(info, labels, decision.reason, decision.flags, decision.code);
      return;
    }
    let up: Socket;
    try {
      up = await dial(target, this.ctx.config.connectTimeoutMs, this.ctx.config.transparent ? { source: src.ip } : {});
    } catch (e) {
      abortSocket(sock);
      this.ctx.connections.rejected(info, labels, errorMessage(e), "CONNECT", "WEFT_UPSTREAM_UNREACHABLE");
      return;
    }
    const late = refusedSince(view, this.ctx.view(), (v) => checkPlaintext(v, { sourceIp: src.ip, target }));
    if (late) {
      abortSocket(up);
      abortSocket(sock);
      this.ctx.connections.rejected(info, labels, late.reason, late.flags, late.code);
      return;
    }
    const tracked = this.ctx.connections.open(
      info,
      labels,
      () => ({ received: sock.bytesRead, sent: sock.bytesWritten }),
      (reason) => {
        this.ctx.log.info({ reason, dst: info.dstWorkload }, "closing connection");
        abortSocket(sock);
        abortSocket(up);
      },
    );
    spliceWith(sock, up, (r) => tracked.close(r.clean ? undefined : r.error));
  }

  /** Stops accepting. */
  close(): void {
    // The listening socket closes now; accepted connections go on (the proxy drains them).
    this.server?.close();
  }
}
