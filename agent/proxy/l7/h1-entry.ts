/**
 * The HTTP/1.1 side of a proxy listener: node:http parses connections the proxy accepted itself
 * (captured sockets, HBONE streams), each served under the scope it was accepted with.
 */
import { createServer, type IncomingMessage, type Server, type ServerOptions } from "node:http";
import type { Duplex } from "node:stream";
import { type Downstream, h1Downstream } from "./downstream.js";
import { type CanonicalTarget, canonicalAuthority, canonicalTarget, isTargetError, type TargetError } from "./request-target.js";

/**
 * The authority of a request node:http parsed: the absolute-form target's, else the one Host.
 * node:http keeps the first of two Host fields and drops the rest, so repeats are counted in
 * the raw fields (RFC 9112 §3.2: 400).
 */
export function requestAuthority(req: IncomingMessage, target: CanonicalTarget): string | TargetError {
  let hosts = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if ((req.rawHeaders[i] as string).toLowerCase() === "host") hosts++;
  if (hosts > 1) return { error: "more than one Host header" };
  if (target.authority !== undefined) return target.authority;
  // HTTP/1.0 may leave Host out; refused then, as Envoy does unless told a default host.
  return canonicalAuthority(req.headers.host);
}

/** An HTTP/1.1 server fed accepted connections, with a drain switch. */
export class H1Entry<S> {
  /** The node:http server (for upgrade, connect and clientError handlers). */
  readonly server: Server;
  private draining = false;
  private readonly scopes = new WeakMap<object, S>();

  constructor(
    options: ServerOptions,
    handle: (scope: S, down: Downstream) => Promise<void>,
    crashed: (e: Error, cleanup: () => void) => void,
  ) {
    this.server = createServer(options, (req, res) => {
      if (this.draining) res.setHeader("connection", "close");
      const scope = this.scopes.get(req.socket);
      if (scope === undefined) {
        res.writeHead(500).end();
        return;
      }
      const target = canonicalTarget(req.method ?? "GET", req.url ?? "/", true);
      const authority = isTargetError(target) ? target : requestAuthority(req, target);
      if (typeof authority !== "string") {
        const body = `bad request: ${authority.error}\n`;
        res.writeHead(400, { "content-type": "text/plain", "content-length": Buffer.byteLength(body), connection: "close" }).end(body);
        return;
      }
      void handle(scope, h1Downstream(req, res, target as CanonicalTarget, authority)).catch((e: Error) => crashed(e, () => res.destroy()));
    });
  }

  /** Serves a connection's requests under its scope. */
  adopt(sock: Duplex, scope: S): void {
    this.scopes.set(sock, scope);
    this.server.emit("connection", sock);
    sock.resume();
  }

  /** The scope a connection was adopted with. */
  scopeOf(sock: object): S | undefined {
    return this.scopes.get(sock);
  }

  /**
   * Draining (a handover or SIGTERM): every further response says Connection: close and its
   * connection closes after it, so keep-alive clients reconnect (to the successor) instead of
   * staying until the drain deadline, as Envoy's drain does.
   */
  drain(): void {
    this.draining = true;
  }

  /** Closes every connection, idle or not. */
  close(): void {
    this.server.closeAllConnections();
  }
}
