/**
 * weft's errors: a stable code (`WEFT_…`) on every failure weft reports, so logs, metrics, admin
 * responses, the CLI and the data path's refusals all name the same thing the same way. Codes are
 * an interface: add new ones, never rename or reuse one.
 */

/** Every code, with the one-line meaning `weft` prints and docs/CLI.md lists. */
export const ERROR_CODES = {
  WEFT_INTERNAL: "an unexpected failure inside weft (a bug: report it)",
  WEFT_INVALID_CONFIG: "a flag, setting or environment variable is invalid",
  WEFT_INVALID_INPUT: "input (YAML, a request, an argument) could not be understood",
  WEFT_NOT_FOUND: "the named object, pod or resource does not exist",
  WEFT_UNAVAILABLE: "a service weft needs (agent, controller, API server) could not be reached",
  WEFT_TIMEOUT: "an operation did not finish in time",
  WEFT_PERMISSION: "the operation needs privileges the process does not have",
  WEFT_KERNEL: "a kernel operation (BPF, cgroup, netns, socket) failed",
  WEFT_CERTIFICATE: "a certificate or signing request was refused or is invalid",
  WEFT_CONFLICT: "another process holds what this one needs (a lock, a port, a cluster name)",
  WEFT_UNAUTHENTICATED: "the caller presented no credential, or one weft does not accept",
  WEFT_MISSING_DEPENDENCY: "a library, tool or build output weft needs is not installed",
  // The data path's refusals: sent by the destination node in the `x-weft-error` header.
  WEFT_AUTHZ_DENIED: "an authorization policy denied the connection",
  WEFT_IDENTITY_MISMATCH: "the peer authenticated as an identity other than the destination's",
  WEFT_UNKNOWN_DESTINATION: "the destination address is no workload the node knows",
  WEFT_WRONG_NODE: "the destination workload runs on another node",
  WEFT_NOT_IN_MESH: "the destination workload is not enrolled in the mesh",
  WEFT_BAD_TUNNEL_REQUEST: "the HBONE request was malformed (method or :authority)",
  WEFT_UPSTREAM_UNREACHABLE: "the destination pod refused or did not answer the connection",
  WEFT_NO_ENDPOINTS: "the service has no ready endpoint",
  WEFT_NO_ROUTE: "the source or destination could not be resolved to a route",
  WEFT_TUNNEL_REFUSED: "the destination node refused the tunnel without saying why",
  WEFT_TUNNEL_CLOSED: "the tunnel closed before the destination answered (certificate refused?)",
  WEFT_SOURCE_NOT_IN_MESH: "the source is no enrolled pod of this node: the proxy opens nothing on its behalf",
  WEFT_NOT_CAPTURED: "the connection reached the outbound proxy without being captured (it dialled the proxy directly)",
} as const;

/** A stable error code. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** The response header that carries a data-path refusal's code to the client side. */
export const ERROR_HEADER = "x-weft-error";

/** True when the text is one of weft's codes (a header from a peer is untrusted input). */
export function isErrorCode(text: unknown): text is ErrorCode {
  return typeof text === "string" && Object.hasOwn(ERROR_CODES, text);
}

/** The base of weft's errors: a message for people, a code for programs. */
export class WeftError extends Error {
  override name = "WeftError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Bad flags or settings (the message lists every problem). */
export class ConfigError extends WeftError {
  override name = "ConfigError";
  constructor(message: string) {
    super("WEFT_INVALID_CONFIG", message);
  }
}

/** A failed kernel operation (the errno, when known, is in the message). */
export class KernelError extends WeftError {
  override name = "KernelError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("WEFT_KERNEL", message, options);
  }
}

/** The message of anything thrown (what `(e as Error).message` meant, without the lie). */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === "string") return e;
  try {
    return JSON.stringify(e) ?? String(e);
  } catch {
    return String(e);
  }
}

/** The stack (or the message) of anything thrown, for "this is a bug" logs. */
export function errorStack(e: unknown): string {
  return e instanceof Error && e.stack ? e.stack : errorMessage(e);
}

/** The code of anything thrown: its own, a system errno mapped, else the fallback (WEFT_INTERNAL). */
export function errorCode(e: unknown, fallback: ErrorCode = "WEFT_INTERNAL"): ErrorCode {
  if (e instanceof WeftError) return e.code;
  const errno = e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined;
  switch (errno) {
    case "ECONNREFUSED":
    case "ENOENT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "ECONNRESET":
      return errno === "ENOENT" ? "WEFT_NOT_FOUND" : "WEFT_UNAVAILABLE";
    case "ETIMEDOUT":
      return "WEFT_TIMEOUT";
    case "EACCES":
    case "EPERM":
      return "WEFT_PERMISSION";
    case "EADDRINUSE":
      return "WEFT_CONFLICT";
    default:
      return fallback;
  }
}

/** The code an HTTP error status means, for answers that carry no code of their own. */
export function codeForStatus(status: number): ErrorCode {
  if (status === 400 || status === 405 || status === 413) return "WEFT_INVALID_INPUT";
  if (status === 401) return "WEFT_UNAUTHENTICATED";
  if (status === 403) return "WEFT_PERMISSION";
  if (status === 404) return "WEFT_NOT_FOUND";
  if (status === 409) return "WEFT_CONFLICT";
  if (status === 503) return "WEFT_UNAVAILABLE";
  if (status === 504) return "WEFT_TIMEOUT";
  return "WEFT_INTERNAL";
}

/** Code and message together: the shape logs (`err`) and admin error bodies carry. */
export function errorInfo(e: unknown): { code: ErrorCode; message: string } {
  return { code: errorCode(e), message: errorMessage(e) };
}
