/** Dialling TCP from the proxy (to a pod, or a passthrough destination) with a deadline. */
import { Socket } from "node:net";
import { WeftError } from "../../common/errors.js";
import type { SocketAddr } from "./request.js";

/** A dial that failed, with an operator-facing reason. */
export class DialError extends WeftError {
  override readonly name = "DialError";
  constructor(
    message: string,
    /** The socket's errno name (ECONNREFUSED, ETIMEDOUT, …). */
    readonly errno: string,
  ) {
    super("WEFT_UPSTREAM_UNREACHABLE", message);
  }
}

/**
 * Connects to target. allowHalfOpen: a FIN from the app must not make Node end our side too;
 * the splice decides when each direction ends.
 */
export function dial(target: SocketAddr, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = new Socket({ allowHalfOpen: true });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(
        new DialError(
          `connect to ${target.ip}:${target.port} timed out after ${timeoutMs} ms (is the pod running? is something dropping SYNs?)`,
          "ETIMEDOUT",
        ),
      );
    }, timeoutMs);
    sock.once("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new DialError(`connect to ${target.ip}:${target.port} failed: ${e.code ?? e.message}`, e.code ?? "EIO"));
    });
    sock.connect({ host: target.ip, port: target.port, noDelay: true }, () => {
      clearTimeout(timer);
      sock.removeAllListeners("error");
      resolve(sock);
    });
  });
}
