/**
 * Same-node delivery spliced in the kernel: once the proxy has accepted the client's connection,
 * decided it and dialled the pod, the two sockets are paired in the splice sockhash
 * (native/sock-splice.ts) and every byte after that goes from one to the other inside the kernel.
 * The proxy keeps both sockets open and reading, but a read only ever sees the end of a side (or
 * the rare bytes the kernel left on a socket because its peer was not paired yet), so the proxy
 * wakes per connection event, not per chunk.
 *
 * What stays the proxy's: half-close (a FIN one way ends that direction only, once every byte
 * before it went out of the other socket), aborts (a reset or error on one side resets the
 * other), and the byte counts of the connection, which come from the kernel's TCP counters since
 * the proxy no longer sees the bytes.
 *
 * It reads three fields of Node's socket handle (`fd`, `reading`, readStart/readStop): reading must
 * stop before the pairing, or libuv could take bytes off a socket after the kernel started
 * forwarding later ones, and must restart after it. They have been stable since Node 0.x.
 */
import type { Socket } from "node:net";
import { BpfError } from "../../native/bpf-error.js";
import { type SocketSplicer, type SpliceEnd, spliceEnd } from "../../native/sock-splice.js";
import { type TcpCounters, tcpCounters } from "../../native/socket-info.js";
import { abortSocket } from "./abort.js";
import { completed, type SpliceResult, spliceWith } from "./copy.js";

interface StreamHandle {
  fd: number;
  reading: boolean;
  readStart(): number;
  readStop(): number;
}

/** Bytes of a connection as its client side sees them. */
export interface SpliceBytes {
  /** From the client. */
  received: number;
  /** To the client. */
  sent: number;
}

/** A connection whose bytes the kernel carries. */
export interface KernelSplice {
  /** Byte counts so far (read from the kernel while the sockets are open, else the last known). */
  bytes(): SpliceBytes;
  /** Why the kernel does not carry it after all (the pairing failed): the proxy splices it. */
  fallback?: Error;
  /**
   * The fallback is the ordinary case of a side that already sent its FIN (a client that writes
   * its request and shuts down at once): the kernel pairs only established sockets.
   */
  halfClosed?: boolean;
}

function handleOf(s: Socket): StreamHandle | undefined {
  const h = (s as unknown as { _handle?: StreamHandle | null })._handle;
  return h && typeof h.fd === "number" && h.fd >= 0 ? h : undefined;
}

function stopReading(s: Socket): void {
  const h = handleOf(s);
  if (h?.reading) {
    h.reading = false;
    h.readStop();
  }
}

function startReading(s: Socket): void {
  const h = handleOf(s);
  if (h && !h.reading) {
    h.reading = true;
    h.readStart();
  }
}

/** Takes the bytes Node already read from s (a sniffed prefix, an early request) and stops its reads. */
function takeHeld(s: Socket): Buffer[] {
  const out: Buffer[] = [];
  for (let c: Buffer | null = s.read(); c !== null; c = s.read()) out.push(c);
  // read() may have asked libuv to read again; nothing is read before this turn of the loop ends.
  stopReading(s);
  return out;
}

/** Writes chunks to s and resolves once Node handed all of them to the kernel. */
function flush(s: Socket, chunks: Buffer[]): Promise<void> {
  if (chunks.length === 0 && s.writableLength === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    if (chunks.length === 0) chunks.push(Buffer.alloc(0));
    for (let i = 0; i < chunks.length; i++) {
      const last = i === chunks.length - 1;
      s.write(chunks[i] as Buffer, last ? (e) => (e ? reject(e) : resolve()) : undefined);
    }
  });
}

/** One side's kernel view: what it received from its peer and what went out of it, not through Node. */
class Side {
  /** Bytes the kernel sent out of this socket, not written by Node (a SYN this side sent, counted by TCP_INFO, is taken off). */
  out = 0;
  private outOffset = 0;

  constructor(
    readonly sock: Socket,
    readonly end: SpliceEnd,
  ) {}

  private counters(): TcpCounters | undefined {
    if (!handleOf(this.sock)) return undefined;
    try {
      return tcpCounters(this.end.fd);
    } catch {
      return undefined;
    }
  }

  /** Records what Node wrote before the pairing, so later counts are the kernel's alone. */
  baseline(): void {
    const c = this.counters();
    this.outOffset = c ? c.acked + c.unacked - this.sock.bytesWritten : 0;
  }

  /** Refreshes `out`; false when the socket is gone or Node still has bytes to hand to it. */
  refresh(): boolean {
    const c = this.counters();
    if (!c || this.sock.writableLength > 0) return false;
    this.out = Math.max(this.out, c.acked + c.unacked - this.outOffset - this.sock.bytesWritten);
    return true;
  }

