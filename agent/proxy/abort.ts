/**
 * Aborting a TCP connection: the peer must see a reset, never a FIN it could take for a complete
 * exchange.
 *
 * Node's resetAndDestroy() sets SO_LINGER 0 and closes, so the kernel sends an RST. But libuv
 * refuses it (EINVAL) while a shutdown Node asked for (end()) is under way, and the socket is
 * then neither reset nor closed and never emits 'close': the connection leaks and its peer sees
 * only the FIN. A socket whose write side was ended is therefore given SO_LINGER 0 here and
 * destroyed, which resets it as well.
 */
import type { Socket } from "node:net";
import { setLingerZero } from "../../native/socket-info.js";

/** Ends s with a reset, whatever state its write side is in (a socket over another handle, TLS say, is destroyed). */
export function abortSocket(s: Socket): void {
  if (s.destroyed) return;
  const handle = (s as unknown as { _handle?: { fd?: number; reset?: unknown } | null })._handle;
  if (typeof handle?.reset !== "function") {
    s.destroy();
    return;
  }
  if (!s.writableEnded) {
    s.resetAndDestroy();
    return;
  }
  const fd = handle.fd;
  if (typeof fd === "number" && fd >= 0) {
    try {
      setLingerZero(fd);
    } catch {
      // Closed under us: destroying it is all that is left to do.
    }
  }
  s.destroy();
}
