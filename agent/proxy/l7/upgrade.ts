/**
 * HTTP/1.1 Upgrade (WebSocket) at the source proxy, after routing: the request goes upstream as
 * routed (canonical path, the route's header edits, hop-by-hop fields dropped), and the client's
 * connection becomes a byte tunnel only once the upstream answers 101 Switching Protocols to a
 * protocol the client asked for (RFC 9110 §7.8), as Envoy does.
 *
 * Invariants:
 * - Nothing the client sent after the request head reaches the upstream before the 101: until
 *   then those bytes may be the next HTTP request, which must be routed and authorized itself.
 * - Any other answer is relayed as the response to that one request, and both connections close.
 * - `h2c` is never tunnelled: weft speaks h2 to the client itself or not at all.
 */
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { ResponseFlag } from "../../telemetry/labels.js";
import { spliceWith } from "../copy.js";
import {
  assertRequestLine,
  assertWritable,
  assertWritableValue,
  BodyDecoder,
  chunkFrame,
  headerLines,
  isHeadError,
  LAST_CHUNK,
  parseResponseHead,
  type ResponseHead,
  reasonPhrase,
  responseFraming,
} from "./h1-codec.js";
import { requestAuthority } from "./h1-entry.js";
import { canonicalTarget, isTargetError } from "./request-target.js";

/** The protocols an Upgrade header asks for, lower-cased, without versions' case changed. */
export function upgradeProtocols(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value.join(",") : value)
    .split(",")
    .map((p) => p.trim().toLowerCase())
    .filter(Boolean);
}

/** Why an Upgrade request cannot be carried, or undefined when it can. */
export function upgradeRefusal(minor: number, headers: IncomingHttpHeaders): string | undefined {
  if (minor !== 1) return "Upgrade needs HTTP/1.1";
  const protocols = upgradeProtocols(headers.upgrade);
  if (protocols.length === 0) return "empty Upgrade header";
  if (protocols.some((p) => p === "h2c" || p.startsWith("h2c/"))) return "h2c upgrade is not supported (speak h2 with prior knowledge)";
  // The bytes after the head are held until the 101; a body there could never be sent.
  const length = headers["content-length"];
  if ((length !== undefined && length !== "0") || headers["transfer-encoding"] !== undefined) return "an Upgrade request with a body";
  return undefined;
}

/** An Upgrade request node:http parsed, checked and made canonical. */
export interface UpgradeRequest {
  method: string;
  path: string;
  authority: string;
  /** The protocols asked for (lower case). */
  asked: string[];
  /** The Upgrade header as sent, for the request upstream. */
  upgrade: string;
}

/** The checked parts of an Upgrade request, or the reason for a 400. */
export function checkUpgradeRequest(req: IncomingMessage): UpgradeRequest | { error: string } {
  const method = req.method ?? "GET";
  const target = canonicalTarget(method, req.url ?? "/", true);
  if (isTargetError(target)) return { error: target.error };
  const refusal = upgradeRefusal(req.httpVersionMinor, req.headers);
  if (refusal) return { error: refusal };
  const authority = requestAuthority(req, target);
  if (typeof authority !== "string") return { error: authority.error };
  return { method, path: target.path, authority, asked: upgradeProtocols(req.headers.upgrade), upgrade: String(req.headers.upgrade) };
}

/** Answers an upgrade request the proxy itself refuses, and closes; returns the bytes written. */
export function refuseUpgrade(socket: Duplex, status: number, why: string, headers: Record<string, string> = {}): number {
  const extra = headerLines(headers);
  const text = `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\ncontent-type: text/plain\r\n${extra}connection: close\r\n\r\n${why}\n`;
  socket.end(text);
  return Buffer.byteLength(text);
}

/** The request head sent upstream: the routed request plus the upgrade it asks for. */
export function upgradeRequestHead(
  method: string,
  path: string,
  authority: string,
  headers: Record<string, string | string[] | undefined>,
  upgrade: string,
): Buffer {
  const all = { ...headers, connection: "upgrade", upgrade };
  assertRequestLine(method, path);
  assertWritable(all);
  assertWritableValue("host", authority);
  return Buffer.from(`${method} ${path} HTTP/1.1\r\nhost: ${authority}\r\n${headerLines(all)}\r\n`, "latin1");
}