  /** Bytes this socket received that Node did not read (the kernel took them to the peer), after its FIN. */
  receivedNotRead(): number | undefined {
    const c = this.counters();
    if (!c) return undefined;
    return c.received - (this.sock.readableEnded ? 1 : 0) - this.sock.bytesRead;
  }
}

/**
 * Pairs client and upstream in the kernel and supervises them as spliceWith does (half-close,
 * aborts, done once both are closed). When the pairing fails (the sockhash is full, say) the same
 * supervision carries the bytes through Node, and `fallback` says why.
 */
export async function spliceInKernel(
  splicer: SocketSplicer,
  client: Socket,
  upstream: Socket,
  done: (r: SpliceResult) => void,
): Promise<KernelSplice> {
  let c: Side;
  let u: Side;
  try {
    const ch = handleOf(client);
    const uh = handleOf(upstream);
    if (!ch || !uh) throw new Error("kernel splice: a socket has no file descriptor");
    c = new Side(client, spliceEnd(ch.fd));
    u = new Side(upstream, spliceEnd(uh.fd));
  } catch (e) {
    // Nothing was touched yet: the proxy copies this one.
    spliceWith(client, upstream, done);
    return { ...nodeCounts(client), fallback: e as Error };
  }
  const heldFromClient = takeHeld(client);
  const heldFromUpstream = takeHeld(upstream);

  let error: Error | undefined;
  let closed = 0;
  let paired = false;
  const onError = (e: Error) => {
    error ??= e;
  };
  const onClose = (self: Socket, other: Socket) => () => {
    // The last counts the closing side's peer can still give (an aborted side's are gone).
    c.refresh();
    u.refresh();
    if (paired) {
      paired = false;
      splicer.forget(c.end, u.end);
    }
    // Abnormal end: the peer must see a reset, never a FIN it would take for a complete answer.
    if (!completed(self) && !other.destroyed) abortSocket(other);
    if (++closed === 2) done({ clean: !error && completed(client) && completed(upstream), ...(error ? { error } : {}) });
  };
  client.on("error", onError);
  upstream.on("error", onError);
  client.on("close", onClose(client, upstream));
  upstream.on("close", onClose(upstream, client));

  // Bytes Node holds go first, through Node, before the kernel sends anything after them.
  try {
    await Promise.all([flush(upstream, heldFromClient), flush(client, heldFromUpstream)]);
  } catch (e) {
    client.destroy(e as Error);
    return nodeCounts(client);
  }
  if (client.destroyed || upstream.destroyed) {
    client.destroy();
    upstream.destroy();
    return nodeCounts(client);
  }
  c.baseline();
  u.baseline();
  let fallback: Error | undefined;
  try {
    splicer.pair(u.end, c.end);
    paired = true;
  } catch (e) {
    fallback = e as Error;
  }
  const halfClosed = fallback instanceof BpfError && fallback.errnoName === "EOPNOTSUPP";

  const direct = (from: Side, to: Side) => {
    // Only what the kernel left on this socket arrives here (its peer was not paired yet).
    from.sock.on("data", (chunk: Buffer) => {
      if (!to.sock.write(chunk)) {
        from.sock.pause();
        to.sock.once("drain", () => from.sock.resume());
      }
    });
    // Node may have seen the end already, while the held bytes were being flushed.
    if (from.sock.readableEnded) endWhenDrained(from, to);
    else from.sock.on("end", () => endWhenDrained(from, to));
    from.sock.resume();
    startReading(from.sock);
  };
  direct(c, u);
  direct(u, c);

  return {
    bytes: () => {
      c.refresh();
      u.refresh();
      return { received: client.bytesRead + u.out, sent: client.bytesWritten + c.out };
    },
    ...(fallback ? { fallback, halfClosed } : {}),
  };
}

function nodeCounts(client: Socket): KernelSplice {
  return { bytes: () => ({ received: client.bytesRead, sent: client.bytesWritten }) };
}

/**
 * Ends `to` once every byte `from` received before its FIN went out of `to`. The count is taken
 * at the FIN, while `from` is still open (it may close before the kernel is done with its bytes).
 */
function endWhenDrained(from: Side, to: Side): void {
  const pending = from.receivedNotRead();
  const poll = (waitedMs: number) => {
    if (to.sock.destroyed) return;
    if (pending === undefined || (to.refresh() && to.out >= pending)) {
      to.sock.end();
      return;
    }
    // The kernel sends redirected bytes from a work queue; a full peer window holds them longer.
    const next = Math.min(100, Math.max(1, waitedMs));
    setTimeout(() => poll(waitedMs + next), next).unref();
  };
  poll(0);
}
