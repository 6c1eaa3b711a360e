/**
 * Which local pods are captured and how they are guarded, from the mesh view: the agent's
 * desired redirect set. Pure apart from the two resolvers it is handed.
 */

import { errorMessage } from "../../common/errors.js";
import type { Workload } from "../../controller/api/model.js";
import type { InboundMode, PodRedirect } from "../redirect/types.js";
import type { MeshView } from "../state/view.js";

/** Guard mode for a workload: STRICT drops plaintext, PERMISSIVE passes it, DISABLE: off. */
export function inboundModeOf(view: MeshView, w: Workload): InboundMode {
  if (!w.enrolled) return "off";
  // The guard judges SYNs per pod, not per port, so the workload-wide mode decides.
  const { mode } = view.mtlsModeFor(w, 0);
  return mode === "STRICT" ? "strict" : mode === "PERMISSIVE" ? "permissive" : "off";
}

/** The desired set plus pods that could not be resolved (with why). */
export interface DesiredRedirects {
  pods: PodRedirect[];
  unresolved: { pod: string; error: string }[];
}

/**
 * Enrolled local pods with an IPv4 address become PodRedirects. Pods outside the mesh are left
 * out, so reconcile removes whatever entries they had: un-enrolling is just not being desired.
 */
export function desiredRedirects(
  view: MeshView,
  resolveCgroup: (w: Workload) => string | Error,
  hostInterface: (w: Workload) => string | Error,
): DesiredRedirects {
  const pods: PodRedirect[] = [];
  const unresolved: DesiredRedirects["unresolved"] = [];
  for (const w of view.localWorkloads()) {
    const ip = w.addresses.find((a) => a.includes(".") && !a.includes(":"));
    if (!ip || !w.enrolled) continue;
    const cg = resolveCgroup(w);
    const iface = hostInterface(w);
    if (cg instanceof Error || iface instanceof Error) {
      unresolved.push({ pod: `${w.namespace}/${w.name}`, error: errorMessage(cg instanceof Error ? cg : iface) });
      continue;
    }
    pods.push({
      uid: w.uid,
      namespace: w.namespace,
      name: w.name,
      cgroupPath: cg,
      ip,
      hostInterface: iface,
      capture: true,
      inbound: inboundModeOf(view, w),
    });
  }
  return { pods, unresolved };
}
