/**
 * Protocol selection for a captured connection, as Istio does it: the Service port's declared
 * protocol (appProtocol, else the port-name prefix) first; a port that declares nothing is
 * sniffed from the client's first bytes with a short bounded wait. Anything that is not HTTP
 * stays on the L4 path, unchanged.
 */
import type { Socket } from "node:net";
import { Duplex } from "node:stream";
import type { AppProtocol, Workload } from "../../../controller/api/model.js";
import type { MeshView, ServiceMatch } from "../../state/view.js";

/** The wire protocol a downstream connection speaks. */
export type WireProtocol = "http1" | "http2" | "tcp";

/** What to do with a connection to a port, before reading anything. */
export type PortHandling = "l4" | "l7" | "sniff";

/** HTTP/2's connection preface (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
/** An HTTP/1.x request line. */
const H1_REQUEST_LINE = /^[A-Z][A-Z-]{0,19} [^\s]+ HTTP\/1\.[01]\r?\n/;
/** A prefix that could still become a request line (the first segment may be short). */
const H1_PARTIAL = /^[A-Z][A-Z-]{0,19}( [^\s]*( (H(T(T(P(\/(1(\.([01]\r?)?)?)?)?)?)?)?)?)?)?$/;
/** Bytes of first flight read before giving up on recognising HTTP. */
const SNIFF_LIMIT = 8192;

/** Decides how a connection to a port with this declared protocol is handled. */
export function portHandling(protocol: AppProtocol): PortHandling {
  if (protocol === "tcp") return "l4";
  if (protocol === "auto") return "sniff";
  return "l7";
}

/**
 * True when calls from `source` to this service need the L7 path: a route table (VirtualService,
 * HTTPRoute) or a DestinationRule applies to them. Without either, per-request handling would add
 * nothing the L4 splice does not already do, so the port stays on the L4 path at L4 speed
 * (DESIGN.md: "a port with no HTTP routes and no L7 policy stays on the L4 splice path").
 */
export function wantsL7(view: MeshView, service: ServiceMatch, source: Workload): boolean {
  return (
    view.routesFor(service.service.key, source.namespace).length > 0 || view.destinationPolicyFor(service.service.key, source) !== undefined
  );
}

/** Classifies the first bytes: a protocol, or "more" when they could still be HTTP. */
export function classify(whole: Buffer): WireProtocol | "more" {
  // Empty lines before a request line are skipped by HTTP/1.1 servers (RFC 9112 §2.2), weft's
  // own included: an app would read what follows them as HTTP, so the sniffer must too.
  let skip = 0;
  while (skip < whole.length && skip < SNIFF_LIMIT && (whole[skip] === 13 || whole[skip] === 10)) skip++;
  if (skip === whole.length) return skip < SNIFF_LIMIT ? "more" : "tcp";
  const head = skip === 0 ? whole : whole.subarray(skip);
  const n = Math.min(head.length, H2_PREFACE.length);
  if (head.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) return head.length >= H2_PREFACE.length ? "http2" : "more";
  const text = head.subarray(0, Math.min(head.length, 512)).toString("latin1");
  if (H1_REQUEST_LINE.test(text)) return "http1";
  if (head.length < SNIFF_LIMIT && H1_PARTIAL.test(text)) return "more";
  return "tcp";
}

/**
 * Reads the client's first bytes (up to waitMs) and puts them back on the socket, so whichever
 * path takes the connection sees it untouched. A client that says nothing in time (a
 * server-first protocol) is TCP. "closed": the client went away (or half-closed) while its bytes
 * were still ambiguous; they cannot be put back after the end, so the caller drops it.
 */
export function sniff(sock: Socket, waitMs: number): Promise<WireProtocol | "closed"> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (p: WireProtocol | "closed") => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.off("data", onData);
      sock.off("end", onEnd);
      sock.off("close", onEnd);
      sock.pause();
      if (p !== "closed" && chunks.length > 0) sock.unshift(Buffer.concat(chunks));
      resolve(p);
    };
    const onData = (c: Buffer) => {
      chunks.push(c);
      const verdict = classify(chunks.length === 1 ? c : Buffer.concat(chunks));
      if (verdict !== "more") finish(verdict);
    };
    const onEnd = () => finish("closed");
    const timer = setTimeout(() => finish("tcp"), waitMs);
    sock.on("data", onData);
    sock.once("end", onEnd);
    sock.once("close", onEnd);
  });
}

/**
 * The socket as a Duplex that first yields bytes already read from it (`head`: by default what
 * sniffing put back). Node's HTTP/2 server reads a net.Socket's handle directly and would miss
 * bytes put back with unshift, so an h2 connection is handed over through this wrapper; so is a
 * connection weft's HTTP/1.1 server passes to node:http with the request it already read.
 */
export function withSniffedBytes(sock: Duplex, head: Buffer | null = sock.read() as Buffer | null): Duplex {
  const d = new Duplex({
    read() {
      sock.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      sock.write(chunk, cb);
    },
    final(cb) {
      sock.end();
      cb();
    },
    destroy(err, cb) {
      sock.destroy(err ?? undefined);
      cb(err);
    },
  });
  if (head) d.push(head);
  sock.on("data", (c: Buffer) => {
    if (!d.push(c)) sock.pause();
  });
  sock.once("end", () => d.push(null));
  sock.once("close", () => d.destroy());
  sock.on("error", (e) => d.destroy(e));
  return d;
}
