/**
 * Draining an inbound HBONE session without refusing a stream. A GOAWAY cannot do it alone:
 * nghttp2 caps its last-stream-id at the last stream processed, so streams the peer opened
 * before it saw the GOAWAY are refused (REFUSED_STREAM), and at a handover those are new
 * connections reset under load. So the drain is announced first with a PING whose payload is
 * DRAIN_PING: a weft peer's pool stops opening streams on that session, lets the open ones
 * finish and closes it; every stream that crossed the PING is still served. The GOAWAY follows
 * graceMs later (Envoy's drain_timeout defaults to 5 s) for peers that do not know the PING.
 */
import type { ServerHttp2Session } from "node:http2";

/** PING payload by which a node proxy says "open no more streams on this session". */
export const DRAIN_PING = Buffer.from("weftdrn1");

/** Starts draining a server session: the peer opens no new streams; open ones finish. */
export function drainSession(session: ServerHttp2Session, graceMs = 5000): void {
  if (session.closed || session.destroyed) return;
  const timer = setTimeout(() => {
    if (!session.closed && !session.destroyed) session.close();
  }, graceMs);
  timer.unref();
  session.once("close", () => clearTimeout(timer));
  try {
    session.ping(DRAIN_PING, () => undefined);
  } catch {
    session.close();
  }
}
