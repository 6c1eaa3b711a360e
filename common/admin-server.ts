/**
 * The admin HTTP API (Envoy/ztunnel-style, JSON): bound to 127.0.0.1:15000 and to a unix socket,
 * so the `weft` CLI on the host reaches an agent that lives in a node netns. Components register
 * handlers by path; the composition root (app.ts) registers the agent's own endpoints.
 * The controller reuses this server for its status socket.
 */
import { chmodSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { codeForStatus, errorInfo, errorMessage } from "./errors.js";

/** What a handler sees. */
export interface AdminRequest {
  method: string;
  url: URL;
  body: string;
}

/** What a handler returns: JSON by default, or text, or a stream of JSON lines. */
export interface AdminResponse {
  status?: number;
  json?: unknown;
  text?: string;
  /**
   * A long-lived response (`weft tap`): newline-delimited JSON written through the AdminStream
   * until the handler ends it, the client goes away or the server closes.
   */
  stream?: (out: AdminStream) => void;
}

/** The writing end of a streamed (NDJSON) admin response. */
export interface AdminStream {
  /** Writes one JSON line; false (and nothing written) when the client is not keeping up. */
  send(value: unknown): boolean;
  /** Ends the stream, after a last line when given. */
  end(last?: unknown): void;
  /** Runs fn once when the stream ends for any reason (client gone, end(), server closing). */
  onClose(fn: () => void): void;
  readonly closed: boolean;
}

/** Options of the admin server. */
export interface AdminServerOptions {
  /** A keep-alive line goes out on idle streams this often, so clients can tell a live agent from a hung one. */
  streamKeepAliveMs?: number;
}

/** A handler for one path. */
export type AdminHandler = (req: AdminRequest) => AdminResponse | Promise<AdminResponse>;

interface Route {
  handler: AdminHandler;
  methods: readonly string[];
  description: string;
}

/** Largest request body read (the admin API takes small commands only). */
const MAX_BODY = 64 * 1024;

/** Bytes a streamed response may have queued for a slow client before lines are dropped. */
const MAX_STREAM_BACKLOG = 1024 * 1024;

/** Interval of keep-alive lines on idle streams. */
export const STREAM_KEEPALIVE_MS = 10_000;

/** An error answer (status >= 400 with an `error` field) always names its code, so every client can show it. */
function withCode(status: number, json: unknown): unknown {
  if (status < 400 || json === null || typeof json !== "object" || !("error" in json) || "code" in json) return json;
  return { ...json, code: codeForStatus(status) };
}

/** True when something answers on a unix socket. */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** HTTP admin server on TCP and/or a unix socket. */
export class AdminServer {
  private readonly routes = new Map<string, Route>();
  private readonly servers: Server[] = [];
  private readonly sockets: string[] = [];
  /** Open streams, with their responses (to wait for the last line to flush on close). */
  private readonly streams = new Map<AdminStream, ServerResponse>();

  constructor(
    private readonly log: Logger,
    private readonly opts: AdminServerOptions = {},
  ) {
    this.register("/", () => ({ json: { endpoints: this.endpoints() } }), { description: "this list" });
  }

  /** Adds an endpoint; a path can be registered once. */
  register(path: string, handler: AdminHandler, opts: { methods?: string[]; description?: string } = {}): void {
    if (this.routes.has(path)) throw new Error(`admin path ${path} is already registered`);
    this.routes.set(path, { handler, methods: opts.methods ?? ["GET"], description: opts.description ?? "" });
  }

  /** Registered endpoints with what they do. */
  endpoints(): { path: string; methods: readonly string[]; description: string }[] {
    return [...this.routes.entries()]
      .map(([path, r]) => ({ path, methods: r.methods, description: r.description }))
      .sort((a, b) => a.path.localeCompare(b.path));
  }

  private async handle(req: IncomingMessage, res: ServerResponse, tcpHosts: Set<string> | null): Promise<void> {
    const send = (status: number, body: string, type: string) => {
      res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
      res.end(body);
    };
    const method0 = req.method ?? "GET";
    if (tcpHosts && method0 !== "GET" && method0 !== "HEAD" && !mutationAllowed(req, tcpHosts)) {
      // On TCP anything the host can reach may call us, including a browser tricked by DNS
      // rebinding or a cross-site form: changes need the unix socket or our own address as Host.
      send(
        403,
        `${JSON.stringify({ error: "changes over TCP need a Host header naming this admin address and no Origin; use the unix socket (weft CLI)" })}\n`,
        "application/json",
      );
      return;
    }
    try {
      const url = new URL(req.url ?? "/", "http://admin.local");
      const route = this.routes.get(url.pathname.replace(/\/+$/, "") || "/");
      if (!route) {
        send(
          404,
          `${JSON.stringify({ error: `no admin endpoint ${url.pathname}`, code: "WEFT_NOT_FOUND", endpoints: this.endpoints().map((e) => e.path) }, null, 2)}\n`,
          "application/json",
        );
        return;
      }
      const method = req.method ?? "GET";
      if (!route.methods.includes(method)) {
        send(
          405,
          `${JSON.stringify({ error: `${method} is not allowed on ${url.pathname}; use ${route.methods.join(" or ")}`, code: "WEFT_INVALID_INPUT" })}\n`,
          "application/json",
        );
        return;
      }
      let body = "";
      for await (const chunk of req) {
        body += chunk;
        if (body.length > MAX_BODY) {
          send(
            413,
            `${JSON.stringify({ error: `request body larger than ${MAX_BODY} bytes`, code: "WEFT_INVALID_INPUT" })}\n`,
            "application/json",
          );
          return;
        }
      }
      const out = await route.handler({ method, url, body });
      if (out.stream) this.startStream(res, out.stream, out.status ?? 200);
      else if (out.text !== undefined) send(out.status ?? 200, out.text, "text/plain; charset=utf-8");
      else send(out.status ?? 200, `${JSON.stringify(withCode(out.status ?? 200, out.json ?? null), null, 2)}\n`, "application/json");
    } catch (e) {
      const info = errorInfo(e);
      this.log.error({ err: info.message, code: info.code, path: req.url }, "admin handler failed");
      if (!res.headersSent) send(500, `${JSON.stringify({ error: info.message, code: info.code })}\n`, "application/json");
      else res.destroy();
    }
  }

  /**
   * Serves a streamed response: NDJSON lines, a keep-alive line when idle, lines dropped (send
   * returns false) rather than buffered without bound when the client stops reading.
   */
  private startStream(res: ServerResponse, producer: (out: AdminStream) => void, status: number): void {
    res.writeHead(status, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
    res.flushHeaders();
    const closers: (() => void)[] = [];
    let closed = false;
    let lastWrite = Date.now();
    const every = this.opts.streamKeepAliveMs ?? STREAM_KEEPALIVE_MS;
    const finish = () => {
      if (closed) return;
      closed = true;
      clearInterval(keepAlive);
      this.streams.delete(stream);
      for (const fn of closers.splice(0)) {
        try {
          fn();
        } catch (e) {
          this.log.warn({ err: errorMessage(e) }, "admin stream cleanup failed");
        }
      }
    };
    const write = (value: unknown): boolean => {
      if (closed || res.writableLength > MAX_STREAM_BACKLOG) return false;
      lastWrite = Date.now();
      res.write(`${JSON.stringify(value)}\n`);
      return true;
    };
    const stream: AdminStream = {
      send: write,
      end: (last?: unknown) => {
        if (closed) return;
        if (last !== undefined) write(last);
        res.end();
        finish();
      },
      onClose: (fn) => {
        if (closed) fn();
        else closers.push(fn);
      },
      get closed() {
        return closed;
      },
    };
    const keepAlive = setInterval(() => {
      if (Date.now() - lastWrite >= every) write({ type: "keepalive", at: new Date().toISOString() });
    }, every);
    keepAlive.unref();
    this.streams.set(stream, res);
    // 'close' on the response covers both a completed response and a client that went away.
    res.on("close", finish);
    producer(stream);
  }

  private server(tcpHosts: Set<string> | null = null): Server {
    const s = createServer((req, res) => void this.handle(req, res, tcpHosts));
    s.on("clientError", (_e, sock) => sock.destroy());
    this.servers.push(s);
    return s;
  }

  /** Listens on host:port (port 0 = any); resolves with the bound address. */
  listenTcp(host: string, port: number): Promise<AddressInfo> {
    const hosts = new Set<string>();
    const s = this.server(hosts);
    s.once("listening", () => {
      const bound = (s.address() as AddressInfo).port;
      for (const h of [host, "localhost", "127.0.0.1", "[::1]"]) hosts.add(`${h}:${bound}`.toLowerCase());
    });
    return new Promise((resolve, reject) => {
      s.once("error", (e: NodeJS.ErrnoException) =>
        reject(
          new Error(
            `admin API cannot listen on ${host}:${port}: ${e.code === "EADDRINUSE" ? "the port is in use (another agent on this node?)" : e.message}`,
          ),
        ),
      );
      s.listen(port, host, () => resolve(s.address() as AddressInfo));
    });
  }

  /** Listens on a unix socket (0600); a stale socket file is replaced, a live one is an error. */
  async listenUnix(path: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true });
    if (existsSync(path)) {
      if (await socketInUse(path)) throw new Error(`admin socket ${path} is in use by another process (another agent for this node?)`);
      rmSync(path, { force: true });
    }
    const s = this.server();
    await new Promise<void>((resolve, reject) => {
      s.once("error", (e) => reject(new Error(`admin API cannot listen on ${path}: ${e.message}`)));
      s.listen(path, () => resolve());
    });
    chmodSync(path, 0o600);
    this.sockets.push(path);
  }

  /** Ends open streams (telling their clients why), stops listening and removes the socket files. */
  async close(): Promise<void> {
    const open = [...this.streams.entries()];
    for (const [s] of open) s.end({ type: "end", reason: "the agent is shutting down" });
    // Let the last lines flush before connections are cut (bounded: a stuck client cannot hold shutdown).
    await Promise.race([
      Promise.all(
        open.map(
          ([, res]) =>
            new Promise((resolve) => {
              if (res.writableFinished) resolve(null);
              res.once("finish", resolve).once("close", resolve);
            }),
        ),
      ),
      new Promise((resolve) => setTimeout(resolve, 250).unref()),
    ]);
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    for (const p of this.sockets) rmSync(p, { force: true });
  }
}

