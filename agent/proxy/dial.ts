/** Dialling TCP from the proxy (to a pod, or a passthrough destination) with a deadline. */
import { Socket } from "node:net";
import { WeftError } from "../../common/errors.js";
import { markedClient, transparentClient } from "../../native/transparent.js";
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

/** How a dial is made, beyond the target. */
export interface DialOptions {
  /**
   * Connect from this address although it is not the node's (IP_TRANSPARENT), so the pod sees
   * its real client; the node's nftables rules bring the replies back to this socket.
   */
  source?: string;
  /** SO_MARK instead of the proxy mark (passthrough: PASSTHROUGH_MARK). */
  mark?: number;
}

/**
 * Connects to target. allowHalfOpen: a FIN from the app must not make Node end our side too;
 * the splice decides when each direction ends.
 */
export function dial(target: SocketAddr, timeoutMs: number, how: DialOptions = {}): Promise<Socket> {
  return new Promise((resolve, reject) => {
    let sock: Socket;
    let fd: number | undefined;
    try {
      fd = how.source ? transparentClient(how.source) : how.mark !== undefined ? markedClient(how.mark) : undefined;
      // pauseOnCreate: Node must not start reading a socket that is not connected yet.
      sock = fd !== undefined ? new Socket({ fd, allowHalfOpen: true, pauseOnCreate: true } as never) : new Socket({ allowHalfOpen: true });
      // Here, not as a connect() option: connect() ignores noDelay (Node 20), which left Nagle on
      // every pod-side socket, so the second of two small writes waited for the pod's ACK.
      sock.setNoDelay(true);
    } catch (e) {
      reject(new DialError(`connect to ${target.ip}:${target.port}: ${(e as Error).message}`, "EPERM"));
      return;
    }
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
    sock.connect({ host: target.ip, port: target.port }, () => {
      clearTimeout(timer);
      sock.removeAllListeners("error");
      // Connected: undo pauseOnCreate, or a consumer that only adds a 'data' listener (Node's HTTP
      // client on the L7 path) would never see the answer. No byte can be emitted before the
      // caller's continuation attaches its listeners: reads arrive in a later turn of the loop.
      if (fd !== undefined) sock.resume();
      resolve(sock);
    });
  });
}
