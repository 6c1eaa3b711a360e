/**
 * The HTTP/1.1 wire format for the proxy's own connections: message heads parsed from the bytes
 * a socket delivered, bodies framed by Content-Length or chunked coding, and heads written back.
 * The proxy re-frames every message it forwards, so what it accepts here is what it understands:
 * anything ambiguous about where a message ends (both Content-Length and Transfer-Encoding,
 * differing lengths, a coding other than chunked, folded or bare-LF lines) is refused, never
 * guessed, since a proxy and a server that disagree on message bounds is request smuggling.
 */

/** Largest request or response head accepted (Node's default --max-http-header-size). */
export const MAX_HEAD_BYTES = 16 * 1024;
/** Most header lines in one head. */
export const MAX_HEADERS = 200;
const MAX_CHUNK_LINE = 4096;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values (RFC 9110 §5.5): visible ASCII, obs-text, SP and HTAB. Any other control character
// is refused, read or written (as Node's llhttp and its header check do): some parsers end a line
// at a bare CR or treat VT/FF as whitespace, so such a value has more than one reading. Written
// strings can hold code points above 0xff, which latin1 encoding would cut to their low byte
// ("\u010a" → LF), so those are refused too; a parsed value never has any.
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const TARGET = /^[\x21-\x7e\x80-\xff]+$/;
// chunk = chunk-size [ chunk-ext ] CRLF (RFC 9112 §7.1): hex digits first, nothing before them,
// then BWS (SP/HTAB only) before an extension's ";" or the line's end. Only the size is read;
// extensions are dropped when re-framing, so they are only checked for control characters (a
// bare CR there would end the line for some parsers).
const CHUNK_SIZE = /^([0-9A-Fa-f]{1,13})[\t ]*(?:;|$)/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/;
const CONTENT_LENGTH = /^\d{1,15}$/;

/** A parsed head's fields, names in lower case; repeats joined as Node joins them. */
export type HeaderMap = Record<string, string | string[]>;

/** How the body after a head is delimited. */
export type Framing = { kind: "none" } | { kind: "length"; length: number } | { kind: "chunked" } | { kind: "close" };

/** A request head. */
export interface RequestHead {
  method: string;
  target: string;
  /** 1 for HTTP/1.1, 0 for HTTP/1.0. */
  minor: number;
  headers: HeaderMap;
  framing: Framing;
}

/** A response head. */
export interface ResponseHead {
  status: number;
  minor: number;
  headers: HeaderMap;
}

/** A head that could not be parsed: the status to answer and why. */
export interface HeadError {
  error: string;
  status: number;
}

/** Result of looking for a head at the start of a buffer. */
export type HeadResult<H> = { head: H; used: number } | HeadError | "incomplete";

/** True when a parse result is an error. */
export function isHeadError<H>(r: HeadResult<H>): r is HeadError {
  return typeof r === "object" && "error" in r;
}

/**
 * An empty field map. Without a prototype, a field named `__proto__` is an own property rather
 * than a (dropped) prototype change, and `constructor` or `toString` start out undefined rather
 * than being Object.prototype's functions, so every name sent is read as sent.
 */
function headerMap(): HeaderMap {
  return Object.create(null) as HeaderMap;
}

/** True for SP and HTAB, the only whitespace of HTTP/1.1 (OWS, RFC 9110 §5.6.3). */
function isOws(c: number): boolean {
  return c === 32 || c === 9;
}

