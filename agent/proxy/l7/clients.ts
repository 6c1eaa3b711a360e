/**
 * Upstream HTTP connections, reused per (source workload, endpoint, protocol): HTTP/1.1
 * keep-alive connections over tunnels (tunnel.ts) written and parsed by weft's own client
 * (h1-client.ts), and one multiplexed HTTP/2 session per key for h2 and gRPC. Each exchange reports how it failed in
 * the terms retries and outlier detection speak (connect-failure, reset, refused-stream).
 *
 * Invariants:
 * - A tunnel carries one upstream HTTP connection and belongs to one source workload, so the
 *   destination sees the right peer identity and `forwarded` address for every request on it.
 * - Concurrency limits are not enforced here (the per-cluster RequestLimiter admits requests
 *   before they reach a client); a pool opens as many connections as requests in flight.
 * - A client idle for idleTimeoutMs is closed and forgotten; a broken h2 session leaves the map
 *   at once, so the next request opens a fresh one.
 */
import type { IncomingHttpHeaders } from "node:http";
import { type ClientHttp2Session, type ClientHttp2Stream, constants as h2, connect as h2connect } from "node:http2";
import type { Socket } from "node:net";
import { type Duplex, Writable } from "node:stream";
import type { Workload } from "../../../controller/api/model.js";
import type { ProxyContext } from "../context.js";
import type { ClientSettings, Exchange, ExchangeFailure, UpstreamHead } from "./exchange.js";
import { H1Pool } from "./h1-client.js";
import { openTunnel, TunnelRefusedError, type UpstreamTarget } from "./tunnel.js";

const DEFAULT_IDLE_MS = 60 * 60 * 1000;

/** Makes an h2 stream look enough like a net.Socket for http.Agent's keep-alive bookkeeping. */
export function socketLike(d: Duplex): Socket {
  const s = d as Duplex & Partial<Socket>;
  if ((s as Partial<Socket>).setKeepAlive === undefined) {
    // Node's http2 stream corrupts data when an HTTP/1 client corks a string head and a body
    // into one writev (seen on Node 20): one write per chunk avoids that path.
    (s as { _writev?: unknown })._writev = null;
    Object.assign(s, {
      setKeepAlive: () => s,
      setNoDelay: () => s,
      ref: () => s,
      unref: () => s,
    });
  }
  return s as Socket;
}

interface H2Entry {
  session: Promise<ClientHttp2Session>;
  lastUsed: number;
}

