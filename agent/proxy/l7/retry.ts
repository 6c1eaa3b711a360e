/**
 * Retry decisions (VirtualService retries → Envoy's retry policy), pure functions: whether one
 * attempt's outcome may be retried under a policy, and how long to back off before the retry.
 *
 * Conditions follow Envoy's retry_on (x-envoy-retry-on and x-envoy-retry-grpc-on):
 * - "5xx": any 5xx response, or no response at all (connect failure, reset, refused stream,
 *   per-try timeout).
 * - "gateway-error": 502, 503, 504, or no response at all (Envoy answers those itself with 503/504).
 * - "reset": no response at all (the upstream reset, refused, was unreachable or timed out).
 * - "connect-failure", "refused-stream": only that failure.
 * - "retriable-4xx": 409.
 * - "retriable-status-codes" and numeric codes: the codes listed in retryOn. Istio turns on
 *   retriable-status-codes whenever retryOn lists a number, so a listed code is retried either way.
 * - gRPC "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable": the
 *   response's grpc-status is that code.
 * Others Envoy knows but weft cannot judge from an outcome ("envoy-ratelimited",
 * "retriable-headers", "http3-post-connect-failure") never match; unknown words are ignored.
 */
import type { RetryPolicy } from "../../../controller/api/model.js";
import { GRPC_STATUS } from "./grpc-status.js";
import type { UpstreamOutcome } from "./outcome.js";

/** Istio's retry policy for a route that sets none (2 retries, the conditions Istio's networking/core sets). */
export const ISTIO_DEFAULT_RETRY: RetryPolicy = Object.freeze({
  attempts: 2,
  retryOn: Object.freeze(["connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes", "503"]) as string[],
});

const GRPC_ON: Readonly<Record<string, number>> = {
  cancelled: GRPC_STATUS.CANCELLED as number,
  "deadline-exceeded": GRPC_STATUS.DEADLINE_EXCEEDED as number,
  internal: GRPC_STATUS.INTERNAL as number,
  "resource-exhausted": GRPC_STATUS.RESOURCE_EXHAUSTED as number,
  unavailable: GRPC_STATUS.UNAVAILABLE as number,
};

/** One retryOn word, read once: a condition name, an HTTP status, or a gRPC status. */
type Condition = { kind: "named"; on: string } | { kind: "status"; status: number } | { kind: "grpc"; code: number };

function condition(word: string): Condition {
  const on = word.trim().toLowerCase();
  if (/^\d{3}$/.test(on)) return { kind: "status", status: Number(on) };
  const code = Object.hasOwn(GRPC_ON, on) ? GRPC_ON[on] : undefined;
  return code !== undefined ? { kind: "grpc", code } : { kind: "named", on };
}

function matches(c: Condition, outcome: UpstreamOutcome): boolean {
  if (outcome.kind !== "response") {
    if (c.kind !== "named") return false;
    switch (c.on) {
      case "5xx":
      case "gateway-error":
      case "reset":
        return true;
      case "connect-failure":
        return outcome.kind === "connect-failure";
      case "refused-stream":
        return outcome.kind === "refused-stream";
      default:
        return false;
    }
  }
  const { status, grpcStatus } = outcome;
  if (c.kind === "status") return status === c.status;
  if (c.kind === "grpc") return grpcStatus === c.code;
  switch (c.on) {
    case "5xx":
      return status >= 500 && status <= 599;
    case "gateway-error":
      return status === 502 || status === 503 || status === 504;
    case "retriable-4xx":
      return status === 409;
    default:
      return false;
  }
}

// Policies are immutable snapshot objects: their words are read once, not per request.
const compiled = new WeakMap<readonly string[], Condition[]>();

/** True when the outcome is retriable under the policy (Envoy's retry_on semantics, see the header). */
export function retriable(policy: RetryPolicy, outcome: UpstreamOutcome): boolean {
  if (policy.attempts <= 0) return false;
  let conditions = compiled.get(policy.retryOn);
  if (!conditions) {
    conditions = policy.retryOn.map(condition);
    compiled.set(policy.retryOn, conditions);
  }
  for (const c of conditions) if (matches(c, outcome)) return true;
  return false;
}

/** Envoy's default retry back-off base interval. */
export const DEFAULT_BACKOFF_BASE_MS = 25;
/** Envoy's default maximum back-off: ten times the base. */
export const DEFAULT_BACKOFF_MAX_MS = 250;

/**
 * Fully jittered exponential back-off before retry n (1-based), as Envoy computes it: uniform in
 * [0, min(max, (2^n − 1) · base)), so with the defaults 0–25 ms, 0–75 ms, 0–175 ms, then 0–250 ms.
 */
export function backoffMs(
  retry: number,
  random: () => number = Math.random,
  baseMs = DEFAULT_BACKOFF_BASE_MS,
  maxMs = DEFAULT_BACKOFF_MAX_MS,
): number {
  const n = Math.max(1, Math.min(31, Math.floor(retry)));
  const ceiling = Math.min(maxMs, (2 ** n - 1) * baseMs);
  return Math.floor(random() * ceiling);
}
