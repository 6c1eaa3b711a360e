/**
 * Outbound (15001): accept a captured pod connection, learn its original destination (the
 * getsockname hook makes localAddress/localPort report it: no syscall of ours), decide with
 * buildRequest, then carry it: HBONE through the pool, same-node delivery, or passthrough.
 */
import { randomBytes } from "node:crypto";
import { constants as h2 } from "node:http2";
import { createServer, type Server, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { ERROR_CODES, ERROR_HEADER, type ErrorCode, errorCode, errorMessage, isErrorCode, WeftError } from "../../common/errors.js";
import { PASSTHROUGH_MARK } from "../../controller/api/constants.js";
import type { Workload } from "../../controller/api/model.js";
import { sharedListen } from "../../native/reuseport.js";
import { type ResponseFlag, trafficLabels } from "../telemetry/labels.js";
import { abortSocket } from "./abort.js";
import type { ConnectionInfo, ConnectionMode } from "./connection-manager.js";
import type { ProxyContext } from "./context.js";
import { spliceWith } from "./copy.js";
import { dial } from "./dial.js";
import { checkInbound, refusedSince } from "./inbound-policy.js";
import { type KernelSplice, spliceInKernel } from "./kernel-splice.js";
import type { HttpProxy } from "./l7/http-proxy.js";
import { portHandling, sniff, wantsL7 } from "./l7/protocol.js";
import { baggageOf, workloadRef } from "./names.js";
import { buildRequest, localSource, type OutboundRequest, type SocketAddr } from "./request.js";

/** How long a port that declares no protocol waits for the client's first bytes (Istio's detection timeout). */
export const DEFAULT_SNIFF_TIMEOUT_MS = 100;
/** A declared HTTP port waits this long for the request before treating the connection as TCP. */
const DECLARED_HTTP_WAIT_MS = 60_000;

/** The outbound capture listener. */
export class OutboundListener {
  private server?: Server;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly http?: HttpProxy,
  ) {}

  /** Starts listening on the configured outbound address. */
  async start(): Promise<void> {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (sock) => {
      void this.handle(sock).catch((e: Error) => {
        this.ctx.log.error({ err: e.message, stack: e.stack }, "outbound connection failed unexpectedly");
        sock.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      const { ip, port } = this.ctx.config.outbound;
      server.listen(this.ctx.config.reusePort ? sharedListen(ip, port) : { port, host: ip, backlog: 4096 }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
  }

  private async handle(sock: Socket): Promise<void> {
    sock.on("error", () => undefined);
    const src: SocketAddr = { ip: stripV4Mapped(sock.remoteAddress ?? ""), port: sock.remotePort ?? 0 };
    const dst: SocketAddr = { ip: stripV4Mapped(sock.localAddress ?? ""), port: sock.localPort ?? 0 };
    const listen = this.ctx.config.outbound;
    if (dst.port === listen.port && dst.ip === listen.ip) {
      // Not rewritten: the hook did not capture it, so the source dialled the proxy itself (a pod
      // outside the mesh, or one trying to). Nothing to carry and no identity to lend: refused.
      const from = localSource(this.ctx.view(), src.ip);
      const reason = `connection from ${src.ip} dialled the outbound proxy ${listen.ip}:${listen.port} directly (not captured); refusing`;
      this.refuse(
        sock,
        src,
        dst,
        { kind: "reject", code: "WEFT_NOT_CAPTURED", reason, ...(from.source ? { source: from.source } : {}) },
        reason,
        "CONNECT",
        "WEFT_NOT_CAPTURED",
      );
      return;
    }
    if (this.http && (await this.tryHttp(sock, src, dst))) return;
    const view = this.ctx.view();
    const req = buildRequest(view, src.ip, dst, this.ctx.pick);
    switch (req.kind) {
      case "reject":
        this.refuse(sock, src, dst, req, req.reason, "CONNECT", req.code);
        return;
      case "passthrough":
        await this.passthrough(sock, src, dst, req);
        return;
      case "hbone":
        if (req.sameNode) await this.sameNode(sock, src, dst, req);
        else await this.hbone(sock, src, dst, req);
        return;
    }
  }

  /**
   * Hands a connection to a service port that speaks HTTP to the L7 proxy; true when taken.
   * Declared protocols decide first; undeclared ports are sniffed; what is not HTTP stays L4.
   */
  private async tryHttp(sock: Socket, src: SocketAddr, dst: SocketAddr): Promise<boolean> {
    const http = this.http as HttpProxy;
    const view = this.ctx.view();
    const service = view.serviceByAddress(dst.ip, dst.port);
    if (!service) return false;
    const handling = portHandling(service.port.appProtocol);
    if (handling === "l4") return false;
    // A source the proxy may not act for is refused by buildRequest, with its reason.
    const from = localSource(view, src.ip);
    if (!from.ok) return false;
    const { source } = from;
    if (!wantsL7(view, service, source)) return false;
    const wait = handling === "sniff" ? (this.ctx.config.sniffTimeoutMs ?? DEFAULT_SNIFF_TIMEOUT_MS) : DECLARED_HTTP_WAIT_MS;
    const protocol = await sniff(sock, wait);
    if (protocol === "closed") {
      sock.destroy();
      return true;
    }
    if (protocol === "tcp") return false;
    http.accept(sock, protocol, { source, src, dst, service });
    return true;
  }

  private info(src: SocketAddr, dst: SocketAddr, req: OutboundRequest, mode: ConnectionMode): ConnectionInfo {
    const d = req.kind === "reject" ? undefined : req.destination;
    // One fixed shape (absent fields undefined): thousands of these live as long as their connections.
    return {
      direction: "outbound",
      mode,
      src,
      dst,
      target: req.kind !== "reject" ? req.target : undefined,
      hbone: req.kind === "hbone" && !req.sameNode ? req.hbone : undefined,
      srcWorkload: req.source ? workloadRef(req.source) : undefined,
      // A pod outside the mesh has no identity here, not even in a log line of its refusal.
      srcIdentity: req.source?.enrolled ? req.source.identity : undefined,
      dstWorkload: d ? workloadRef(d) : undefined,
      dstIdentity: d && req.kind === "hbone" ? d.identity : undefined,
      service: req.service?.service.key,
      policy: undefined,
    };
  }

  private labels(req: OutboundRequest, mtls: boolean, flags: ResponseFlag = "-") {
    const dest: Workload | undefined = req.kind === "reject" ? undefined : req.destination;
    return trafficLabels({
      reporter: "source",
      ...(req.source ? { source: req.source, ...(req.source.enrolled ? { sourcePrincipal: req.source.identity } : {}) } : {}),
      ...(dest ? { destination: dest } : {}),
      ...(req.service ? { service: req.service.service } : {}),
      mtls,
      responseFlags: flags,
    });
  }

  private refuse(
    sock: Socket,
    src: SocketAddr,
    dst: SocketAddr,
    req: OutboundRequest,
    reason: string,
    flags: ResponseFlag,
    code: ErrorCode,
    mode: ConnectionMode = "reject",
  ): void {
    abortSocket(sock);
    this.ctx.connections.rejected(
      { ...this.info(src, dst, req, mode), policy: reason },
      this.labels(req, mode === "hbone", flags),
      reason,
      flags,
      code,
    );
  }

  private track(
    sock: Socket,
    other: Duplex,
    info: ConnectionInfo,
    req: OutboundRequest,
    mtls: boolean,
    bytes = () => ({ received: sock.bytesRead, sent: sock.bytesWritten }),
  ) {
    return this.ctx.connections.open(info, this.labels(req, mtls), bytes, (reason) => {
      this.ctx.log.info({ reason, src: info.srcWorkload }, "closing connection");
      abortSocket(sock);
      // The far side is told too: a reset, not a FIN it could take for the client's end.
      if (other instanceof Socket) abortSocket(other);
      else other.destroy();
    });
  }

  private async passthrough(sock: Socket, src: SocketAddr, dst: SocketAddr, req: OutboundRequest & { kind: "passthrough" }): Promise<void> {
    let up: Socket;
    try {
      up = await dial(req.target, this.ctx.config.connectTimeoutMs, this.ctx.config.transparent ? { mark: PASSTHROUGH_MARK } : {});
    } catch (e) {
      this.refuse(sock, src, dst, req, errorMessage(e), "CONNECT", errorCode(e, "WEFT_UPSTREAM_UNREACHABLE"), "passthrough");
      return;
    }
    const tracked = this.track(sock, up, { ...this.info(src, dst, req, "passthrough"), policy: req.reason }, req, false);
    spliceWith(sock, up, (r) => tracked.close(r.clean ? undefined : r.error));
  }

  /** Same node: no tunnel, but the same inbound decision a remote peer would get. */
  private async sameNode(sock: Socket, src: SocketAddr, dst: SocketAddr, req: OutboundRequest & { kind: "hbone" }): Promise<void> {
    const input = {
      sourceIdentity: req.source.identity,
      sourceIp: src.ip,
      target: req.target,
      httpCapable: true,
      traced: this.ctx.tracer !== undefined,
    };
    const view = this.ctx.view();
    const decision = checkInbound(view, input);
    if (!decision.ok) {
      this.refuse(sock, src, dst, req, decision.reason, decision.flags, decision.code, "same-node");
      return;
    }
    if (decision.http) {
      // Requests must be checked one by one (HTTP authorization, JWT, rate limits): through this
      // node's own HBONE listener, whose HTTP server does that, as for a tunnel from another node.
      await this.hbone(sock, src, dst, req);
      return;
    }
    let up: Socket;
    try {
      // From the client pod's own address: the destination (and its NetworkPolicy) sees who calls.
      up = await dial(req.target, this.ctx.config.connectTimeoutMs, this.ctx.config.transparent ? { source: src.ip } : {});
    } catch (e) {
      this.refuse(sock, src, dst, req, errorMessage(e), "CONNECT", errorCode(e, "WEFT_UPSTREAM_UNREACHABLE"), "same-node");
      return;
    }
    const late = refusedSince(view, this.ctx.view(), (v) => checkInbound(v, input));
    if (late) {
      abortSocket(up);
      this.refuse(sock, src, dst, req, late.reason, late.flags, late.code, "same-node");
      return;
    }
    const info = { ...this.info(src, dst, req, "same-node"), policy: decision.policy };
    const splicer = this.ctx.splicer;
    if (!splicer) {
      this.ctx.metrics.sameNodeCarried("proxy");
      const tracked = this.track(sock, up, info, req, true);
      spliceWith(sock, up, (r) => tracked.close(r.clean ? undefined : r.error));
      return;
    }
    // Decided, dialled and accounted for as above; the kernel carries the bytes from here.
    let spliced: KernelSplice | undefined;
    const tracked = this.track(sock, up, { ...info, splice: "kernel" }, req, true, () =>
      spliced ? spliced.bytes() : { received: sock.bytesRead, sent: sock.bytesWritten },
    );
    spliced = await spliceInKernel(splicer, sock, up, (r) => tracked.close(r.clean ? undefined : r.error));
    this.ctx.metrics.sameNodeCarried(spliced.fallback ? "proxy" : "kernel");
    if (spliced.fallback) {
      tracked.info.splice = undefined;
      const log = { err: spliced.fallback.message, src: info.srcWorkload };
      if (spliced.halfClosed) this.ctx.log.debug(log, "half-closed before the kernel splice; the proxy carries it");
      else this.ctx.log.warn(log, "kernel splice refused this connection; the proxy carries it");
    }
  }

  private async hbone(sock: Socket, src: SocketAddr, dst: SocketAddr, req: OutboundRequest & { kind: "hbone" }): Promise<void> {
    const headers = {
      ":method": "CONNECT",
      ":authority": formatAddr(req.target),
      forwarded: `for=${src.ip.includes(":") ? `"[${src.ip}]"` : src.ip}`,
      traceparent: `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`,
      baggage: baggageOf(req.source),
    };
    let stream: Awaited<ReturnType<ProxyContext["pool"]["stream"]>>;
    try {
      stream = await this.ctx.pool.stream(
        { srcIdentity: req.source.identity, dstIdentity: req.expectedIdentity, address: req.hbone },
        headers,
      );
    } catch (e) {
      this.refuse(sock, src, dst, req, errorMessage(e), "CONNECT", errorCode(e, "WEFT_UNAVAILABLE"), "hbone");
      return;
    }
    const info = this.info(src, dst, req, "hbone");
    const tracked = this.track(sock, stream, info, req, true);
    let flags: ResponseFlag = "-";
    let refusal: Error | undefined;
    let answered = false;
    // 'close' and the final 'response' come once: plain listeners spare once()'s per-listener
    // wrapper (an object and a bound function) on every live tunnel.
    stream.on("close", () => {
      if (answered) return;
      // No response at all: TLS 1.3 reports a refused client certificate only after the client's
      // handshake completed, so the session dies under the stream. The app must see a reset.
      flags = "CONNECT";
      refusal = new WeftError(
        "WEFT_TUNNEL_CLOSED",
        `HBONE tunnel to ${formatAddr(req.hbone)} closed before the destination answered (${stream.rstCode ? `stream reset, HTTP/2 code ${stream.rstCode}` : "peer refused our certificate?"})`,
      );
      abortSocket(sock);
    });
    stream.on("response", (h) => {
      answered = true;
      const status = Number(h[":status"]);
      if (status !== 200) {
        flags = status === 403 ? "DENY" : "CONNECT";
        // The destination node names its reason's code; the reason itself stays in its log.
        const sent = h[ERROR_HEADER];
        const code = isErrorCode(sent) ? sent : "WEFT_TUNNEL_REFUSED";
        refusal = new WeftError(code, `destination refused the tunnel: HTTP ${status} ${code} (${ERROR_CODES[code]})`);
        // The app sees a reset, as it would from a refused connection, never a clean close.
        abortSocket(sock);
        stream.close(h2.NGHTTP2_CANCEL);
      }
    });
    spliceWith(sock, stream, (r) => tracked.close(refusal ?? (r.clean ? undefined : r.error), flags));
  }

  /** Stops accepting new connections. */
  close(): void {
    // The listening socket closes now; accepted connections go on (the proxy drains them).
    this.server?.close();
  }
}

function formatAddr(a: SocketAddr): string {
  return a.ip.includes(":") ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`;
}

function stripV4Mapped(ip: string): string {
  return ip.startsWith("::ffff:") ? ip.slice(7) : ip;
}
