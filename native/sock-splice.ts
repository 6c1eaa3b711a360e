/**
 * The kernel splice (bpf/splice.c): a sockhash with an sk_skb verdict program attached, into which
 * the proxy puts a connected pair of its own sockets so that each one's incoming bytes leave by
 * the other without reaching userspace. One per proxy thread, not pinned: it lives and dies with
 * the process. The order of operations in pair() is what keeps bytes in order; see there.
 */
import { BpfError, checkInt } from "./bpf-error.js";
import type { BpfMap } from "./bpf-map.js";
import { BpfObject } from "./bpf-object.js";
import { ATTACH, libbpf } from "./libbpf.js";
import { lastErrno } from "./libc.js";
import { setRcvLowat, setSendBuffer, socketCookie } from "./socket-info.js";

const PROGRAM = "weft_splice";
const SOCKS = "weft_splice_socks";
const PEERS = "weft_splice_peer";
/** Above any byte count that can arrive in the microseconds pair() takes; the kernel caps it. */
const HOLD_LOWAT = 1 << 30;
/**
 * Send buffer of a paired socket. The kernel hands redirected bytes to the peer's send path from
 * a work queue, and when that send buffer is full it retries only a jiffy later: with the
 * autotuned buffer a one-connection transfer stalls on every retry (~200 MB/s here). A larger,
 * fixed buffer keeps the queue fed (bench/ANALYSIS.md); it is a limit, not an allocation.
 */
const SPLICE_SNDBUF = 4 << 20;

/** One socket of a pair: its fd and cookie. */
export interface SpliceEnd {
  fd: number;
  cookie: Buffer;
}

/** Reads a socket's fd and cookie. */
export function spliceEnd(fd: number): SpliceEnd {
  return { fd, cookie: socketCookie(fd) };
}

/** A loaded splice program with its maps. */
export class SocketSplicer {
  private closed = false;

  private constructor(
    private readonly obj: BpfObject,
    private readonly socks: BpfMap,
    private readonly peers: BpfMap,
  ) {}

  /** Loads bpf/build/splice.o and attaches its verdict to its sockhash; throws a BpfError naming the step. */
  static open(objectPath: string): SocketSplicer {
    const obj = BpfObject.open(objectPath);
    try {
      obj.load();
      const prog = obj.program(PROGRAM);
      const socks = obj.map(SOCKS);
      checkInt(`attach ${PROGRAM} to ${SOCKS}`, libbpf().bpf_prog_attach(prog.fd, socks.fd, ATTACH.SK_SKB_VERDICT, 0), lastErrno);
      return new SocketSplicer(obj, socks, obj.map(PEERS));
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  /**
   * Pairs two connected TCP sockets whose queued bytes the caller has not read. Bytes that
   * arrived before the pairing wait in the kernel and go first.
   *
   * Until both sockets are in the sockhash, a segment on one of them must not be judged: its
   * peer would be missing, so it would stay on that socket, behind bytes the kernel later sends
   * past it. A high SO_RCVLOWAT holds the data-ready wake-up (the verdict's only trigger) back;
   * setting it to 1 afterwards kicks both sockets, which sends what arrived meanwhile, in order.
   * A FIN wakes a socket regardless: `first` goes in first, so only it can be judged before its
   * peer is in; its bytes then stay for the proxy, and nothing follows a FIN to overtake them.
   */
  pair(first: SpliceEnd, second: SpliceEnd): void {
    this.check();
    setSendBuffer(first.fd, SPLICE_SNDBUF);
    setSendBuffer(second.fd, SPLICE_SNDBUF);
    setRcvLowat(first.fd, HOLD_LOWAT);
    try {
      setRcvLowat(second.fd, HOLD_LOWAT);
      try {
        this.peers.updateRaw(first.cookie, second.cookie);
        this.peers.updateRaw(second.cookie, first.cookie);
        this.socks.updateRaw(first.cookie, fdValue(first.fd));
        this.socks.updateRaw(second.cookie, fdValue(second.fd));
      } catch (e) {
        // Nothing was forwarded yet (the wake-ups are held): both sockets can leave the sockhash.
        this.forget(first, second);
        for (const end of [first, second]) this.socks.deleteRaw(end.cookie);
        throw e;
      } finally {
        setRcvLowat(second.fd, 1);
      }
    } finally {
      setRcvLowat(first.fd, 1);
    }
  }

  /**
   * Forgets a pair once one of its sockets closed: its peer entries. The sockets leave the
   * sockhash by themselves when they close, and must not be taken out before: removing a socket
   * drops what the kernel still holds for it, such as redirected bytes not yet sent.
   */
  forget(a: SpliceEnd, b: SpliceEnd): void {
    if (this.closed) return;
    for (const end of [a, b]) this.peers.deleteRaw(end.cookie);
  }

  /** Sockets paired now (the peer table's entries). */
  pairedSockets(): number {
    return this.closed ? 0 : this.peers.count(8);
  }

  /** Unloads the program and its maps: sockets still paired fall back to the proxy reading them. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.obj.close();
  }

  private check(): void {
    if (this.closed) throw new BpfError(`use ${SOCKS}`, 9, "the splicer is closed");
  }
}

function fdValue(fd: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(fd));
  return b;
}
