/**
 * Fault injection decisions (VirtualService fault → Envoy's fault filter), a pure function per
 * request: whether to delay it and whether to abort it.
 *
 * Invariants:
 * - Delay and abort are drawn independently, each with its own percentage (0–100, fractional
 *   allowed); 0 never fires and 100 always does.
 * - A gRPC abort answers HTTP 200 with the grpc-status (a trailers-only gRPC response, as Envoy
 *   sends); an HTTP abort answers its status. A name the table does not know aborts with
 *   UNKNOWN (2): the rule asked for a failure, so one is injected.
 */
import type { FaultInjection } from "../../../controller/api/model.js";
import { GRPC_STATUS, grpcStatusCode } from "./grpc-status.js";

/** What to do to one request. */
export interface FaultDecision {
  delayMs?: number;
  abort?: { status: number; grpcStatus?: number };
}

/** The decision for a route with no fault: shared, so a plain request allocates none. */
const NO_FAULT: FaultDecision = Object.freeze({});

function fires(percentage: number, random: () => number): boolean {
  return percentage > 0 && random() * 100 < percentage;
}

/** Decides, per request, whether to delay and/or abort (percentages 0–100, each drawn independently). */
export function decideFault(fault: FaultInjection | undefined, random: () => number = Math.random): FaultDecision {
  if (!fault) return NO_FAULT;
  const decision: FaultDecision = {};
  if (fault.delay && fires(fault.delay.percentage, random)) decision.delayMs = fault.delay.fixedDelayMs;
  const abort = fault.abort;
  if (abort && fires(abort.percentage, random)) {
    if (abort.httpStatus !== undefined) decision.abort = { status: abort.httpStatus };
    else if (abort.grpcStatus !== undefined)
      decision.abort = { status: 200, grpcStatus: grpcStatusCode(abort.grpcStatus) ?? (GRPC_STATUS.UNKNOWN as number) };
  }
  return decision;
}