/** True when a response switches to one of the protocols asked for. */
export function switchesTo(head: ResponseHead, asked: readonly string[]): boolean {
  if (head.status !== 101) return false;
  const given = upgradeProtocols(head.headers.upgrade);
  return given.length > 0 && given.every((p) => asked.includes(p));
}

/** How the exchange ended, for the caller's metrics and access log (reported once it is over). */
export type UpgradeOutcome =
  /** The tunnel ran and has closed: bytes carried each way after the 101 (its head included). */
  | { kind: "switched"; fromClient: number; toClient: number; clean: boolean }
  | { kind: "answered"; status: number }
  | { kind: "failed"; status: number; reason: string };

/** Istio's response flag for an upgrade's outcome. */
function upgradeFlag(o: UpgradeOutcome): ResponseFlag {
  // A tunnel either side ends, cleanly or not, was carried: which side cut it is not the mesh's to say.
  if (o.kind !== "failed") return "-";
  if (o.status === 504) return "UT";
  if (o.status === 499) return "DC";
  return "UC";
}

/** Writes an upgrade's outcome into its request record (status, flags, reason, bytes). */
export function recordUpgrade(
  ev: { status: number; flags: ResponseFlag; reason?: string; bytesSent: number; bytesReceived: number },
  o: UpgradeOutcome,
): void {
  ev.status = o.kind === "switched" ? 101 : o.status;
  ev.flags = upgradeFlag(o);
  if (o.kind === "failed") ev.reason = o.reason;
  if (o.kind === "switched") {
    ev.bytesSent = o.toClient;
    ev.bytesReceived = o.fromClient;
  }
}

/** How long the upstream has to answer an upgrade request (node:http's headersTimeout). */
export const UPGRADE_ANSWER_MS = 60_000;

/**
 * Sends the upgrade request on the tunnel and waits for the upstream's answer; on a 101 that
 * matches, splices client and tunnel (bytes the client already sent go first). `held` is what
 * the client sent after its request head; the client socket is expected paused. done is called
 * once, however the exchange ends.
 */
