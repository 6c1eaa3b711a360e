/**
 * The source node's HTTP proxy for captured connections to HTTP service ports: each request is
 * routed on its own (router.ts), carried out by the forwarding layers (forward.ts) and streamed
 * back, with Istio's request metrics (reporter="source") and one access log line per request.
 * HTTP/1.1 connections are served by weft's own HTTP/1.1 server (h1-server.ts), which hands
 * Upgrade, CONNECT, HTTP/1.0 and Expect requests to one Node HTTP server per worker; an HTTP/2
 * (h2c, gRPC) connection gets its own small server.
 */
import { randomUUID } from "node:crypto";
import diagnostics from "node:diagnostics_channel";
import type { IncomingMessage, OutgoingHttpHeaders } from "node:http";
import { createServer as createH2Server, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Workload } from "../../../controller/api/model.js";
import type { ServiceMatch } from "../../state/view.js";
import { type ResponseFlag, type TrafficLabels, trafficLabels } from "../../telemetry/labels.js";
import type { ConnectionInfo } from "../connection-manager.js";
import { workloadRef } from "../names.js";
import type { SocketAddr } from "../request.js";
import { ReplayableBody } from "./body.js";
import { Cancel } from "./cancel.js";
import { type Downstream, discardBody, endToEnd, h2Downstream, type ResponseWriter } from "./downstream.js";
import { type ForwardResult, forward, type L7Deps } from "./forward.js";
import { H1Entry } from "./h1-entry.js";
import { H1Server } from "./h1-server.js";
import { withSniffedBytes } from "./protocol.js";
import { REQUEST_CHANNEL, type RequestEvent } from "./request-event.js";
import { applyHeaderOperations } from "./rewrite.js";
import { type RouteDecision, route } from "./router.js";
import { openTunnel, targetOf, type UpstreamTarget } from "./tunnel.js";
import { carryUpgrade, checkUpgradeRequest, recordUpgrade, refuseUpgrade, upgradeRequestHead } from "./upgrade.js";

/** Channel carrying RequestEvent per finished request (what `weft tap` shows). */
export const requestChannel = diagnostics.channel(REQUEST_CHANNEL);

/** The facts of a captured connection that every request on it shares. */
export interface HttpConnScope {
  source: Workload;
  src: SocketAddr;
  dst: SocketAddr;
  service: ServiceMatch;
}

/** The label set a connection's requests were last counted under, reused while nothing in it changes. */
interface LastLabels {
  destination: Workload | undefined;
  mtls: boolean;
  flags: ResponseFlag;
  protocol: "http" | "grpc";
  labels: TrafficLabels;
}

const lastLabels = new WeakMap<HttpConnScope, LastLabels>();

/**
 * A finished request's Istio labels. Requests on one connection nearly always share them, so the
 * connection keeps its last set and skips building trafficLabels' cache key per request.
 */
function requestLabels(
  scope: HttpConnScope,
  target: UpstreamTarget | undefined,
  flags: ResponseFlag,
  protocol: "http" | "grpc",
): TrafficLabels {
  const destination = target?.workload;
  const mtls = target ? target.mode !== "passthrough" : true;
  const last = lastLabels.get(scope);
  if (last && last.destination === destination && last.mtls === mtls && last.flags === flags && last.protocol === protocol)
    return last.labels;
  const labels = trafficLabels({
    reporter: "source",
    source: scope.source,
    sourcePrincipal: scope.source.identity,
    ...(destination ? { destination } : {}),
    service: scope.service.service,
    mtls,
    responseFlags: flags,
    protocol,
  });
  lastLabels.set(scope, { destination, mtls, flags, protocol, labels });
  return labels;
}

function routeName(d: RouteDecision): string {
  const r = d.route;
  if (!r) return "-";
  return r.table ? `${r.table}${r.rule ? `#${r.rule}` : ""}` : "default";
}

/** The HTTP side of the outbound listener. */
export class HttpProxy {
  private readonly h1: H1Entry<HttpConnScope>;
  private readonly fast: H1Server<HttpConnScope>;
  private readonly h2Sessions = new Set<{ close(): void }>();

