/** gRPC status codes by their canonical names (as Istio's fault abort and Envoy's retry_on spell them). */

/** The canonical gRPC status codes (grpc/doc/statuscodes.md); stable since gRPC 1.0. */
export const GRPC_STATUS: Readonly<Record<string, number>> = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
});

/** Code of a status written as a name ("UNAVAILABLE", any case) or a number ("14"); undefined when neither. */
export function grpcStatusCode(value: string): number | undefined {
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) {
    // Applications may define codes beyond the canonical 17; any non-negative int32 is valid on the wire.
    const n = Number(trimmed);
    return n <= 0x7fffffff ? n : undefined;
  }
  const name = trimmed.toUpperCase();
  return Object.hasOwn(GRPC_STATUS, name) ? GRPC_STATUS[name] : undefined;
}