export function carryUpgrade(
  client: Duplex,
  tunnel: Duplex,
  request: { method: string; head: Buffer; asked: readonly string[] },
  held: Buffer,
  done: (o: UpgradeOutcome) => void,
  answerMs = UPGRADE_ANSWER_MS,
): void {
  // Resets on either side are expected; an 'error' without a listener would end the process.
  client.on("error", () => undefined);
  tunnel.on("error", () => undefined);
  let ended = false;
  const finish = (o: UpgradeOutcome) => {
    if (ended) return;
    ended = true;
    done(o);
  };
  let buf: Buffer | undefined;
  const fail = (status: number, reason: string) => {
    cleanup();
    tunnel.destroy();
    if (client.writable) client.end(`HTTP/1.1 ${status} ${reasonPhrase(status)}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
    else client.destroy();
    finish({ kind: "failed", status, reason });
  };
  const onData = (c: Buffer) => {
    buf = buf ? Buffer.concat([buf, c]) : c;
    const r = parseResponseHead(buf);
    if (r === "incomplete") return;
    if (isHeadError(r)) {
      fail(502, `upstream sent a bad answer to the upgrade: ${r.error}`);
      return;
    }
    // Interim answers (100, 103) come before the real one.
    if (r.head.status < 200 && r.head.status !== 101) {
      buf = r.used < buf.length ? buf.subarray(r.used) : undefined;
      if (buf) onData(Buffer.alloc(0));
      return;
    }
    cleanup();
    const rest = buf.subarray(r.used);
    if (r.head.status === 101) {
      if (!switchesTo(r.head, request.asked)) {
        fail(502, `upstream switched to ${JSON.stringify(String(r.head.headers.upgrade ?? ""))}, not to what was asked`);
        return;
      }
      let fromClient = held.length;
      let toClient = buf.length;
      client.write(buf.subarray(0, r.used));
      if (rest.length > 0) client.write(rest);
      if (held.length > 0) tunnel.write(held);
      client.on("data", (c: Buffer) => {
        fromClient += c.length;
      });
      tunnel.on("data", (c: Buffer) => {
        toClient += c.length;
      });
      spliceWith(client, tunnel, (end) => finish({ kind: "switched", fromClient, toClient, clean: end.clean }));
      return;
    }
    relayAnswer(client, tunnel, request.method, r.head, rest, () => finish({ kind: "answered", status: r.head.status }));
  };
  const onEnd = () => fail(502, "upstream closed before answering the upgrade");
  const onClientGone = () => {
    cleanup();
    tunnel.destroy();
    finish({ kind: "failed", status: 499, reason: "client went away before the upgrade was answered" });
  };
  const timer = setTimeout(() => fail(504, `upstream did not answer the upgrade in ${answerMs} ms`), answerMs);
  const cleanup = () => {
    clearTimeout(timer);
    tunnel.off("data", onData);
    tunnel.off("end", onEnd);
    tunnel.off("close", onEnd);
    client.off("close", onClientGone);
  };
  tunnel.on("data", onData);
  tunnel.once("end", onEnd);
  tunnel.once("close", onEnd);
  client.once("close", onClientGone);
  tunnel.write(request.head);
}

/** Framing and connection fields of an answer, replaced by the relay's own. */
const RELAY_DROPS = ["connection", "keep-alive", "upgrade", "transfer-encoding", "proxy-connection", "te", "trailer"];

/**
 * Relays a non-101 answer to the client as that request's response, then closes both sides.
 * Either side going away ends the other: a body cut short reaches the client as a reset, never
 * as a complete response. done is called once.
 */
function relayAnswer(client: Duplex, tunnel: Duplex, method: string, head: ResponseHead, first: Buffer, done: () => void): void {
  let over = false;
  const end = (clientEnd: "end" | "destroy") => {
    if (over) return;
    over = true;
    tunnel.destroy();
    if (clientEnd === "end") client.end();
    else client.destroy();
    done();
  };
  const framing = responseFraming(method, head);
  const headers: Record<string, string | string[] | undefined> = { ...head.headers };
  for (const h of RELAY_DROPS) delete headers[h];
  if (typeof framing !== "string" && framing.kind !== "none") delete headers["content-length"];
  if (typeof framing !== "string" && framing.kind === "length") headers["content-length"] = String(framing.length);
  if (typeof framing !== "string" && framing.kind === "chunked") headers["transfer-encoding"] = "chunked";
  headers.connection = "close";
  let headText: string;
  try {
    if (typeof framing === "string") throw new Error(framing);
    assertWritable(headers);
    headText = `HTTP/1.1 ${head.status} ${reasonPhrase(head.status)}\r\n${headerLines(headers)}\r\n`;
  } catch {
    if (client.writable) client.write("HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    end("end");
    return;
  }
  const f = framing as Exclude<typeof framing, string>;
  client.once("close", () => end("destroy"));
  tunnel.once("close", () => end("destroy"));
  client.write(headText);
  const decoder = new BodyDecoder(f);
  const emit = (c: Buffer) => {
    const ok =
      f.kind === "chunked"
        ? chunkFrame(c)
            .map((p) => client.write(p))
            .every(Boolean)
        : client.write(c);
    if (!ok) {
      tunnel.pause();
      client.once("drain", () => tunnel.resume());
    }
  };
  const feed = (c: Buffer) => {
    decoder.feed(c, 0, emit);
    if (decoder.error) end("destroy");
    else if (decoder.done) {
      tunnel.off("data", feed);
      if (f.kind === "chunked") client.write(LAST_CHUNK);
      end("end");
    }
  };
  if (decoder.done || (f.kind === "length" && f.length === 0)) {
    end("end");
    return;
  }
  tunnel.on("data", feed);
  tunnel.once("end", () => {
    if (!decoder.done && decoder.closed()) end("end");
    else end("destroy");
  });
  if (first.length > 0) feed(first);
}
