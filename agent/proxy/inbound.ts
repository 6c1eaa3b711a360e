/**
 * Inbound HBONE (15008): terminate mTLS (TLS 1.3, peer verified against the trust bundle), take
 * HTTP/2 CONNECT streams, decide with checkInbound, dial the pod and splice.
 */
import { createSecureServer, type Http2SecureServer, constants as h2, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { ERROR_HEADER, errorMessage, errorStack } from "../../common/errors.js";
import { sharedListen } from "../../native/reuseport.js";
import { trafficLabels } from "../telemetry/labels.js";
import type { ConnectionInfo } from "./connection-manager.js";
import type { ProxyContext } from "./context.js";
import { spliceWith } from "./copy.js";
import { dial } from "./dial.js";
import { checkInbound, forwardedFor, type InboundDecision, parseAuthority } from "./inbound-policy.js";
import { workloadRef } from "./names.js";
import { HBONE_ALPN, identitySni, peerIdentity } from "./tls.js";

interface SessionInfo {
  peer: string;
  /** Identity presented to this peer (chosen by SNI). */
  presented?: string;
  peerAddr: { ip: string; port: number };
}

/** The HBONE listener. */
export class InboundServer {
  private server?: Http2SecureServer;
  private readonly sessions = new WeakMap<ServerHttp2Session, SessionInfo>();
  private readonly live = new Set<ServerHttp2Session>();
  private sniCache: { version: string; map: Map<string, string> } = { version: "", map: new Map() };

  constructor(private readonly ctx: ProxyContext) {}

  /** Starts listening on the configured HBONE address. */
  async start(): Promise<void> {
    const { config } = this.ctx;
    const server = createSecureServer({
      allowHTTP1: false,
      ALPNProtocols: HBONE_ALPN,
      minVersion: "TLSv1.3",
      maxVersion: "TLSv1.3",
      requestCert: true,
      rejectUnauthorized: true,
      ca: [...this.ctx.identity.trustBundle()],
      SNICallback: (servername, cb) => {
        this.contextFor(servername).then(
          (c) => cb(null, c),
          (e: Error) => cb(e, undefined),
        );
      },
      settings: { initialWindowSize: config.streamWindowBytes, maxConcurrentStreams: 1000, enablePush: false },
      maxSessionMemory: 256,
    });
    // Frames for many streams share each socket: never hold a small write back for Nagle.
    server.on("secureConnection", (socket: TLSSocket) => socket.setNoDelay(true));
    // A bug in handling one session or stream must cost that stream, never the node's proxy.
    server.on("session", (session) =>
      this.guard(
        () => this.onSession(session),
        () => session.destroy(),
      ),
    );
    server.on("stream", (stream, headers) =>
      this.guard(
        () => this.onStream(stream, headers),
        () => stream.close(h2.NGHTTP2_INTERNAL_ERROR),
      ),
    );
    server.on("tlsClientError", (err: Error, socket: TLSSocket) => {
      this.ctx.log.warn({ peer: `${socket.remoteAddress}:${socket.remotePort}`, err: err.message }, "HBONE TLS handshake refused");
    });
    this.ctx.identity.onChange(() => server.setSecureContext({ ca: [...this.ctx.identity.trustBundle()] }));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      const { ip, port } = config.hbone;
      server.listen(config.reusePort ? sharedListen(ip, port) : { port, host: ip, backlog: 4096 }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
  }

  private guard(fn: () => void, onError: () => void): void {
    try {
      fn();
    } catch (e) {
      this.ctx.log.error({ err: errorMessage(e), stack: errorStack(e) }, "HBONE handler failed; dropping that session or stream");
      try {
        onError();
      } catch {
        // already gone
      }
    }
  }

  /** Maps SNI back to one of this node's identities and returns its TLS context. */
  private async contextFor(servername: string) {
    const view = this.ctx.view();
    if (this.sniCache.version !== view.version) {
      const map = new Map<string, string>();
      for (const w of view.localWorkloads()) if (w.enrolled) map.set(identitySni(w.identity), w.identity);
      this.sniCache = { version: view.version, map };
    }
    const identity = this.sniCache.map.get(servername);
    if (!identity) throw new Error(`no workload on node ${view.nodeName} has the identity requested by SNI ${servername}`);
    const cert = this.ctx.identity.cached(identity) ?? (await this.ctx.identity.certificate(identity));
    return this.ctx.contexts.get(cert, this.ctx.identity.trustBundle());
  }

  private onSession(session: ServerHttp2Session): void {
    const socket = session.socket as TLSSocket;
    const peer = peerIdentity(socket);
    if (!peer) {
      this.ctx.log.warn({ peer: socket.remoteAddress }, "HBONE peer has no SPIFFE identity; closing");
      session.destroy();
      return;
    }
    const servername = (socket as TLSSocket & { servername?: string }).servername;
    const presented = servername ? this.sniCache.map.get(servername) : undefined;
    this.sessions.set(session, {
      peer,
      ...(presented ? { presented } : {}),
      peerAddr: { ip: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 },
    });
    this.live.add(session);
    session.once("close", () => this.live.delete(session));
    session.on("error", (e) => this.ctx.log.debug({ err: e.message }, "HBONE session error"));
    session.once("connect", () => session.setLocalWindowSize(this.ctx.config.sessionWindowBytes));
    if (!session.connecting) session.setLocalWindowSize(this.ctx.config.sessionWindowBytes);
  }

  private onStream(stream: ServerHttp2Stream, headers: Record<string, string | string[] | undefined>): void {
    const info = this.sessions.get(stream.session as ServerHttp2Session);
    if (!info) {
      stream.close(h2.NGHTTP2_REFUSED_STREAM);
      return;
    }
    if (headers[":method"] !== "CONNECT") {
      stream.respond({ ":status": 405, [ERROR_HEADER]: "WEFT_BAD_TUNNEL_REQUEST" }, { endStream: true });
      return;
    }
    const target = parseAuthority(headers[":authority"] as string | undefined);
    if (!target) {
      stream.respond({ ":status": 400, [ERROR_HEADER]: "WEFT_BAD_TUNNEL_REQUEST" }, { endStream: true });
      this.ctx.log.warn({ authority: headers[":authority"], peer: info.peer }, "HBONE CONNECT with a bad :authority");
      return;
    }
    const sourceIp = forwardedFor(headers.forwarded) ?? info.peerAddr.ip;
    const decision = checkInbound(this.ctx.view(), {
      sourceIdentity: info.peer,
      sourceIp,
      target,
      ...(info.presented ? { presentedIdentity: info.presented } : {}),
    });
    const connInfo: ConnectionInfo = {
      direction: "inbound",
      mode: "hbone",
      src: { ip: sourceIp, port: 0 },
      dst: target,
      target,
      hbone: info.peerAddr,
      srcIdentity: info.peer,
      srcWorkload: decision.source ? workloadRef(decision.source) : undefined,
      dstWorkload: decision.destination ? workloadRef(decision.destination) : undefined,
      dstIdentity: decision.destination?.identity,
      service: undefined,
      policy: decision.ok ? decision.policy : decision.reason,
    };
    if (!decision.ok) {
      // The code (never the reason: policy names stay on this node) tells the client side why.
      stream.respond({ ":status": decision.status, [ERROR_HEADER]: decision.code }, { endStream: true });
      this.ctx.connections.rejected(connInfo, this.labels(decision, info.peer), decision.reason, decision.flags, decision.code);
      return;
    }
    void this.deliver(stream, decision, connInfo, info.peer);
  }

  private labels(d: InboundDecision, peer: string) {
    const view = this.ctx.view();
    const service = d.destination ? view.servicesOf(d.destination)[0] : undefined;
    return trafficLabels({
      reporter: "destination",
      ...(d.source ? { source: d.source } : {}),
      sourcePrincipal: peer,
      ...(d.destination ? { destination: d.destination } : {}),
      ...(service ? { service } : {}),
      mtls: true,
    });
  }

  private async deliver(
    stream: ServerHttp2Stream,
    decision: InboundDecision & { ok: true },
    connInfo: ConnectionInfo,
    peer: string,
  ): Promise<void> {
    const labels = this.labels(decision, peer);
    let upstream: Socket;
    try {
      upstream = await dial(connInfo.dst, this.ctx.config.connectTimeoutMs);
    } catch (e) {
      if (!stream.destroyed) stream.respond({ ":status": 503, [ERROR_HEADER]: "WEFT_UPSTREAM_UNREACHABLE" }, { endStream: true });
      this.ctx.connections.rejected(connInfo, labels, errorMessage(e), "CONNECT", "WEFT_UPSTREAM_UNREACHABLE");
      return;
    }
    if (stream.destroyed) {
      upstream.destroy();
      return;
    }
    stream.respond({ ":status": 200 });
    const up = upstream;
    const tracked = this.ctx.connections.open(
      connInfo,
      labels,
      () => ({ received: up.bytesWritten, sent: up.bytesRead }),
      (reason) => {
        this.ctx.log.info({ reason, dst: connInfo.dstWorkload }, "closing connection");
        stream.close(h2.NGHTTP2_CANCEL);
        up.resetAndDestroy();
      },
    );
    spliceWith(stream, up, (result) => tracked.close(result.clean ? undefined : result.error));
  }

  /** The bound address (the port is known only after listen when configured as 0). */
  address(): { ip: string; port: number } | null {
    const a = this.server?.address();
    return a && typeof a === "object" ? { ip: a.address, port: a.port } : null;
  }

  /** Live HBONE sessions (inbound). */
  get sessionCount(): number {
    return this.live.size;
  }

  /** Stops accepting; closes sessions (graceful: GOAWAY, streams finish). */
  async close(graceful = true): Promise<void> {
    const server = this.server;
    if (!server) return;
    const done = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.live) {
      if (graceful) s.close();
      else s.destroy();
    }
    await done;
  }
}
