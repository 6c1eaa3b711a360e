/**
 * Listening sockets shared by several worker threads through SO_REUSEPORT: the kernel spreads
 * new connections over the workers' sockets. Node >= 22.12 does it natively (`reusePort`);
 * on Node 20 the socket is made through koffi (socket, setsockopt, bind, listen) and handed to
 * Node with `listen({ fd })`.
 */
import { createRequire } from "node:module";
import { isIPv6 } from "node:net";

const require = createRequire(import.meta.url);

/** Options for net.Server#listen that bind ip:port shared with other listeners. */
export type SharedListen = { fd: number } | { host: string; port: number; reusePort: true; backlog: number };

/** True when this Node supports `reusePort` in listen() (22.12+, 23.1+). */
export function nativeReusePort(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

/** The libc socket calls weft makes through koffi. */
export interface Libc {
  socket: (domain: number, type: number, proto: number) => number;
  setsockopt: (fd: number, level: number, name: number, value: number[], len: number) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  listen: (fd: number, backlog: number) => number;
  close: (fd: number) => number;
  getsockopt: (fd: number, level: number, name: number, out: Buffer, len: [number]) => number;
  ioctlInt: (fd: number, request: number, out: [number]) => number;
  errno: () => number;
}

let libc: Libc | undefined;

/** The socket calls through koffi (loaded once), for the other socket makers in native/. */
export function load(): Libc {
  if (libc) return libc;
  const koffi = require("koffi") as typeof import("koffi");
  const lib = koffi.load("libc.so.6");
  libc = {
    socket: lib.func("int socket(int, int, int)"),
    setsockopt: lib.func("int setsockopt(int, int, int, _In_ int *, uint32_t)"),
    bind: lib.func("int bind(int, const void *, uint32_t)"),
    listen: lib.func("int listen(int, int)"),
    close: lib.func("int close(int)"),
    getsockopt: lib.func("int getsockopt(int, int, int, _Out_ void *, _Inout_ uint32_t *)"),
    ioctlInt: lib.func("int ioctl(int, unsigned long, _Out_ int *)"),
    errno: () => koffi.errno(),
  };
  return libc;
}

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_REUSEPORT = 15;

/** sockaddr_in / sockaddr_in6 bytes for an address. */
export function sockaddr(ip: string, port: number): Buffer {
  if (isIPv6(ip)) {
    const sa = Buffer.alloc(28);
    sa.writeUInt16LE(AF_INET6, 0);
    sa.writeUInt16BE(port, 2);
    const full = expandV6(ip);
    for (let i = 0; i < 8; i++) sa.writeUInt16BE(full[i] as number, 8 + i * 2);
    return sa;
  }
  const sa = Buffer.alloc(16);
  sa.writeUInt16LE(AF_INET, 0);
  sa.writeUInt16BE(port, 2);
  ip.split(".").forEach((o, i) => {
    sa[4 + i] = Number(o);
  });
  return sa;
}

function expandV6(ip: string): number[] {
  const [head = "", tail = ""] = ip.split("::");
  const h = head ? head.split(":").map((x) => Number.parseInt(x, 16)) : [];
  const t = tail ? tail.split(":").map((x) => Number.parseInt(x, 16)) : [];
  return [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
}

/** Creates a bound, listening, non-blocking SO_REUSEPORT socket; throws naming the failing call. */
export function reusePortSocket(ip: string, port: number, backlog = 4096): number {
  const c = load();
  const v6 = isIPv6(ip);
  const fd = c.socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`socket() failed: errno ${c.errno()}`);
  const fail = (what: string) => {
    const e = c.errno();
    c.close(fd);
    const hint =
      e === 98
        ? ` (EADDRINUSE: something else listens on ${ip}:${port} without SO_REUSEPORT)`
        : e === 99
          ? ` (EADDRNOTAVAIL: ${ip} is not an address of this node)`
          : "";
    return new Error(`${what} for ${ip}:${port} failed: errno ${e}${hint}`);
  };
  if (c.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, [1], 4) !== 0) throw fail("setsockopt(SO_REUSEADDR)");
  if (c.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, [1], 4) !== 0) throw fail("setsockopt(SO_REUSEPORT)");
  const sa = sockaddr(ip, port);
  if (c.bind(fd, sa, sa.length) !== 0) throw fail("bind()");
  if (c.listen(fd, backlog) !== 0) throw fail("listen()");
  return fd;
}

/** listen() options for a listener shared across workers on ip:port. */
export function sharedListen(ip: string, port: number, backlog = 4096): SharedListen {
  if (nativeReusePort()) return { host: ip, port, reusePort: true, backlog };
  return { fd: reusePortSocket(ip, port, backlog) };
}