/** True when a changing request over TCP names our own address as Host and comes from no web page. */
function mutationAllowed(req: IncomingMessage, hosts: ReadonlySet<string>): boolean {
  if (req.headers.origin !== undefined) return false;
  const host = req.headers.host?.toLowerCase();
  return host !== undefined && hosts.has(host);
}

/** GETs a path from an admin API on a unix socket (the CLI and tests use it). */
export function adminGet(socketPath: string, path: string, timeoutMs = 5000, what = "agent"): Promise<{ status: number; body: string }> {
  return adminRequest(socketPath, "GET", path, undefined, timeoutMs, what);
}

/** Sends a request to an admin API on a unix socket. */
export async function adminRequest(
  socketPath: string,
  method: string,
  path: string,
  body?: string,
  timeoutMs = 5000,
  what = "agent",
): Promise<{ status: number; body: string }> {
  const { request } = await import("node:http");
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, timeout: timeoutMs }, (res) => {
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        data += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: data }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`admin API at ${socketPath} did not answer within ${timeoutMs} ms`)));
    req.on("error", (e: NodeJS.ErrnoException) =>
      reject(
        new Error(
          e.code === "ENOENT" || e.code === "ECONNREFUSED" ? `no ${what} admin API at ${socketPath} (is the ${what} running?)` : e.message,
        ),
      ),
    );
    req.end(body);
  });
}
