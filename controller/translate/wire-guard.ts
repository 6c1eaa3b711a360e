/**
 * The agents' own wire validation, run at the controller on each translated pod and service: an
 * object that agents would refuse (a wrongly typed field that slipped through translation) is
 * reported and left out here, instead of making every later push of its type fail.
 */
import { toWire } from "../api/wire-encode.js";
import { fromWire } from "../api/wire-validate.js";

/** Why agents would refuse this value, or undefined when they accept it. */
export function wireProblem(kind: "Workload" | "Service", value: unknown): string | undefined {
  try {
    fromWire(kind, toWire(kind, value));
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