/** s without leading and trailing SP/HTAB; `.trim()` would also strip VT, FF, NBSP and more. */
function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isOws(s.charCodeAt(a))) a++;
  while (b > a && isOws(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

function addHeader(h: HeaderMap, name: string, value: string): void {
  const cur = h[name];
  if (cur === undefined) {
    h[name] = name === "set-cookie" ? [value] : value;
    return;
  }
  if (Array.isArray(cur)) cur.push(value);
  else h[name] = `${cur}${name === "cookie" ? "; " : ", "}${value}`;
}

/**
 * Lower-case names of the fields most messages carry, by the spelling they arrive in, so a
 * parsed name costs no new string (and no string-table lookup when it becomes a key).
 */
const KNOWN_NAMES = new Map<string, string>();
for (const n of [
  "Host",
  "User-Agent",
  "Accept",
  "Accept-Encoding",
  "Accept-Language",
  "Connection",
  "Content-Type",
  "Content-Length",
  "Date",
  "Server",
  "Cache-Control",
  "Cookie",
  "Set-Cookie",
  "Authorization",
  "Transfer-Encoding",
  "Keep-Alive",
  "Last-Modified",
  "ETag",
  "Vary",
  "Location",
  "Upgrade",
  "X-Request-Id",
  "X-Forwarded-For",
  "X-Forwarded-Proto",
  "Traceparent",
  "Tracestate",
  "Baggage",
  "End-User",
]) {
  KNOWN_NAMES.set(n, n.toLowerCase());
  KNOWN_NAMES.set(n.toLowerCase(), n.toLowerCase());
}

/** Splits the field lines of a head's text from `from` on into headers; the reason when one is bad. */
function fields(text: string, from: number, headers: HeaderMap): string | undefined {
  let count = 0;
  let i = from;
  while (i < text.length) {
    let eol = text.indexOf("\r\n", i);
    if (eol < 0) eol = text.length;
    const start = i;
    i = eol + 2;
    if (++count > MAX_HEADERS) return `more than ${MAX_HEADERS} header lines`;
    const c0 = text.charCodeAt(start);
    if (c0 === 32 || c0 === 9) return "folded header line (obs-fold)";
    const colon = text.indexOf(":", start);
    if (colon <= start || colon >= eol)
      return `header line without a name: ${JSON.stringify(text.slice(start, Math.min(eol, start + 40)))}`;
    const raw = text.slice(start, colon);
    if (!TOKEN.test(raw)) return `invalid header name ${JSON.stringify(raw.slice(0, 40))}`;
    let a = colon + 1;
    let b = eol;
    while (a < b && isOws(text.charCodeAt(a))) a++;
    while (b > a && isOws(text.charCodeAt(b - 1))) b--;
    const value = text.slice(a, b);
    if (BAD_VALUE.test(value)) return `invalid character in header ${raw}`;
    addHeader(headers, KNOWN_NAMES.get(raw) ?? raw.toLowerCase(), value);
  }
  return undefined;
}

function findHead(buf: Buffer, max: number): { start: number; end: number } | HeadError | "incomplete" {
  let start = 0;
  // RFC 9112 §2.2: a server should ignore empty lines received before a request line. They count
  // against the head's size like any other byte of it: the whole buffer a caller holds while it
  // waits for a head stays under the limit, so an endless stream of CRLFs is refused (431) as
  // soon as it passes it rather than held (and rescanned) until the head timeout. A fixed count
  // of empty lines would refuse clients that end a body with an extra CRLF for no gain.
  while (start + 1 < buf.length && buf[start] === 13 && buf[start + 1] === 10) start += 2;
  const end = buf.indexOf("\r\n\r\n", start, "latin1");
  // Incomplete, the head ends at buf.length - 3 at the earliest (a split "\r\n\r\n"): the limit
  // then refuses the same heads however the bytes were split.
  if (end < 0 ? buf.length - 3 > max : end > max) {
    const lead = start > 0 ? ` (with ${start / 2} empty lines before it)` : "";
    return { error: `message head larger than ${max} bytes${lead}`, status: 431 };
  }
  if (end < 0) return "incomplete";
  // A lone LF anywhere in the head makes line boundaries ambiguous.
  const lf = buf.indexOf(10, start);
  if (lf >= 0 && lf < end) {
    for (let i = start; i < end; i++) if (buf[i] === 10 && buf[i - 1] !== 13) return { error: "bare LF in message head", status: 400 };
  }
  return { start, end };
}

/**
 * The length a Content-Length field gives, or why it gives none. A list of one value repeated
 * ("5, 5", or two fields of 5) is that value, and the field is replaced by it (RFC 9110 §8.6):
 * the message is forwarded as framed, never with the list a next hop might read otherwise.
 */
function contentLength(h: HeaderMap): number | string | undefined {
  const cl = h["content-length"];
  if (cl === undefined) return undefined;
  const raw = String(cl);
  let first: string | undefined;
  for (const v of raw.split(",")) {
    const n = trimOws(v);
    if (first === undefined) {
      if (!CONTENT_LENGTH.test(n)) return `invalid Content-Length ${JSON.stringify(raw)}`;
      first = n;
    } else if (n !== first) return `invalid Content-Length ${JSON.stringify(raw)}`;
  }
  const length = Number(first);
  h["content-length"] = String(length);
  return length;
}

/** Reads Content-Length and Transfer-Encoding into a framing, or says why they are unusable. */
function bodyFraming(h: HeaderMap, isRequest: boolean): Framing | string {
  const te = h["transfer-encoding"];
  if (te !== undefined) {
    if (h["content-length"] !== undefined) return "both Transfer-Encoding and Content-Length";
    const codings: string[] = [];
    for (const part of String(te).split(",")) {
      const c = trimOws(part).toLowerCase();
      if (c === "") continue;
      // A coding that is not a token (parameters aside) has no reading.
      const semi = c.indexOf(";");
      if (!TOKEN.test(semi < 0 ? c : trimOws(c.slice(0, semi)))) return `invalid Transfer-Encoding ${JSON.stringify(String(te))}`;
      codings.push(c);
    }
    if (codings.length !== 1 || codings[0] !== "chunked") {
      // A response may end a non-chunked coding by closing; a request cannot.
      if (!isRequest && codings[codings.length - 1] !== "chunked") return { kind: "close" };
      return `unsupported Transfer-Encoding ${JSON.stringify(String(te))}`;
    }
    return { kind: "chunked" };
  }
  const length = contentLength(h);
  if (typeof length === "string") return length;
  if (length !== undefined) return length === 0 ? { kind: "none" } : { kind: "length", length };
  return isRequest ? { kind: "none" } : { kind: "close" };
}

/** A head's text, its first line and where that line ends, and the bytes the head takes. */
function headText(buf: Buffer, max: number): { text: string; eol: number; line: string; used: number } | HeadError | "incomplete" {
  const found = findHead(buf, max);
  if (found === "incomplete" || "error" in found) return found;
  const text = buf.toString("latin1", found.start, found.end);
  const eol = text.indexOf("\r\n");
  return { text, eol, line: eol < 0 ? text : text.slice(0, eol), used: found.end + 4 };
}

/** Parses a request head at the start of buf. */
export function parseRequestHead(buf: Buffer, max = MAX_HEAD_BYTES): HeadResult<RequestHead> {
  const h = headText(buf, max);
  if (h === "incomplete" || "error" in h) return h;
  const { text, eol, line, used } = h;
  const sp1 = line.indexOf(" ");
  const sp2 = line.indexOf(" ", sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || line.indexOf(" ", sp2 + 1) >= 0)
    return { error: `malformed request line ${JSON.stringify(line.slice(0, 80))}`, status: 400 };
  const method = line.slice(0, sp1);
  const target = line.slice(sp1 + 1, sp2);
  const version = line.slice(sp2 + 1);
  if (!TOKEN.test(method)) return { error: `invalid method ${JSON.stringify(method.slice(0, 40))}`, status: 400 };
  if (!TARGET.test(target)) return { error: "invalid request target", status: 400 };
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0")
    return { error: `unsupported version ${JSON.stringify(version.slice(0, 20))}`, status: 505 };
  const headers = headerMap();
  const bad = eol < 0 ? undefined : fields(text, eol + 2, headers);
  if (bad) return { error: bad, status: 400 };
  const framing = bodyFraming(headers, true);
  if (typeof framing === "string") return { error: framing, status: 400 };
  return { head: { method, target, minor: version === "HTTP/1.1" ? 1 : 0, headers, framing }, used };
}

/** Parses a response head at the start of buf. */
export function parseResponseHead(buf: Buffer, max = MAX_HEAD_BYTES): HeadResult<ResponseHead> {
  const h = headText(buf, max);
  if (h === "incomplete" || "error" in h) return h;
  const { text, eol, line, used } = h;
  const m = STATUS_LINE.exec(line);
  if (!m) return { error: `malformed status line ${JSON.stringify(line.slice(0, 80))}`, status: 502 };
  // RFC 9110 §15: three digits, 1xx to 5xx. Any other would be read by its own rules (a 0xx is
  // "below 200", an interim answer) that no sender meant.
  const status = Number(m[2]);
  if (status < 100 || status > 599) return { error: `invalid status code ${m[2]}`, status: 502 };
  const headers = headerMap();
  const bad = eol < 0 ? undefined : fields(text, eol + 2, headers);
  if (bad) return { error: bad, status: 502 };
  return { head: { status, minor: Number(m[1]), headers }, used };
}

/** How a response to `method` with this head is delimited (RFC 9112 §6.3), or why it cannot be. */
export function responseFraming(method: string, head: ResponseHead): Framing | string {
  if (method === "HEAD" || head.status === 204 || head.status === 304 || head.status < 200) {
    // No body follows whatever the fields say, but a Content-Length is still forwarded: it is
    // checked and made one value as for any other message.
    const length = contentLength(head.headers);
    return typeof length === "string" ? length : { kind: "none" };
  }
  return bodyFraming(head.headers, false);
}

/** True when the connection must close after this message (RFC 9112 §9.3). */
export function wantsClose(headers: HeaderMap, minor: number): boolean {
  const c = headers.connection;
  if (c === undefined) return minor === 0;
  const tokens = String(c).toLowerCase();
  if (/(^|,)\s*close\s*(,|$)/.test(tokens)) return true;
  return minor === 0 && !/(^|,)\s*keep-alive\s*(,|$)/.test(tokens);
}

/**
 * Decodes one message body as bytes arrive. feed() takes what it can from buf at offset and says
 * how much it used; data goes to onData as slices of buf (valid until the caller reuses buf).
 */
export class BodyDecoder {
  private left: number;
  private state: "size" | "data" | "data-crlf" | "trailers" | "done";
  private line = "";
  private trailerText = "";
  /** Trailer fields of a chunked body, once it ended. */
  trailers: HeaderMap | undefined;
  /** Why the body is malformed; the decoder stops. */
  error: string | undefined;

  constructor(private readonly framing: Framing) {
    this.left = framing.kind === "length" ? framing.length : 0;
    this.state = framing.kind === "none" ? "done" : framing.kind === "chunked" ? "size" : "data";
  }

  /** True once the whole body was read. */
  get done(): boolean {
    return this.state === "done";
  }

  /** Marks a close-delimited body complete (the connection ended). */
  closed(): boolean {
    if (this.framing.kind !== "close") return false;
    this.state = "done";
    return true;
  }

  /** Consumes bytes from buf[offset..]; returns the bytes used. */
  feed(buf: Buffer, offset: number, onData: (chunk: Buffer) => void): number {
    let i = offset;
    while (i < buf.length && this.state !== "done" && this.error === undefined) {
      if (this.framing.kind === "close") {
        onData(buf.subarray(i));
        return buf.length - offset;
      }
      if (this.state === "data") {
        const n = Math.min(this.left, buf.length - i);
        if (n > 0) onData(buf.subarray(i, i + n));
        i += n;
        this.left -= n;
        if (this.left === 0) this.state = this.framing.kind === "length" ? "done" : "data-crlf";
        continue;
      }
      // Line-oriented states: size lines, the CRLF after chunk data, trailer lines.
      const lf = buf.indexOf(10, i);
      const end = lf < 0 ? buf.length : lf + 1;
      this.line += buf.toString("latin1", i, end);
      i = end;
      if (this.line.length > MAX_CHUNK_LINE) {
        this.error = "chunk line too long";
        break;
      }
      if (lf < 0) break;
      if (!this.line.endsWith("\r\n")) {
        this.error = "bare LF in chunked body";
        break;
      }
      const line = this.line.slice(0, -2);
      this.line = "";
      this.lineDone(line);
    }
    return i - offset;
  }

  private lineDone(line: string): void {
    if (this.state === "data-crlf") {
      if (line !== "") this.error = "chunk data longer than its size";
      else this.state = "size";
      return;
    }
    if (this.state === "trailers") {
      if (line !== "") {
        if (this.trailerText.length + line.length > MAX_HEAD_BYTES) this.error = "trailers too large";
        else this.trailerText += `${line}\r\n`;
        return;
      }
      if (this.trailerText !== "") {
        const t = headerMap();
        const bad = fields(this.trailerText.slice(0, -2), 0, t);
        if (bad) {
          this.error = `trailers: ${bad}`;
          return;
        }
        this.trailers = t;
      }
      this.state = "done";
      return;
    }
    const m = CHUNK_SIZE.exec(line);
    if (!m) {
      this.error = `invalid chunk size line ${JSON.stringify(line.slice(0, 20))}`;
      return;
    }
    if (m[0].length < line.length && BAD_VALUE.test(line.slice(m[0].length))) {
      this.error = "invalid character in chunk extension";
      return;
    }
    const size = Number.parseInt(m[1] as string, 16);
    if (size === 0) this.state = "trailers";
    else {
      this.left = size;
      this.state = "data";
    }
  }
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  201: "Created",
  204: "No Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/** The reason phrase written for a status. */
export function reasonPhrase(status: number): string {
  return STATUS_TEXT[status] ?? "";
}

/** Appends `name: value` lines for each field (arrays as repeated lines); values must be safe. */
export function headerLines(headers: Record<string, string | number | string[] | undefined>): string {
  let s = "";
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) s += `${name}: ${x}\r\n`;
    else s += `${name}: ${v}\r\n`;
  }
  return s;
}

/**
 * Throws when a field about to be written would break the message (CR/LF injection), or would
 * be refused by weft's own parser (the same BAD_VALUE) were it read back.
 */
export function assertWritable(headers: Record<string, string | number | string[] | undefined>): void {
  // Runs on every request and response: no array or string is made for a value that is fine.
  for (const name in headers) {
    if (!TOKEN.test(name)) throw new Error(`invalid header name ${JSON.stringify(name)}`);
    const v = headers[name];
    if (v === undefined || typeof v === "number") continue;
    if (Array.isArray(v)) {
      for (const x of v) assertWritableValue(name, x);
    } else assertWritableValue(name, v);
  }
}

/** Throws when one field value about to be written under name would break the message. */
export function assertWritableValue(name: string, value: string | number): void {
  if (typeof value !== "number" && BAD_VALUE.test(value)) throw new Error(`invalid character in header ${name}`);
}

/** Throws when a method or target about to be written would break the request line. */
export function assertRequestLine(method: string, target: string): void {
  if (!TOKEN.test(method)) throw new Error(`invalid method ${JSON.stringify(method.slice(0, 40))}`);
  if (!TARGET.test(target)) throw new Error(`invalid request target ${JSON.stringify(target.slice(0, 80))}`);
}

/** One chunk of chunked coding around data. */
export function chunkFrame(data: Buffer): Buffer[] {
  return [Buffer.from(`${data.length.toString(16)}\r\n`, "latin1"), data, CRLF];
}

/** The CRLF that ends a chunk. */
export const CRLF = Buffer.from("\r\n", "latin1");
/** The last chunk with no trailers. */
export const LAST_CHUNK = Buffer.from("0\r\n\r\n", "latin1");