/** Per-worker upstream HTTP clients. */
export class UpstreamClients {
  private readonly h1 = new Map<string, H1Pool>();
  private readonly h2 = new Map<string, H2Entry>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly ctx: ProxyContext) {
    this.sweeper = setInterval(() => this.sweep(), 30_000);
    this.sweeper.unref();
  }

  /** Starts one request to the target, from the source workload at sourceIp. */
  send(
    source: Workload,
    sourceIp: string,
    t: UpstreamTarget,
    protocol: "http1" | "http2",
    head: UpstreamHead,
    settings: ClientSettings,
  ): Exchange {
    const key = `${source.uid}|${sourceIp}|${t.target.ip}:${t.target.port}|${t.mode}`;
    return protocol === "http1"
      ? this.sendH1(key, source, sourceIp, t, head, settings)
      : this.sendH2(key, source, sourceIp, t, head, settings);
  }

  private sendH1(
    key: string,
    source: Workload,
    sourceIp: string,
    t: UpstreamTarget,
    head: UpstreamHead,
    settings: ClientSettings,
  ): Exchange {
    let pool = this.h1.get(key);
    if (!pool) {
      pool = new H1Pool(() => openTunnel(this.ctx, source, sourceIp, t, settings.connectTimeoutMs).then(socketLike), settings);
      this.h1.set(key, pool);
    }
    return pool.send(head);
  }

  private sessionFor(
    key: string,
    source: Workload,
    sourceIp: string,
    t: UpstreamTarget,
    settings: ClientSettings,
  ): Promise<ClientHttp2Session> {
    const hit = this.h2.get(key);
    if (hit) {
      hit.lastUsed = Date.now();
      return hit.session;
    }
    const session = openTunnel(this.ctx, source, sourceIp, t, settings.connectTimeoutMs).then((tunnel) => {
      const s = h2connect(`http://${t.target.ip}:${t.target.port}`, {
        createConnection: () => socketLike(tunnel),
        settings: { enablePush: false },
      });
      const forget = () => {
        if (this.h2.get(key)?.session === session) this.h2.delete(key);
      };
      s.on("error", forget);
      s.on("close", forget);
      s.on("goaway", forget);
      s.on("error", (e) => this.ctx.log.debug({ err: e.message, upstream: key }, "upstream h2 session error"));
      return s;
    });
    session.catch(() => {
      if (this.h2.get(key)?.session === session) this.h2.delete(key);
    });
    this.h2.set(key, { session, lastUsed: Date.now() });
    return session;
  }

  private sendH2(
    key: string,
    source: Workload,
    sourceIp: string,
    t: UpstreamTarget,
    head: UpstreamHead,
    settings: ClientSettings,
  ): Exchange {
    let stream: ClientHttp2Stream | undefined;
    let aborted = false;
    // The body sink must exist before the session does: buffer writes in a small relay.
    const relay = new RelayWritable();
    const response = this.sessionFor(key, source, sourceIp, t, settings).then(
      (session) =>
        new Promise<Awaited<Exchange["response"]>>((resolve) => {
          if (aborted) {
            resolve({ ok: false, failure: { kind: "reset", error: new Error("aborted") } });
            return;
          }
          try {
            stream = session.request(
              { ":method": head.method, ":path": head.path, ":authority": head.authority, ":scheme": "http", ...head.headers },
              { endStream: false },
            );
          } catch (e) {
            resolve({ ok: false, failure: { kind: "connect-failure", error: e as Error } });
            return;
          }
          const s = stream;
          relay.target(s);
          let trailers: IncomingHttpHeaders | undefined;
          s.once("trailers", (t) => {
            trailers = t;
          });
          s.once("response", (h) => {
            const { ":status": status, ...rest } = h;
            resolve({
              ok: true,
              response: {
                status: Number(status),
                headers: rest as IncomingHttpHeaders,
                body: s,
                trailers: () => trailers,
                headOnly: s.endAfterHeaders,
              },
            });
          });
          s.once("close", () => {
            const code = s.rstCode;
            const error = new Error(`upstream stream closed before a response (RST code ${code})`);
            resolve({
              ok: false,
              failure: code === h2.NGHTTP2_REFUSED_STREAM ? { kind: "refused-stream", error } : { kind: "reset", error },
            });
          });
          s.on("error", () => undefined);
        }),
      (e: Error) => {
        const failure: ExchangeFailure =
          e instanceof TunnelRefusedError && e.status === 403
            ? { kind: "denied", status: 403, error: e }
            : { kind: "connect-failure", error: e };
        return { ok: false as const, failure };
      },
    );
    return {
      body: relay,
      response,
      abort: () => {
        aborted = true;
        stream?.close(h2.NGHTTP2_CANCEL);
      },
    };
  }

  private sweep(): void {
    const now = Date.now();
    for (const [k, pool] of this.h1) if (pool.sweep(now) && now - pool.lastUsed > DEFAULT_IDLE_MS) this.h1.delete(k);
  }

  /** Closes every upstream connection. */
  close(): void {
    clearInterval(this.sweeper);
    for (const pool of this.h1.values()) pool.close();
    for (const e of this.h2.values()) e.session.then((s) => s.close()).catch(() => undefined);
    this.h1.clear();
    this.h2.clear();
  }
}

/**
 * A writable that holds what is written until its real target exists (an h2 stream opened once
 * the session is up), then forwards with the target's backpressure.
 */
class RelayWritable extends Writable {
  private dest?: Writable;
  private pending: { chunk: Buffer; cb: (e?: Error | null) => void }[] = [];
  private ending?: () => void;

  /** Sets the real destination and flushes what was held. */
  target(dest: Writable): void {
    this.dest = dest;
    for (const p of this.pending) this.forward(p.chunk, p.cb);
    this.pending = [];
    if (this.ending) {
      dest.end();
      this.ending();
    }
  }

  private forward(chunk: Buffer, cb: (e?: Error | null) => void): void {
    const dest = this.dest as Writable;
    if (dest.write(chunk)) cb();
    else dest.once("drain", () => cb());
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.dest) this.forward(chunk, cb);
    else this.pending.push({ chunk, cb });
  }

  override _final(cb: (e?: Error | null) => void): void {
    if (this.dest) {
      this.dest.end();
      cb();
    } else this.ending = () => cb();
  }
}
