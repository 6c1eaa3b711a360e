/**
 * Pooled HBONE connections: one mTLS HTTP/2 session carries many CONNECT streams, so a new app
 * connection costs a HEADERS frame, not a TCP + TLS handshake.
 *
 * Invariants:
 * - A pool key is (source identity, destination identity, destination node address): a session
 *   authenticates one pair of identities, so streams of other identities never share it.
 * - New streams go only to sessions that are connected, not draining (GOAWAY received, closing or
 *   destroyed) and below their stream limit (the peer's SETTINGS_MAX_CONCURRENT_STREAMS, capped by
 *   maxStreamsPerSession).
 * - At most one connect per key is in flight unless every session and the connect in flight are
 *   already full: a burst of new app connections shares one handshake.
 * - A session with no streams for idleTimeoutMs is closed. A session that errors, fails a
 *   keepalive ping or times out is destroyed and leaves the pool at once.
 */

import type { ClientHttp2Session, ClientHttp2Stream, OutgoingHttpHeaders } from "node:http2";
import { DRAIN_PING } from "./goaway.js";
import type { SocketAddr } from "./request.js";

/** What a pooled session is keyed by. */
export interface PoolKey {
  srcIdentity: string;
  dstIdentity: string;
  address: SocketAddr;
}

/** Opens a new authenticated session for a key (TLS + HTTP/2 handshake). */
export type SessionFactory = (key: PoolKey) => Promise<ClientHttp2Session>;

/** Pool tuning. */
export interface PoolOptions {
  maxStreamsPerSession: number;
  idleTimeoutMs: number;
  /** How often an idle session is pinged to detect a dead peer. */
  keepaliveMs: number;
}

/**
 * Defaults. Up to the destination's own stream limit (1000, DEFAULT_PROXY_LIMITS) per session:
 * an mTLS HTTP/2 session costs ~100 KiB per side (OpenSSL record buffers, nghttp2, Node's session),
 * which at 100 streams a session was ~2 KiB of every idle tunnelled connection's path cost.
 */
export const DEFAULT_POOL_OPTIONS: PoolOptions = { maxStreamsPerSession: 1000, idleTimeoutMs: 30_000, keepaliveMs: 10_000 };

interface Pooled {
  session: ClientHttp2Session;
  active: number;
  total: number;
  created: number;
  lastUsed: number;
  draining: boolean;
  idleTimer?: NodeJS.Timeout;
  pingTimer?: NodeJS.Timeout;
}

interface Entry {
  sessions: Pooled[];
  /** Connects in flight, each counting as capacity for waiting requests. */
  pending: { promise: Promise<Pooled>; reserved: number }[];
}

/** Per-key pool statistics for the admin API and tests. */
export interface PoolStats {
  key: string;
  sessions: { activeStreams: number; totalStreams: number; ageMs: number; draining: boolean }[];
  connecting: number;
}

/** The HBONE session pool. */
export class HbonePool {
  private readonly entries = new Map<string, Entry>();
  private readonly opts: PoolOptions;
  private closed = false;
  /** Sessions ever opened (for tests and metrics: pooling keeps this small). */
  sessionsOpened = 0;

  constructor(
    private readonly factory: SessionFactory,
    opts: Partial<PoolOptions> = {},
  ) {
    this.opts = { ...DEFAULT_POOL_OPTIONS, ...opts };
  }

  /** Opens a CONNECT stream for the key with the given headers, on a pooled session. */
  async stream(key: PoolKey, headers: OutgoingHttpHeaders): Promise<ClientHttp2Stream> {
    if (this.closed) throw new Error("HBONE pool is closed");
    // A session can go away between pick and request (GOAWAY race): retry once on a fresh one.
    for (let attempt = 0; ; attempt++) {
      const pooled = await this.acquire(key);
      try {
        return this.request(pooled, headers);
      } catch (e) {
        // A session the peer is draining (GOAWAY) still carries other streams: let them finish.
        this.retire(key, pooled, !pooled.session.closed);
        if (attempt >= 1) throw e;
      }
    }
  }

  private request(p: Pooled, headers: OutgoingHttpHeaders): ClientHttp2Stream {
    const stream = p.session.request(headers, { endStream: false });
    p.total++;
    p.lastUsed = Date.now();
    if (p.idleTimer) {
      clearTimeout(p.idleTimer);
      p.idleTimer = undefined;
    }
    // 'close' fires once: a plain listener spares once()'s wrapper on every live stream.
    stream.on("close", () => {
      p.active--;
      p.lastUsed = Date.now();
      if (p.active === 0) this.armIdle(p);
    });
    return stream;
  }

