/**
 * What the kernel knows about a TCP socket that Node does not expose, read by fd through koffi:
 * its cookie (the key the kernel splice pairs sockets by), its byte counters (TCP_INFO: bytes the
 * peer acknowledged and bytes received, which count data the proxy never read itself) and its
 * unsent queue (SIOCOUTQ); and SO_RCVLOWAT, which holds back or kicks the socket's data-ready
 * wake-up.
 */
import { load } from "./reuseport.js";

const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_LINGER = 13;
const SO_RCVLOWAT = 18;
const SO_COOKIE = 57;
const IPPROTO_TCP = 6;
const TCP_INFO = 11;
const SIOCOUTQ = 0x5411;
// struct tcp_info (linux/tcp.h): tcpi_bytes_acked and tcpi_bytes_received, both __u64 (Linux 4.1+).
const TCPI_BYTES_ACKED = 120;
const TCPI_BYTES_RECEIVED = 128;
const TCPI_SIZE = 136;

/** A failed socket call: names the call and the errno. */
export class SocketCallError extends Error {
  override readonly name = "SocketCallError";
  constructor(
    call: string,
    readonly errno: number,
  ) {
    super(`${call} failed: errno ${errno}`);
  }
}

/** The socket's cookie (SO_COOKIE): unique for the kernel's uptime, 8 bytes in host order. */
export function socketCookie(fd: number): Buffer {
  const c = load();
  const out = Buffer.alloc(8);
  if (c.getsockopt(fd, SOL_SOCKET, SO_COOKIE, out, [8]) !== 0) throw new SocketCallError(`getsockopt(${fd}, SO_COOKIE)`, c.errno());
  return out;
}

/** A TCP socket's byte counters. */
export interface TcpCounters {
  /** Bytes the peer acknowledged (a SYN this side sent counts 1). */
  acked: number;
  /** Bytes received in order, read or not (a FIN received counts 1). */
  received: number;
  /** Bytes written but not yet acknowledged (SIOCOUTQ). */
  unacked: number;
}

/** TCP_INFO's byte counters and SIOCOUTQ of fd. */
export function tcpCounters(fd: number): TcpCounters {
  const c = load();
  const info = Buffer.alloc(TCPI_SIZE);
  const len: [number] = [TCPI_SIZE];
  if (c.getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, len) !== 0) throw new SocketCallError(`getsockopt(${fd}, TCP_INFO)`, c.errno());
  if (len[0] < TCPI_SIZE) throw new SocketCallError(`getsockopt(${fd}, TCP_INFO) returned ${len[0]} bytes (kernel before 4.1)`, 0);
  const outq: [number] = [0];
  if (c.ioctlInt(fd, SIOCOUTQ, outq) !== 0) throw new SocketCallError(`ioctl(${fd}, SIOCOUTQ)`, c.errno());
  return {
    acked: Number(info.readBigUInt64LE(TCPI_BYTES_ACKED)),
    received: Number(info.readBigUInt64LE(TCPI_BYTES_RECEIVED)),
    unacked: outq[0],
  };
}

/**
 * Sets SO_RCVLOWAT. On TCP the kernel caps it (half of tcp_rmem's maximum) and, when the bytes
 * waiting reach the new mark, signals data-ready at once: setting it back to 1 kicks a socket
 * whose wake-up was held back.
 */
export function setRcvLowat(fd: number, bytes: number): void {
  const c = load();
  if (c.setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, [bytes], 4) !== 0) throw new SocketCallError(`setsockopt(${fd}, SO_RCVLOWAT)`, c.errno());
}

/** Sets SO_LINGER to on, 0 s: closing the socket then resets the connection (RST) instead of a FIN. */
export function setLingerZero(fd: number): void {
  const c = load();
  // struct linger { int l_onoff; int l_linger; }
  if (c.setsockopt(fd, SOL_SOCKET, SO_LINGER, [1, 0], 8) !== 0) throw new SocketCallError(`setsockopt(${fd}, SO_LINGER)`, c.errno());
}

/**
 * Sets SO_SNDBUF (the kernel doubles it for its bookkeeping, and stops autotuning this socket's
 * send buffer).
 */
export function setSendBuffer(fd: number, bytes: number): void {
  const c = load();
  if (c.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, [bytes], 4) !== 0) throw new SocketCallError(`setsockopt(${fd}, SO_SNDBUF)`, c.errno());
}