  constructor(private readonly deps: L7Deps) {
    this.h1 = new H1Entry<HttpConnScope>(
      { requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 3_600_000, noDelay: true },
      (scope, down) => this.handle(scope, down),
      (e, cleanup) => this.crashed(e, cleanup),
    );
    this.fast = new H1Server<HttpConnScope>(
      {
        handle: (scope, down) => this.handle(scope, down),
        crashed: (e, cleanup) => this.crashed(e, cleanup),
        handOver: (sock, scope) => this.h1.adopt(sock, scope),
        limitHit: (limit) => this.deps.ctx.metrics.limitHit(limit),
      },
      { headersTimeoutMs: 60_000 },
    );
    this.h1.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    this.h1.server.on("connect", (_req: IncomingMessage, socket: Duplex) => {
      socket.on("error", () => undefined);
      socket.end("HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    });
    this.h1.server.on("clientError", (err: Error & { code?: string }, socket: Duplex) => {
      if (socket.writable)
        socket.end(
          `HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nbad request: ${err.code ?? err.message}\n`,
        );
      else socket.destroy();
    });
  }

  /** Takes a captured connection that speaks HTTP/1.1 or h2c. */
  accept(sock: Socket, protocol: "http1" | "http2", scope: HttpConnScope): void {
    const { ctx } = this.deps;
    const info: ConnectionInfo = {
      direction: "outbound",
      mode: protocol === "http1" ? "http" : "http2",
      src: scope.src,
      dst: scope.dst,
      target: undefined,
      hbone: undefined,
      srcWorkload: workloadRef(scope.source),
      srcIdentity: scope.source.identity,
      dstWorkload: undefined,
      dstIdentity: undefined,
      service: scope.service.service.key,
      policy: undefined,
    };
    const labels = trafficLabels({
      reporter: "source",
      source: scope.source,
      sourcePrincipal: scope.source.identity,
      service: scope.service.service,
      mtls: true,
      protocol: "http",
    });
    const tracked = ctx.connections.open(
      info,
      labels,
      () => ({ received: sock.bytesRead, sent: sock.bytesWritten }),
      (reason) => {
        ctx.log.info({ reason, src: info.srcWorkload }, "closing connection");
        sock.destroy();
      },
    );
    sock.once("close", () => tracked.close());
    if (protocol === "http1") {
      this.fast.adopt(sock, scope);
      return;
    }
    const server = createH2Server({ settings: { enablePush: false } });
    server.on("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      const down = h2Downstream(stream, headers);
      if (down) void this.handle(scope, down).catch((e: Error) => this.crashed(e, () => stream.close()));
    });
    server.on("session", (session) => {
      this.h2Sessions.add(session);
      session.once("close", () => this.h2Sessions.delete(session));
      session.on("error", () => undefined);
    });
    server.emit("connection", withSniffedBytes(sock));
  }

  private crashed(e: Error, cleanup: () => void): void {
    this.deps.ctx.log.error({ err: e.message, stack: e.stack }, "HTTP request handling failed; dropping that request");
    try {
      cleanup();
    } catch {
      // already gone
    }
  }

  /** Draining: HTTP/1.1 connections close after their next response (see H1Entry.drain). */
  drain(): void {
    this.fast.drain();
    this.h1.drain();
  }

  /** Routes, forwards and answers one request. */
  private async handle(scope: HttpConnScope, down: Downstream): Promise<void> {
    const { ctx } = this.deps;
    const started = Date.now();
    const headers = down.headers;
    let requestId = headers["x-request-id"];
    if (typeof requestId !== "string" || requestId === "") {
      requestId = randomUUID();
      headers["x-request-id"] = requestId;
    }
    const view = ctx.view();
    const decision = route(view, {
      method: down.method,
      path: down.path,
      authority: down.authority,
      headers,
      service: scope.service,
      source: scope.source,
    });
    const ev: RequestEvent = {
      method: down.method,
      path: down.path,
      authority: down.authority,
      status: 0,
      grpcStatus: "",
      flags: "-",
      durationMs: 0,
      route: routeName(decision),
      attempts: 0,
      requestId,
      source: workloadRef(scope.source),
      bytesSent: 0,
      bytesReceived: 0,
    };
    switch (decision.kind) {
      case "direct":
        discardBody(down);
        ev.status = decision.status;
        ev.bytesSent = down.reply(decision.status, decision.body ?? "");
        this.finish(scope, ev, started);
        return;
      case "redirect":
        discardBody(down);
        ev.status = decision.status;
        down.reply(decision.status, "", { location: decision.location });
        this.finish(scope, ev, started);
        return;
      case "no-route":
        discardBody(down);
        ev.status = decision.status;
        ev.flags = "NR";
        ev.reason = decision.reason;
        down.reply(decision.status, `no route: ${decision.reason}\n`);
        this.finish(scope, ev, started);
        return;
      case "forward":
        break;
    }
    const reqHeaders = applyHeaderOperations(headers, decision.requestHeaders) as Record<string, string | string[]>;
    const q = decision.path.indexOf("?");
    const body = new ReplayableBody(down.bodyless ? undefined : down.body);
    const gone = new Cancel();
    down.onGone(() => gone.abort());
    ev.upstreamCluster = decision.cluster.key;
    const s = scope.source;
    const span = ctx.tracer?.start(
      "client",
      reqHeaders,
      {
        method: down.method,
        path: decision.path,
        authority: decision.authority,
        canonicalService: s.canonicalName,
        canonicalRevision: s.canonicalRevision,
        namespace: s.namespace,
      },
      ctx.view().samplingFor(s),
    );
    const result = await forward(this.deps, decision, {
      source: scope.source,
      sourceIp: scope.src.ip,
      protocol: down.protocol,
      head: { method: down.method, path: decision.path, authority: decision.authority, headers: reqHeaders },
      query: q >= 0 ? decision.path.slice(q + 1) : "",
      body,
      signal: gone,
      started,
    });
    this.mirror(decision, scope, down, reqHeaders, body);
    ev.attempts = result.attempts;
    if (result.target) {
      ev.upstream = `${result.target.target.ip}:${result.target.target.port}`;
      if (result.target.workload) ev.destinationWorkload = workloadRef(result.target.workload);
    }
    if (result.kind === "local") {
      body.detach();
      discardBody(down);
      ev.status = result.status;
      ev.flags = result.flags;
      ev.reason = result.reason;
      if (down.grpc) ev.grpcStatus = String(result.grpcStatus ?? "");
      if (result.status !== 499) ev.bytesSent = down.reply(result.status, `${result.reason}\n`, {}, result.grpcStatus);
      ev.bytesReceived = body.bytes;
      span?.end(ev.status, ev.flags);
      this.finish(scope, ev, started, result.target);
      return;
    }
    const streaming = this.stream(down, decision, result, ev);
    if (streaming) await streaming;
    ev.bytesReceived = body.bytes;
    span?.end(ev.status, ev.flags);
    this.finish(scope, ev, started, result.target);
  }

  /**
   * Streams an upstream response to the client, honouring backpressure and the deadline. An
   * answer already here in full is written at once, and then there is nothing to wait for
   * (undefined): most small answers take no promise and no extra microtask turn.
   */
  private stream(
    down: Downstream,
    decision: RouteDecision & { kind: "forward" },
    result: ForwardResult & { kind: "response" },
    ev: RequestEvent,
  ): Promise<void> | undefined {
    const res = result.response;
    ev.status = res.status;
    ev.flags = result.flags;
    const out: OutgoingHttpHeaders = applyHeaderOperations(endToEnd(res.headers), decision.responseHeaders);
    if (result.setCookie) {
      const cur = out["set-cookie"];
      out["set-cookie"] = cur === undefined ? [result.setCookie] : [...(Array.isArray(cur) ? cur : [String(cur)]), result.setCookie];
    }
    const grpcHead = res.headers["grpc-status"];
    if (res.whole) {
      // A gRPC head that is the whole answer goes out in trailers-only form (headOnly).
      const w = down.start(res.status, out, res.headOnly);
      for (const c of res.whole) {
        ev.bytesSent += c.length;
        w.write(c);
      }
      const trailers = res.trailers();
      w.end(trailers);
      if (down.grpc) ev.grpcStatus = String(trailers?.["grpc-status"] ?? grpcHead ?? "");
      result.done();
      return undefined;
    }
    return new Promise<void>((resolve) => {
      let finished = false;
      const finish = (flags?: ResponseFlag) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        if (flags) ev.flags = flags;
        const trailerStatus = res.trailers()?.["grpc-status"];
        if (down.grpc) ev.grpcStatus = String(trailerStatus ?? grpcHead ?? "");
        result.done();
        resolve();
      };
      const remaining = result.deadline - Date.now();
      const timer = Number.isFinite(remaining)
        ? setTimeout(
            () => {
              // The whole-request timeout passed mid-body: the response cannot be completed.
              result.abort();
              down.abort();
              finish("UT");
            },
            Math.max(0, remaining),
          )
        : undefined;
      // A gRPC answer's head waits for its first message: an answer that turns out to be the head
      // alone (grpc-status in it, no body, no trailers) must go out as gRPC's trailers-only form.
      let started: ResponseWriter | undefined;
      const writer = (headOnly = false): ResponseWriter => {
        started ??= down.start(res.status, out, headOnly);
        return started;
      };
      if (!down.grpc || res.headOnly) writer(res.headOnly);
      down.onGone(() => {
        result.abort();
        finish("DC");
      });
      res.body.on("data", (c: Buffer) => {
        ev.bytesSent += c.length;
        const w = writer();
        if (!w.write(c)) {
          res.body.pause();
          w.onDrain(() => res.body.resume());
        }
      });
      const onEnd = () => {
        const trailers = res.trailers();
        if (!started && !trailers && out["grpc-status"] !== undefined) writer(true);
        else writer().end(trailers);
        finish();
      };
      // An h2 answer with no body can have ended (and closed) while the retry layer looked at it.
      if (res.body.readableEnded) {
        onEnd();
        return;
      }
      if (res.body.destroyed) {
        down.abort();
        finish("UC");
        return;
      }
      res.body.once("end", onEnd);
      res.body.once("error", () => {
        down.abort();
        finish("UC");
      });
      res.body.once("close", () => {
        if (!res.body.readableEnded) {
          down.abort();
          finish("UC");
        }
      });
    });
  }

  /** Sends a copy of the request to each mirror that draws it; responses are discarded. */
  private mirror(
    decision: RouteDecision & { kind: "forward" },
    scope: HttpConnScope,
    down: Downstream,
    headers: Record<string, string | string[]>,
    body: ReplayableBody,
  ): void {
    for (const m of decision.mirrors) {
      if (Math.random() * 100 >= m.percentage) continue;
      const eps = m.cluster.endpoints;
      const ep = eps[Math.floor(Math.random() * eps.length)];
      if (!ep) continue;
      const send = () => {
        const copy = body.buffered();
        if (!copy) return;
        const t = targetOf(this.deps.ctx.view(), ep, m.cluster.port.targetPort);
        const authority = decision.authority.replace(/^([^:]+)/, "$1-shadow");
        const ex = this.deps.clients.send(
          scope.source,
          scope.src.ip,
          t,
          down.protocol,
          { method: down.method, path: decision.path, authority, headers },
          {},
        );
        ex.body.end(copy);
        ex.response.then((r) => {
          if (r.ok) r.response.body.resume();
        });
      };
      if (body.complete) send();
      else down.body.once("end", send);
    }
  }

  private finish(scope: HttpConnScope, ev: RequestEvent, started: number, target?: UpstreamTarget): void {
    const { ctx } = this.deps;
    ev.durationMs = Date.now() - started;
    const labels = requestLabels(scope, target, ev.flags, ev.grpcStatus !== "" ? "grpc" : "http");
    ctx.metrics.requests.record(labels, ev.status, ev.grpcStatus, ev.durationMs, ev.bytesReceived, ev.bytesSent);
    const level = ev.status >= 500 || ev.flags !== "-" ? "warn" : "info";
    // The access-log line is built only when its level is logged (not per request at warn).
    if (ctx.log.isLevelEnabled(level)) {
      const fields = {
        method: ev.method,
        path: ev.path,
        authority: ev.authority,
        status: ev.status,
        grpc_status: ev.grpcStatus || undefined,
        response_flags: ev.flags,
        duration_ms: ev.durationMs,
        route: ev.route,
        upstream: ev.upstream,
        upstream_cluster: ev.upstreamCluster,
        attempts: ev.attempts,
        x_request_id: ev.requestId,
        "src.workload": ev.source,
        "dst.workload": ev.destinationWorkload,
        bytes_sent: ev.bytesSent,
        bytes_recv: ev.bytesReceived,
        ...(ev.reason ? { reason: ev.reason } : {}),
      };
      ctx.log[level](fields, "request complete");
    }
    if (requestChannel.hasSubscribers) requestChannel.publish(ev);
  }

  /**
   * An HTTP/1.1 Upgrade (WebSocket): routed and sent like a request; the connection becomes a
   * byte tunnel only on the upstream's 101 (upgrade.ts). Counted and logged as one request once
   * it is over (a tunnel's duration and bytes are its whole life's, as Envoy reports them).
   */
  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // node:http takes its own 'error' listener off an upgraded socket: without one, a client's
    // reset while the answer is awaited would end the process.
    socket.on("error", () => undefined);
    socket.pause();
    const started = Date.now();
    const scope = this.h1.scopeOf(req.socket);
    if (!scope) {
      refuseUpgrade(socket, 500, "no scope for this connection");
      return;
    }
    const { ctx } = this.deps;
    const checked = checkUpgradeRequest(req);
    const requestId =
      typeof req.headers["x-request-id"] === "string" && req.headers["x-request-id"] !== "" ? req.headers["x-request-id"] : randomUUID();
    const ev: RequestEvent = {
      method: req.method ?? "GET",
      path: "error" in checked ? (req.url ?? "/") : checked.path,
      authority: "error" in checked ? String(req.headers.host ?? "") : checked.authority,
      status: 0,
      grpcStatus: "",
      flags: "-",
      durationMs: 0,
      route: "-",
      attempts: 0,
      requestId,
      source: workloadRef(scope.source),
      bytesSent: 0,
      bytesReceived: 0,
    };
    const refuse = (status: number, why: string, flags: ResponseFlag = "-", target?: UpstreamTarget) => {
      ev.status = status;
      ev.flags = flags;
      ev.reason = why;
      ev.bytesSent = refuseUpgrade(socket, status, why);
      this.finish(scope, ev, started, target);
    };
    if ("error" in checked) {
      refuse(400, `bad request: ${checked.error}`);
      return;
    }
    const headers = endToEnd(req.headers);
    headers["x-request-id"] = requestId;
    const decision = route(ctx.view(), {
      method: checked.method,
      path: checked.path,
      authority: checked.authority,
      headers,
      service: scope.service,
      source: scope.source,
    });
    ev.route = routeName(decision);
    if (decision.kind !== "forward") {
      // A direct response or redirect is an answer to an ordinary request, not to an upgrade.
      if (decision.kind === "no-route") refuse(decision.status, `no route: ${decision.reason}`, "NR");
      else refuse(503, "no upgrade on this route");
      return;
    }
    ev.upstreamCluster = decision.cluster.key;
    const eps = decision.cluster.endpoints;
    const ep = eps[Math.floor(Math.random() * eps.length)];
    if (!ep) {
      refuse(503, `no endpoint in ${decision.cluster.key}`, "UH");
      return;
    }
    let requestHead: Buffer;
    try {
      const edited = applyHeaderOperations(headers, decision.requestHeaders);
      requestHead = upgradeRequestHead(checked.method, decision.path, decision.authority, edited, checked.upgrade);
    } catch (e) {
      refuse(400, `bad request: ${(e as Error).message}`);
      return;
    }
    const t = targetOf(ctx.view(), ep, decision.cluster.port.targetPort);
    ev.upstream = `${t.target.ip}:${t.target.port}`;
    if (t.workload) ev.destinationWorkload = workloadRef(t.workload);
    ev.attempts = 1;
    openTunnel(ctx, scope.source, scope.src.ip, t).then(
      (tunnel) => {
        carryUpgrade(socket, tunnel, { method: checked.method, head: requestHead, asked: checked.asked }, head, (o) => {
          recordUpgrade(ev, o);
          this.finish(scope, ev, started, t);
        });
      },
      (e: Error) => refuse(503, `upstream connection failed: ${e.message}`, "UF", t),
    );
  }

  /** Closes HTTP/2 downstream sessions and the shared HTTP/1 server's idle connections. */
  close(): void {
    for (const s of this.h2Sessions) s.close();
    this.fast.close();
    this.h1.close();
  }
}
