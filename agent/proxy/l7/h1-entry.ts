/**
 * The HTTP/1.1 side of a proxy listener: node:http parses connections the proxy accepted itself
 * (captured sockets, HBONE streams), each served under the scope it was accepted with.
 */
import { createServer, type Server, type ServerOptions } from "node:http";
import type { Duplex } from "node:stream";
import { type Downstream, h1Downstream } from "./downstream.js";
import { canonicalTarget, isTargetError } from "./request-target.js";

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
      if (isTargetError(target)) {
        const body = `bad request: ${target.error}\n`;
        res.writeHead(400, { "content-type": "text/plain", "content-length": Buffer.byteLength(body), connection: "close" }).end(body);
        return;
      }
      void handle(scope, h1Downstream(req, res, target)).catch((e: Error) => crashed(e, () => res.destroy()));
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
