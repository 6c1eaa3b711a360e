/**
 * IP_TRANSPARENT sockets, the two halves of transparent proxying on a node:
 * - a listener that accepts connections addressed to other hosts (pods), which nftables' tproxy
 *   hands it: the accepted socket's local address is the pod the client dialled;
 * - a client socket bound to an address that is not the node's (the client pod's), so the pod the
 *   proxy delivers to sees its real client, as ztunnel does.
 * Both need CAP_NET_ADMIN. The fd is handed to Node (`listen({ fd })`, `new Socket({ fd })`).
 */
import { isIPv4 } from "node:net";
import { load, sockaddr } from "./reuseport.js";

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_REUSEPORT = 15;
const SOL_IP = 0;
const IP_TRANSPARENT = 19;

const ERRNO_HINT: Record<number, string> = {
  1: "EPERM: IP_TRANSPARENT needs CAP_NET_ADMIN",
  98: "EADDRINUSE: something else listens there",
  99: "EADDRNOTAVAIL",
};

function transparentFd(what: string): { fd: number; fail: (call: string) => Error } {
  const c = load();
  const fd = c.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`${what}: socket() failed: errno ${c.errno()}`);
  const fail = (call: string) => {
    const e = c.errno();
    c.close(fd);
    return new Error(`${what}: ${call} failed: ${ERRNO_HINT[e] ?? `errno ${e}`}`);
  };
  if (c.setsockopt(fd, SOL_IP, IP_TRANSPARENT, [1], 4) !== 0) throw fail("setsockopt(IP_TRANSPARENT)");
  return { fd, fail };
}

/** A listening IP_TRANSPARENT socket on ip:port (IPv4); throws naming the failing call. */
export function transparentListener(ip: string, port: number, reusePort = false, backlog = 4096): number {
  if (!isIPv4(ip)) throw new Error(`transparent listener ${ip}:${port}: only IPv4 is captured`);
  const c = load();
  const { fd, fail } = transparentFd(`transparent listener ${ip}:${port}`);
  if (c.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, [1], 4) !== 0) throw fail("setsockopt(SO_REUSEADDR)");
  if (reusePort && c.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, [1], 4) !== 0) throw fail("setsockopt(SO_REUSEPORT)");
  const sa = sockaddr(ip, port);
  if (c.bind(fd, sa, sa.length) !== 0) throw fail("bind()");
  if (c.listen(fd, backlog) !== 0) throw fail("listen()");
  return fd;
}

const SO_MARK = 36;

/**
 * An unconnected socket whose SO_MARK is `mark` instead of the proxy mark the sock_create hook
 * gives every proxy socket: passthrough dials must not pass the STRICT guard as the proxy does.
 */
export function markedClient(mark: number): number {
  const c = load();
  const fd = c.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`socket() failed: errno ${c.errno()}`);
  if (c.setsockopt(fd, SOL_SOCKET, SO_MARK, [mark], 4) !== 0) {
    const e = c.errno();
    c.close(fd);
    throw new Error(`setsockopt(SO_MARK ${mark}) failed: ${ERRNO_HINT[e] ?? `errno ${e}`}`);
  }
  return fd;
}

/** An unconnected IP_TRANSPARENT socket bound to sourceIp (any port), ready for Node to connect. */
export function transparentClient(sourceIp: string): number {
  if (!isIPv4(sourceIp)) throw new Error(`transparent source ${sourceIp}: only IPv4 is supported`);
  const c = load();
  const { fd, fail } = transparentFd(`transparent source ${sourceIp}`);
  const sa = sockaddr(sourceIp, 0);
  if (c.bind(fd, sa, sa.length) !== 0) throw fail("bind()");
  return fd;
}
