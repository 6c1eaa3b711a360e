/**
 * Inbound HBONE (15008): terminate mTLS (TLS 1.3, peer verified against the trust bundle), take
 * HTTP/2 CONNECT streams, decide with checkInbound, dial the pod and splice. Every resource a peer
 * can claim is bounded (limits.ts): handshakes and connections per source address, streams and
 * memory per session, header size, streams waiting on one pod.
 */
import { createSecureServer, type Http2SecureServer, constants as h2, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import { createServer, type Server, type Socket } from "node:net";
import { type SecureContextOptions, TLSSocket } from "node:tls";
import { ERROR_HEADER, errorMessage, errorStack } from "../../common/errors.js";
import { sharedListen } from "../../native/reuseport.js";
import { transparentListener } from "../../native/transparent.js";
import { trafficLabels } from "../telemetry/labels.js";
import { abortSocket } from "./abort.js";
import type { ConnectionInfo } from "./connection-manager.js";
import type { ProxyContext } from "./context.js";
import { spliceWith } from "./copy.js";
import { dial } from "./dial.js";
import { drainSession } from "./goaway.js";
import { attributeSource, checkInbound, type InboundDecision, type LateRefusal, parseAuthority, refusedSince } from "./inbound-policy.js";
import { InboundHttp } from "./l7/inbound-http.js";
import { DEFAULT_PROXY_LIMITS, KeyedCounter } from "./limits.js";
import { workloadRef } from "./names.js";
import { MESH_TLS_VERSION, onCredentialExpiry, type PeerCredential, parseBundle, peerCredential, stillTrusted } from "./peer-credential.js";
import { HBONE_ALPN, identitySni } from "./tls.js";

interface SessionInfo {
  peer: string;
  credential: PeerCredential;
  /** Identity presented to this peer (chosen by SNI). */
  presented?: string;
  peerAddr: { ip: string; port: number };
}

/** OpenSSL's verification of a server-side TLS socket's client chain: null when it passed. */
function peerVerifyError(tls: TLSSocket): string | null {
  const handle = (tls as unknown as { _handle?: { verifyError?: () => (Error & { code?: string }) | null } })._handle;
  if (typeof handle?.verifyError !== "function") return "this Node does not expose the TLS verification result";
  if (!tls.getPeerCertificate()?.raw) return "no client certificate";
  const e = handle.verifyError();
  return e ? (e.code ?? e.message) : null;
}

/** The HBONE listener. */
export class InboundServer {
  private server?: Http2SecureServer;
  /** HBONE addressed to a pod's IP:15008 (captured by the node's tproxy rule), no SNI needed. */
  private captured?: Server;
  /**
   * Identity presented on captured connections (by "ip:port" of the peer: the session hands out a
   * proxy of its socket, not the socket), chosen by the pod address the peer dialled.
   */
  private readonly presentedByPeer = new Map<string, string>();
  private readonly sessions = new WeakMap<ServerHttp2Session, SessionInfo>();
  private readonly live = new Set<ServerHttp2Session>();
  /** Set by close(): sessions are drained, not served. */
  private closing = false;
  private sniCache: { version: string; map: Map<string, string> } = { version: "", map: new Map() };
  private readonly limits;
  /** Per source address: connections still in the TLS handshake, and all connections. */
  private readonly handshaking = new KeyedCounter();
  private readonly perPeer = new KeyedCounter();
  /** Connections by "ip:port", to release their counts once, whichever way they end. */
  private readonly accounted = new Map<string, { ip: string; secured: boolean; released: boolean }>();
  /** Streams waiting for a pod to accept, per pod address. */
  private readonly dialing = new KeyedCounter();
  /** The HTTP server for tunnels whose requests need checking one by one (made on first use). */
  private http?: InboundHttp;

  constructor(private readonly ctx: ProxyContext) {
    this.limits = { ...DEFAULT_PROXY_LIMITS, ...ctx.config.limits };
  }

  /** Starts listening on the configured HBONE address. */
  async start(): Promise<void> {
    const { config } = this.ctx;
    const limits = this.limits;
    // Every context this server ever uses pins the version: setSecureContext and the per-identity
    // contexts chosen by SNI would otherwise fall back to OpenSSL's default floor (TLS 1.2).
    const pinned: SecureContextOptions = { minVersion: MESH_TLS_VERSION, maxVersion: MESH_TLS_VERSION };
    const server = createSecureServer({
      allowHTTP1: false,
      ALPNProtocols: HBONE_ALPN,
      ...pinned,
      handshakeTimeout: limits.handshakeTimeoutMs,
      requestCert: true,
      rejectUnauthorized: true,
      ca: [...this.ctx.identity.trustBundle()],
      SNICallback: (servername, cb) => {
        this.contextFor(servername).then(
          (c) => cb(null, c),
          (e: Error) => cb(e, undefined),
        );
      },
      settings: {
        initialWindowSize: config.streamWindowBytes,
        maxConcurrentStreams: limits.maxStreamsPerSession,
        maxHeaderListSize: limits.maxHeaderBytes,
        enablePush: false,
      },
      maxHeaderListPairs: 64,
      maxSessionMemory: limits.sessionMemoryMb,
    });
    server.on("connection", (raw: Socket) => this.admit(raw));
    server.on("secureConnection", (socket: TLSSocket) => {
      const key = `${socket.remoteAddress}:${socket.remotePort}`;
      const acc = this.accounted.get(key);
      if (acc && !acc.secured) {
        acc.secured = true;
        this.handshaking.release(acc.ip);
      }
      socket.once("close", () => this.release(key));
      // Belt and braces: whatever context was chosen, nothing below TLS 1.3 gets a session.
      if (socket.getProtocol() !== MESH_TLS_VERSION) {
        this.ctx.metrics.limitHit("tls_version");
        this.ctx.log.warn({ peer: key, protocol: socket.getProtocol() }, "HBONE peer negotiated an old TLS version; closing");
        socket.destroy();
        return;
      }
      // Frames for many streams share each socket: never hold a small write back for Nagle.
      socket.setNoDelay(true);
    });
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
    server.on("tlsClientError", (err: Error & { code?: string }, socket: TLSSocket) => {
      const key = `${socket.remoteAddress}:${socket.remotePort}`;
      this.release(key);
      if (err.code === "ERR_TLS_HANDSHAKE_TIMEOUT") {
        this.ctx.metrics.limitHit("handshake_timeout");
        this.ctx.log.debug({ peer: key }, "HBONE TLS handshake timed out");
        return;
      }
      this.ctx.log.warn({ peer: key, err: err.message }, "HBONE TLS handshake refused");
    });
    this.ctx.identity.onChange(() => {
      server.setSecureContext({ ca: [...this.ctx.identity.trustBundle()], ...pinned });
      this.drainUntrusted();
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      const { ip, port } = config.hbone;
      server.listen(config.reusePort ? sharedListen(ip, port) : { port, host: ip, backlog: 4096 }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
    if (config.hboneCaptured) await this.startCaptured(server, config.hboneCaptured);
  }

  /**
   * HBONE as ztunnel and other implementations address it: TCP to <pod IP>:15008 with no weft
   * SNI. The node's tproxy rule hands such connections to this IP_TRANSPARENT listener, whose
   * accepted socket's local address is the pod: its identity's certificate is presented, then the
   * TLS socket joins the HTTP/2 server like any other, so streams are decided identically.
   */
  private async startCaptured(h2server: Http2SecureServer, at: { ip: string; port: number }): Promise<void> {
    // Paused until the TLS layer is on: no byte of the handshake may be read by the plain socket.
    const captured = createServer({ pauseOnConnect: true }, (raw) => {
      raw.on("error", () => undefined);
      void this.acceptCaptured(h2server, raw).catch((e: Error) => {
        this.ctx.log.warn({ peer: raw.remoteAddress, err: e.message }, "HBONE to a pod address refused");
        raw.destroy();
      });
    });
    const fd = transparentListener(at.ip, at.port, this.ctx.config.reusePort ?? false);
    await new Promise<void>((resolve, reject) => {
      captured.once("error", reject);
      captured.listen({ fd }, () => {
        captured.off("error", reject);
        resolve();
      });
    });
    this.captured = captured;
  }

  private async acceptCaptured(h2server: Http2SecureServer, raw: Socket): Promise<void> {
    const local = (raw.localAddress ?? "").replace(/^::ffff:/, "");
    const view = this.ctx.view();
    const pod = view.workloadByAddress(local);
    if (!pod || pod.node !== view.nodeName || !pod.enrolled) {
      throw new Error(`${local} is no enrolled pod of node ${view.nodeName}`);
    }
    const key = `${raw.remoteAddress}:${raw.remotePort}`;
    this.admit(raw);
    if (raw.destroyed) return;
    const cert = this.ctx.identity.cached(pod.identity) ?? (await this.ctx.identity.certificate(pod.identity));
    const tls = new TLSSocket(raw, {
      isServer: true,
      secureContext: this.ctx.contexts.get(cert, this.ctx.identity.trustBundle()),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: HBONE_ALPN,
    });
    const timer = setTimeout(() => {
      this.ctx.metrics.limitHit("handshake_timeout");
      tls.destroy();
    }, this.limits.handshakeTimeoutMs);
    tls.once("close", () => {
      clearTimeout(timer);
      this.presentedByPeer.delete(key);
      this.release(key);
    });
    tls.on("error", (e) => {
      clearTimeout(timer);
      this.ctx.log.warn({ peer: key, pod: `${pod.namespace}/${pod.name}`, err: e.message }, "HBONE TLS handshake refused");
      tls.destroy();
    });
    tls.once("secure", () => {
      clearTimeout(timer);
      // Outside tls.Server nobody judges the client's chain: ask OpenSSL's verdict as the server
      // does (fail closed if this Node cannot tell), and only then mark the socket authorized.
      const verdict = peerVerifyError(tls);
      if (verdict !== null || tls.alpnProtocol !== "h2") {
        this.ctx.log.warn({ peer: key, reason: verdict ?? "no h2 ALPN" }, "HBONE peer refused; closing");
        tls.destroy();
        return;
      }
      tls.authorized = true;
      // As tls.Server marks its sockets done: HTTP/2 otherwise waits for a 'secureConnect' that a
      // server-side socket never emits.
      (tls as TLSSocket & { secureConnecting: boolean }).secureConnecting = false;
      this.presentedByPeer.set(key, pod.identity);
      // The HTTP/2 server takes it from here exactly as a connection it accepted itself.
      h2server.emit("secureConnection", tls);
    });
    raw.resume();
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

  /** A TCP connection arrived: refuse it when its source already holds too many. */
  private admit(raw: Socket): void {
    const ip = raw.remoteAddress ?? "";
    const key = `${ip}:${raw.remotePort}`;
    if (!this.perPeer.take(ip, this.limits.maxConnectionsPerPeer)) {
      this.ctx.metrics.limitHit("connections_per_peer");
      raw.destroy();
      return;
    }
    if (!this.handshaking.take(ip, this.limits.maxHandshakesPerPeer)) {
      this.perPeer.release(ip);
      this.ctx.metrics.limitHit("handshakes_per_peer");
      raw.destroy();
      return;
    }
    this.accounted.set(key, { ip, secured: false, released: false });
    raw.once("close", () => this.release(key));
  }

  /** A connection ended (closed, handshake failed or timed out): gives its counts back, once. */
  private release(key: string): void {
    const acc = this.accounted.get(key);
    if (!acc || acc.released) return;
    acc.released = true;
    this.accounted.delete(key);
    if (!acc.secured) this.handshaking.release(acc.ip);
    this.perPeer.release(acc.ip);
  }

  /** The bundle changed: sessions whose peer chain no new root vouches for take no new streams. */
  private drainUntrusted(): void {
    const roots = parseBundle(this.ctx.identity.trustBundle());
    for (const session of this.live) {
      const info = this.sessions.get(session);
      if (!info || stillTrusted(info.credential.top, roots)) continue;
      this.ctx.log.info({ peer: info.peer }, "the root that authenticated this HBONE session was retired; draining it");
      session.close();
    }
  }

  private onSession(session: ServerHttp2Session): void {
    const socket = session.socket as TLSSocket;
    const credential = peerCredential(socket, this.ctx.view().data.trustDomain);
    if ("refused" in credential) {
      this.ctx.log.warn({ peer: socket.remoteAddress, reason: credential.refused }, "HBONE peer refused; closing");
      session.destroy();
      return;
    }
    const peer = credential.identity;
    const servername = (socket as TLSSocket & { servername?: string }).servername;
    const presented =
      this.presentedByPeer.get(`${socket.remoteAddress}:${socket.remotePort}`) ??
      (servername ? this.sniCache.map.get(servername) : undefined);
    this.sessions.set(session, {
      peer,
      credential,
      ...(presented ? { presented } : {}),
      peerAddr: { ip: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 },
    });
    this.live.add(session);
    // A handshake that completed after close() began: this session drains from the start.
    if (this.closing) drainSession(session);
    // The certificate that authenticated the peer bounds the session: at expiry it takes no new
    // streams (GOAWAY); streams already open finish.
    const cancelExpiry = onCredentialExpiry(credential.notAfter, () => {
      this.ctx.log.info({ peer }, "the peer certificate of this HBONE session expired; draining it");
      session.close();
    });
    session.once("close", () => {
      cancelExpiry();
      this.live.delete(session);
    });
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
    const attributed = attributeSource(this.ctx.view(), headers.forwarded, info.peer, info.peerAddr.ip);
    if (!attributed.ok) {
      stream.respond({ ":status": 400, [ERROR_HEADER]: "WEFT_BAD_TUNNEL_REQUEST" }, { endStream: true });
      this.ctx.log.warn({ peer: info.peer, reason: attributed.reason }, "HBONE CONNECT refused");
      return;
    }
    if (!attributed.trusted && headers.forwarded !== undefined) {
      this.ctx.log.debug(
        { peer: info.peer, forwarded: headers.forwarded },
        "forwarded header not vouched for by the peer; using its address",
      );
    }
    const sourceIp = attributed.ip;
    const input = {
      sourceIdentity: info.peer,
      sourceIp,
      target,
      ...(info.presented ? { presentedIdentity: info.presented } : {}),
      httpCapable: true,
      traced: this.ctx.tracer !== undefined,
    };
    const view = this.ctx.view();
    const decision = checkInbound(view, input);
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
    void this.deliver(stream, decision, connInfo, info.peer, () => refusedSince(view, this.ctx.view(), (v) => checkInbound(v, input)));
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
    refusedNow: () => LateRefusal | null,
  ): Promise<void> {
    const labels = this.labels(decision, peer);
    if (decision.http) {
      this.http ??= new InboundHttp(this.ctx);
      const { destination, source, http } = decision;
      const scope = { sourceIdentity: peer, sourceIp: connInfo.src.ip, destination, target: connInfo.dst, duties: http };
      this.http.accept(stream, source ? { ...scope, source } : scope, connInfo, labels);
      return;
    }
    const pod = `${connInfo.dst.ip}:${connInfo.dst.port}`;
    if (!this.dialing.take(pod, this.limits.maxPendingDialsPerPod)) {
      this.ctx.metrics.limitHit("pending_dials_per_pod");
      stream.respond({ ":status": 503 }, { endStream: true });
      this.ctx.connections.rejected(
        connInfo,
        labels,
        `too many connections waiting for ${pod} to accept`,
        "CONNECT",
        "WEFT_UPSTREAM_UNREACHABLE",
      );
      return;
    }
    let upstream: Socket;
    try {
      // From the client pod's own address when the peer vouches for it (a known workload with the
      // authenticated identity): the pod, and any NetworkPolicy in front of it, see the real client.
      const source = decision.source && this.ctx.config.transparent ? connInfo.src.ip : undefined;
      upstream = await dial(connInfo.dst, this.ctx.config.connectTimeoutMs, source ? { source } : {});
    } catch (e) {
      if (!stream.destroyed) stream.respond({ ":status": 503, [ERROR_HEADER]: "WEFT_UPSTREAM_UNREACHABLE" }, { endStream: true });
      this.ctx.connections.rejected(connInfo, labels, errorMessage(e), "CONNECT", "WEFT_UPSTREAM_UNREACHABLE");
      return;
    } finally {
      this.dialing.release(pod);
    }
    if (stream.destroyed) {
      upstream.destroy();
      return;
    }
    const late = refusedNow();
    if (late) {
      abortSocket(upstream);
      stream.respond({ ":status": late.status, [ERROR_HEADER]: late.code }, { endStream: true });
      this.ctx.connections.rejected(connInfo, labels, late.reason, late.flags, late.code);
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
        abortSocket(up);
      },
    );
    // A stream cut by its session's end (peer gone, RST_STREAM) can still look ended both ways to
    // the splice; the pod must see an abort then, or a pod that never closes holds it forever.
    stream.on("close", () => {
      if ((stream.aborted || stream.rstCode !== h2.NGHTTP2_NO_ERROR) && !up.destroyed) abortSocket(up);
    });
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

  /**
   * Stops accepting; drains sessions (graceful: GOAWAY in two steps, open streams finish) or
   * destroys them. Resolves once every session has closed. The destination HTTP servers stay up
   * for the streams still open until closeHttp().
   */
  async close(graceful = true): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.closing = true;
    this.http?.drain();
    this.captured?.close();
    const done = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.live) {
      if (graceful) drainSession(s);
      else s.destroy();
    }
    if (!graceful) this.closeHttp();
    await done;
  }

  /** Closes the destination HTTP servers' connections (at the end of a drain). */
  closeHttp(): void {
    this.http?.close();
  }
}
