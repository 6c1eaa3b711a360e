/**
 * The destination node's HTTP server for allowed HBONE (or same-node) connections to HTTP ports
 * that need request-level work: each request inside the CONNECT stream is authorized with its
 * HTTP attributes (DENY before ALLOW, dry-run counted, AUDIT logged), answered 403
 * `RBAC: access denied` on its own when denied, or forwarded to the local pod over a keep-alive
 * connection; every request is counted with reporter="destination" and access-logged.
 *
 * Ports whose policies HTTP attributes cannot change stay on the L4 splice (inbound.ts): parsing
 * costs latency, and Istio ambient reports destination HTTP metrics only with a waypoint. So
 * destination request metrics exist exactly for the connections this server takes.
 */
import type { IncomingMessage, OutgoingHttpHeaders } from "node:http";
import { createServer as createH2Server, constants as h2, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { errorMessage } from "../../../common/errors.js";
import type { Workload } from "../../../controller/api/model.js";
import { type ResponseFlag, type TrafficLabels, trafficLabels } from "../../telemetry/labels.js";
import type { RequestSpan } from "../../telemetry/tracing.js";
import { authorize, type RequestFacts } from "../authz.js";
import type { ConnectionInfo } from "../connection-manager.js";
import type { ProxyContext } from "../context.js";
import { spliceWith } from "../copy.js";
import { dial } from "../dial.js";
import type { HttpDuties } from "../inbound-policy.js";
import { workloadRef } from "../names.js";
import type { SocketAddr } from "../request.js";
import { pipeBody } from "./body.js";
import { socketLike, UpstreamClients } from "./clients.js";
import { type Downstream, discardBody, endToEnd, h2Downstream } from "./downstream.js";
import { H1Entry } from "./h1-entry.js";
import { H1Server } from "./h1-server.js";
import { fetchJwks } from "./jwks-fetch.js";
import { authenticate, JwksCache } from "./jwt.js";
import { sniff, withSniffedBytes } from "./protocol.js";
import { RateLimiter } from "./rate-limit.js";
import { carryUpgrade, checkUpgradeRequest, recordUpgrade, refuseUpgrade, upgradeRequestHead } from "./upgrade.js";

/** The facts every request on one inbound connection shares. */
export interface InboundHttpScope {
  sourceIdentity: string;
  sourceIp: string;
  source?: Workload;
  destination: Workload;
  target: SocketAddr;
  duties: HttpDuties;
}

/** Bounded wait for the first request bytes (the source proxy writes them at once). */
const FIRST_BYTES_WAIT_MS = 10_000;
/**
 * Wait for the first bytes on a port that declares no protocol; silence means a server-first
 * protocol (TCP). Longer than the source's 100 ms: the bytes come through the source's proxy and
 * HBONE, and HTTP taken for TCP would meet its policy's HTTP rules failing closed.
 */
const SNIFF_WAIT_MS = 1_000;

/** Istio's body for a request RBAC denied. */
const RBAC_DENIED = "RBAC: access denied";
/** The body of every 401 for a token (Envoy's generic jwt_authn status text). */
const JWT_REFUSED = "Jwt verification fails";

/** Per-worker destination HTTP server. */
export class InboundHttp {
  private readonly h1: H1Entry<InboundHttpScope>;
  private readonly fast: H1Server<InboundHttpScope>;
  private readonly clients: UpstreamClients;
  private readonly limiter = new RateLimiter();
  /** JWKS caches per workload the keys are fetched for (the fetch rides that workload's identity). */
  private readonly jwks = new Map<string, JwksCache>();

  constructor(private readonly ctx: ProxyContext) {
    this.clients = new UpstreamClients(ctx);
    this.h1 = new H1Entry<InboundHttpScope>(
      { requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 3_600_000 },
      (scope, down) => this.handle(scope, down),
      (e, cleanup) => this.crashed(e, cleanup),
    );
    this.h1.server.on("clientError", (_err: Error, socket: Duplex) => socket.destroy());
    this.h1.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    // weft's own HTTP/1.1 server; what it does not speak (Upgrade, CONNECT, HTTP/1.0, Expect)
    // goes to the node:http entry above.
    this.fast = new H1Server<InboundHttpScope>(
      {
        handle: (scope, down) => this.handle(scope, down),
        crashed: (e, cleanup) => this.crashed(e, cleanup),
        handOver: (sock, scope) => this.h1.adopt(sock, scope),
        limitHit: (limit) => this.ctx.metrics.limitHit(limit),
      },
      { headersTimeoutMs: 60_000 },
    );
  }

  /** Answers the CONNECT, tracks the connection and serves its requests. */
  accept(stream: ServerHttp2Stream, scope: InboundHttpScope, info: ConnectionInfo, labels: TrafficLabels): void {
    stream.respond({ ":status": 200 });
    // Bytes are counted per request (istio_request_bytes); the tunnel's own byte counters stay 0
    // unless sniffing found TCP and the tunnel is spliced to the pod.
    const spliced: { up?: Socket } = {};
    // Kept: a tunnel sniffed as TCP becomes mode "tcp", which a policy change re-checks at L4.
    const record: ConnectionInfo = { ...info, mode: "http" };
    const tracked = this.ctx.connections.open(
      record,
      labels,
      () => (spliced.up ? { received: spliced.up.bytesWritten, sent: spliced.up.bytesRead } : { received: 0, sent: 0 }),
      (reason) => {
        this.ctx.log.info({ reason, dst: info.dstWorkload }, "closing connection");
        stream.close(h2.NGHTTP2_CANCEL);
      },
    );
    stream.once("close", () => tracked.close());
    void this.serve(stream, scope, spliced, record).catch((e: Error) => this.crashed(e, () => stream.close(h2.NGHTTP2_INTERNAL_ERROR)));
  }

  /**
   * Serves the HTTP requests of an accepted tunnel (the CONNECT already answered 200). Bytes
   * that are not HTTP cannot be checked request by request: on a port declared HTTP the tunnel
   * is reset (fail closed); on one that declares nothing they get the L4 decision and a splice.
   */
  private async serve(stream: Duplex, scope: InboundHttpScope, spliced: { up?: Socket }, record: ConnectionInfo): Promise<void> {
    const protocol = await sniff(stream as unknown as Socket, scope.duties.sniffed ? SNIFF_WAIT_MS : FIRST_BYTES_WAIT_MS);
    if (protocol === "tcp" && scope.duties.sniffed) {
      // Tokens and request counts cannot be checked on bytes weft cannot read, and an app may
      // still read them as HTTP (HTTP/0.9, an odd method): refused, not spliced past the checks.
      if (scope.duties.jwt || scope.duties.rateLimit) {
        this.ctx.log.warn(
          { dst: workloadRef(scope.destination), src: scope.sourceIdentity },
          "non-HTTP bytes on a port that declares no protocol, where RequestAuthentication or a RateLimitPolicy applies; closing (fail closed; declare the port TCP to carry another protocol)",
        );
        stream.destroy();
        return;
      }
      record.mode = "tcp";
      await this.spliceTcp(stream, scope, spliced);
      return;
    }
    if (protocol !== "http1" && protocol !== "http2") {
      if (protocol === "tcp")
        this.ctx.log.warn(
          { dst: workloadRef(scope.destination), src: scope.sourceIdentity },
          "non-HTTP bytes on an HTTP port whose policy needs HTTP attributes; closing (fail closed)",
        );
      stream.destroy();
      return;
    }
    const sock = socketLike(stream);
    if (protocol === "http1") {
      this.fast.adopt(sock, scope);
      return;
    }
    const server = createH2Server({ settings: { enablePush: false } });
    server.on("stream", (s: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      const down = h2Downstream(s, headers);
      if (down) void this.handle(scope, down).catch((e: Error) => this.crashed(e, () => s.close()));
    });
    server.on("session", (session) => session.on("error", () => undefined));
    server.emit("connection", withSniffedBytes(sock));
  }

  /**
   * Non-HTTP bytes on a port that declares no protocol: what the L4 path gives them.
   * Authorization without request attributes (rules with HTTP parts fail closed), then a splice
   * to the pod, from the client's own address when the peer vouches for it (as inbound.ts does).
   */
  private async spliceTcp(stream: Duplex, scope: InboundHttpScope, spliced: { up?: Socket }): Promise<void> {
    const d = scope.destination;
    const decision = authorize(this.ctx.view().authorizationPoliciesFor(d), {
      sourceIdentity: scope.sourceIdentity,
      sourceIp: scope.sourceIp,
      destinationIp: scope.target.ip,
      destinationPort: scope.target.port,
    });
    if (!decision.allowed) {
      this.ctx.log.warn(
        { dst: workloadRef(d), src: scope.sourceIdentity, reason: decision.reason },
        "non-HTTP bytes on a port that declares no protocol; denied at L4 (rules with HTTP attributes fail closed)",
      );
      stream.destroy();
      return;
    }
    let up: Socket;
    try {
      up = await this.dialPod(scope);
    } catch (e) {
      this.ctx.log.warn({ dst: workloadRef(d), err: errorMessage(e) }, "could not reach the pod for a sniffed TCP connection");
      stream.destroy();
      return;
    }
    if (stream.destroyed) {
      up.destroy();
      return;
    }
    spliced.up = up;
    spliceWith(stream, up, () => undefined);
  }

  /** A connection to the pod, from the client's own address when the peer vouches for it (as inbound.ts dials). */
  private dialPod(scope: InboundHttpScope): Promise<Socket> {
    const source = scope.source && this.ctx.config.transparent ? scope.sourceIp : undefined;
    return dial(scope.target, this.ctx.config.connectTimeoutMs, source ? { source } : {});
  }

  private jwksFor(w: Workload): JwksCache {
    let c = this.jwks.get(w.uid);
    if (!c) {
      c = new JwksCache((uri) => fetchJwks(this.ctx, w, uri));
      this.jwks.set(w.uid, c);
    }
    return c;
  }

  /** Draining: HTTP/1.1 connections close after their next response (see H1Entry.drain). */
  drain(): void {
    this.fast.drain();
    this.h1.drain();
  }

  private crashed(e: Error, cleanup: () => void): void {
    this.ctx.log.error({ err: e.message, stack: e.stack }, "inbound HTTP request handling failed; dropping that request");
    try {
      cleanup();
    } catch {
      // already gone
    }
  }

  /** Authorizes one request, then answers it locally or forwards it to the pod. */
  private async handle(scope: InboundHttpScope, down: Downstream): Promise<void> {
    const started = Date.now();
    const view = this.ctx.view();
    const request: RequestFacts = { method: down.method, path: down.path, host: down.authority, headers: down.headers };
    const ev: Served = { status: 0, flags: "-", bytesSent: 0, bytesReceived: 0 };
    const d = scope.destination;
    const span = this.ctx.tracer?.start(
      "server",
      down.headers,
      {
        method: down.method,
        path: down.path,
        authority: down.authority,
        canonicalService: d.canonicalName,
        canonicalRevision: d.canonicalRevision,
        namespace: d.namespace,
      },
      view.samplingFor(d),
    );
    if (span) ev.span = span;
    const refused = await this.admit(scope, request);
    if (refused) {
      discardBody(down);
      ev.status = refused.status;
      ev.flags = refused.flags;
      ev.reason = refused.reason;
      ev.bytesSent = down.reply(refused.status, refused.body, refused.headers);
      this.finish(scope, down, ev, started);
      return;
    }
    await this.forward(scope, down, request.headers, ev);
    this.finish(scope, down, ev, started);
  }

  /**
   * Whether a request may go to the pod: its rate limit, its token (request.headers and
   * request.auth become what the token says), then authorization with its HTTP attributes,
   * always decided afresh (policy may have changed since the tunnel was accepted).
   */
  private async admit(scope: InboundHttpScope, request: RequestFacts): Promise<Refusal | undefined> {
    const view = this.ctx.view();
    const d = scope.destination;
    const limited = this.limiter.admit(view.rateLimitsFor(d), d.uid, scope.sourceIdentity);
    if (limited)
      return {
        status: 429,
        flags: "RL",
        reason: `rate limited by ${limited}`,
        body: "local_rate_limited",
        headers: { "x-weft-rate-limited": "true" },
      };
    const rules = view.jwtRulesFor(d);
    if (rules.length > 0) {
      const a = await authenticate(rules, request.headers, request.path, this.jwksFor(d).keys);
      // The reason names the policy, key hosts and fetch errors: kept for the access log, never told to the client.
      if (a.kind === "invalid")
        return { status: 401, flags: "-", reason: a.reason, body: JWT_REFUSED, headers: { "www-authenticate": 'Bearer realm="weft"' } };
      request.headers = a.headers;
      if (a.kind === "valid") request.auth = a.auth;
    }
    const decision = authorize(view.authorizationPoliciesFor(d), {
      sourceIdentity: scope.sourceIdentity,
      sourceIp: scope.sourceIp,
      destinationIp: scope.target.ip,
      destinationPort: scope.target.port,
      request,
    });
    for (const o of decision.dryRun ?? []) {
      this.ctx.metrics.dryRun(o.policy, o.result);
      this.ctx.log.info(
        { policy: o.policy, result: o.result, method: request.method, path: request.path },
        "dry-run policy outcome (not enforced)",
      );
    }
    if (decision.audit)
      this.ctx.log.info(
        { audit: decision.audit, method: request.method, path: request.path, src: scope.sourceIdentity },
        "AUDIT policy matched",
      );
    if (!decision.allowed) return { status: 403, flags: "DENY", reason: decision.reason, body: RBAC_DENIED, headers: {} };
    return undefined;
  }

  /**
   * An HTTP/1.1 Upgrade (WebSocket) inside a tunnel: admitted as any request (rate limit, token,
   * authorization), then sent to the pod, the connection becoming a byte tunnel only on the pod's
   * 101 (upgrade.ts). Counted and logged as one request once it is over.
   */
  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // node:http takes its own 'error' listener off an upgraded socket (see http-proxy.ts).
    socket.on("error", () => undefined);
    socket.pause();
    void this.upgrade(req, socket, head).catch((e: Error) => this.crashed(e, () => socket.destroy()));
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const started = Date.now();
    const scope = this.h1.scopeOf(req.socket);
    if (!scope) {
      refuseUpgrade(socket, 500, "no scope for this connection");
      return;
    }
    const checked = checkUpgradeRequest(req);
    const line = {
      method: req.method ?? "GET",
      path: "error" in checked ? (req.url ?? "/") : checked.path,
      authority: "error" in checked ? String(req.headers.host ?? "") : checked.authority,
      headers: req.headers as Record<string, string | string[]>,
      grpc: false,
    };
    const ev: Served = { status: 0, flags: "-", bytesSent: 0, bytesReceived: 0 };
    const refuse = (r: Refusal) => {
      Object.assign(ev, { status: r.status, flags: r.flags, reason: r.reason });
      ev.bytesSent = refuseUpgrade(socket, r.status, r.body, r.headers);
      this.finish(scope, line, ev, started);
    };
    if ("error" in checked) {
      refuse({ status: 400, flags: "-", reason: checked.error, body: `bad request: ${checked.error}`, headers: {} });
      return;
    }
    const request: RequestFacts = { method: checked.method, path: checked.path, host: checked.authority, headers: endToEnd(req.headers) };
    const refused = await this.admit(scope, request);
    if (refused) {
      refuse(refused);
      return;
    }
    let requestHead: Buffer;
    try {
      requestHead = upgradeRequestHead(checked.method, checked.path, checked.authority, request.headers, checked.upgrade);
    } catch (e) {
      refuse({ status: 400, flags: "-", reason: errorMessage(e), body: `bad request: ${errorMessage(e)}`, headers: {} });
      return;
    }
    let up: Socket;
    try {
      up = await this.dialPod(scope);
    } catch (e) {
      refuse({ status: 503, flags: "UF", reason: errorMessage(e), body: "upstream connect error", headers: {} });
      return;
    }
    carryUpgrade(socket, up, { method: checked.method, head: requestHead, asked: checked.asked }, head, (o) => {
      recordUpgrade(ev, o);
      this.finish(scope, line, ev, started);
    });
  }

  /** Sends the request to the pod and streams its response back. */
  private async forward(scope: InboundHttpScope, down: Downstream, headers: Record<string, string | string[]>, ev: Served): Promise<void> {
    const target = { endpoint: { workloadUid: scope.destination.uid, address: scope.target.ip, ready: true }, target: scope.target };
    const ex = this.clients.send(
      scope.destination,
      "inbound",
      { ...target, mode: "local" },
      down.protocol,
      { method: down.method, path: down.path, authority: down.authority, headers },
      {},
    );
    if (down.bodyless) ex.body.end();
    else {
      down.body.on("data", (c: Buffer) => {
        ev.bytesReceived += c.length;
      });
      pipeBody(down.body, ex.body);
    }
    down.onGone(() => ex.abort());
    const r = await ex.response;
    if (!r.ok) {
      ev.status = 503;
      ev.flags = r.failure.kind === "connect-failure" ? "UF" : "UC";
      ev.reason = r.failure.error.message;
      ev.bytesSent = down.reply(503, `upstream connect error: ${r.failure.error.message}\n`);
      return;
    }
    const res = r.response;
    ev.status = res.status;
    const writer = down.start(res.status, endToEnd(res.headers) as OutgoingHttpHeaders);
    await new Promise<void>((resolve) => {
      res.body.on("data", (c: Buffer) => {
        ev.bytesSent += c.length;
        if (!writer.write(c)) {
          res.body.pause();
          writer.onDrain(() => res.body.resume());
        }
      });
      res.body.once("end", () => {
        writer.end(res.trailers());
        resolve();
      });
      res.body.once("close", () => {
        if (!res.body.readableEnded) {
          ev.flags = "UC";
          down.abort();
          resolve();
        }
      });
      down.onGone(() => {
        ev.flags = "DC";
        resolve();
      });
    });
  }

  private finish(scope: InboundHttpScope, down: RequestLine, ev: Served, started: number): void {
    const view = this.ctx.view();
    const service = view.servicesOf(scope.destination)[0];
    const durationMs = Date.now() - started;
    ev.span?.end(ev.status, ev.flags);
    const grpc = down.grpc;
    const labels = trafficLabels({
      reporter: "destination",
      ...(scope.source ? { source: scope.source } : {}),
      sourcePrincipal: scope.sourceIdentity,
      destination: scope.destination,
      ...(service ? { service } : {}),
      mtls: true,
      responseFlags: ev.flags,
      protocol: grpc ? "grpc" : "http",
    });
    this.ctx.metrics.requests.record(labels, ev.status, "", durationMs, ev.bytesReceived, ev.bytesSent);
    const fields = {
      reporter: "destination",
      method: down.method,
      path: down.path,
      authority: down.authority,
      status: ev.status,
      response_flags: ev.flags,
      duration_ms: durationMs,
      x_request_id: down.headers["x-request-id"],
      "src.identity": scope.sourceIdentity,
      "dst.workload": workloadRef(scope.destination),
      bytes_sent: ev.bytesSent,
      bytes_recv: ev.bytesReceived,
      ...(ev.reason ? { reason: ev.reason } : {}),
    };
    if (ev.status >= 500 || ev.flags !== "-") this.ctx.log.warn(fields, "inbound request complete");
    else this.ctx.log.info(fields, "inbound request complete");
  }

  /** Closes pooled pod connections and idle downstream connections. */
  close(): void {
    this.fast.close();
    this.h1.close();
    this.clients.close();
  }
}

/** Why the proxy answers a request itself instead of forwarding it. */
interface Refusal {
  status: number;
  flags: ResponseFlag;
  reason: string;
  body: string;
  headers: Record<string, string>;
}

/** What an access log line and the request metrics need of a request. */
type RequestLine = Pick<Downstream, "method" | "path" | "authority" | "headers" | "grpc">;

interface Served {
  status: number;
  flags: ResponseFlag;
  bytesSent: number;
  bytesReceived: number;
  reason?: string;
  span?: RequestSpan;
}