  private async acquire(key: PoolKey): Promise<Pooled> {
    const k = keyString(key);
    let entry = this.entries.get(k);
    if (!entry) {
      entry = { sessions: [], pending: [] };
      this.entries.set(k, entry);
    }
    const ready = this.pick(entry);
    if (ready) {
      ready.active++;
      return ready;
    }
    const slot = entry.pending.find((p) => p.reserved < this.opts.maxStreamsPerSession);
    if (slot) {
      slot.reserved++;
      const pooled = await slot.promise;
      pooled.active++;
      return pooled;
    }
    const pending = { promise: this.connect(key, k, entry), reserved: 1 };
    entry.pending.push(pending);
    try {
      const pooled = await pending.promise;
      pooled.active++;
      return pooled;
    } finally {
      entry.pending = entry.pending.filter((p) => p !== pending);
    }
  }

  /** The usable session with the fewest active streams (spreads load, keeps all warm). */
  private pick(entry: Entry): Pooled | undefined {
    let best: Pooled | undefined;
    for (const p of entry.sessions) {
      if (p.draining || p.session.closed || p.session.destroyed) continue;
      const limit = Math.min(this.opts.maxStreamsPerSession, p.session.remoteSettings.maxConcurrentStreams ?? Number.MAX_SAFE_INTEGER);
      if (p.active >= limit) continue;
      if (!best || p.active < best.active) best = p;
    }
    return best;
  }

  private async connect(key: PoolKey, k: string, entry: Entry): Promise<Pooled> {
    const session = await this.factory(key);
    this.sessionsOpened++;
    const pooled: Pooled = { session, active: 0, total: 0, created: Date.now(), lastUsed: Date.now(), draining: false };
    entry.sessions.push(pooled);
    const drain = () => {
      pooled.draining = true;
      if (pooled.active === 0) this.retire(key, pooled, false);
    };
    session.on("goaway", drain);
    // The peer is draining (a handover): no new streams here; the open ones finish.
    session.on("ping", (payload: Buffer) => {
      if (payload.equals(DRAIN_PING)) drain();
    });
    session.on("error", () => this.retire(key, pooled, true));
    session.on("close", () => this.remove(k, pooled));
    session.on("timeout", () => this.retire(key, pooled, true));
    session.socket?.unref?.();
    return pooled;
  }

  private armIdle(p: Pooled): void {
    if (p.draining) {
      p.session.close();
      return;
    }
    p.idleTimer = setTimeout(() => {
      if (p.active === 0) {
        p.draining = true;
        p.session.close();
      }
    }, this.opts.idleTimeoutMs);
    p.idleTimer.unref();
    this.armPing(p);
  }

  /** A session idle longer than keepaliveMs is pinged; no answer within keepaliveMs kills it. */
  private armPing(p: Pooled): void {
    if (p.pingTimer) return;
    p.pingTimer = setInterval(() => {
      if (p.session.destroyed || p.draining) {
        clearInterval(p.pingTimer);
        return;
      }
      if (Date.now() - p.lastUsed < this.opts.keepaliveMs) return;
      const deadline = setTimeout(() => p.session.destroy(new Error("HBONE keepalive ping timed out")), this.opts.keepaliveMs);
      deadline.unref();
      const sent = p.session.ping((err) => {
        clearTimeout(deadline);
        if (err) p.session.destroy(err);
      });
      if (!sent) clearTimeout(deadline);
    }, this.opts.keepaliveMs);
    p.pingTimer.unref();
  }

  private retire(key: PoolKey, p: Pooled, destroy: boolean): void {
    p.draining = true;
    if (destroy && !p.session.destroyed) p.session.destroy();
    else if (!p.session.closed) p.session.close();
    this.remove(keyString(key), p);
  }

  private remove(k: string, p: Pooled): void {
    if (p.idleTimer) clearTimeout(p.idleTimer);
    if (p.pingTimer) clearInterval(p.pingTimer);
    const entry = this.entries.get(k);
    if (!entry) return;
    entry.sessions = entry.sessions.filter((s) => s !== p);
    if (entry.sessions.length === 0 && entry.pending.length === 0) this.entries.delete(k);
  }

  /** Snapshot of the pool. */
  stats(): PoolStats[] {
    const now = Date.now();
    return [...this.entries].map(([key, e]) => ({
      key,
      sessions: e.sessions.map((s) => ({ activeStreams: s.active, totalStreams: s.total, ageMs: now - s.created, draining: s.draining })),
      connecting: e.pending.length,
    }));
  }

  /** Number of live sessions across all keys. */
  get sessionCount(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.sessions.length;
    return n;
  }

  /** Stops new streams; closes sessions gracefully (existing streams finish) or at once. */
  async close(graceful = true): Promise<void> {
    this.closed = true;
    const all = [...this.entries.values()].flatMap((e) => e.sessions);
    await Promise.all(
      all.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.session.closed || p.session.destroyed) return resolve();
            p.session.once("close", () => resolve());
            if (graceful) p.session.close();
            else p.session.destroy();
          }),
      ),
    );
    this.entries.clear();
  }
}

/** Stable string form of a pool key. */
export function keyString(key: PoolKey): string {
  return `${key.srcIdentity}|${key.dstIdentity}|${key.address.ip}:${key.address.port}`;
}
