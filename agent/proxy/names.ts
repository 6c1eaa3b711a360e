/**
 * Strings derived from a workload, made once per workload object (snapshots are immutable, so a
 * workload's strings never change) instead of once per connection, which idle tunnels would hold.
 */
import type { Workload } from "../../controller/api/model.js";

const refs = new WeakMap<Workload, string>();
const baggages = new WeakMap<Workload, string>();

/** "<namespace>/<name>" */
export function workloadRef(w: Workload): string {
  let r = refs.get(w);
  if (r === undefined) {
    r = `${w.namespace}/${w.name}`;
    refs.set(w, r);
  }
  return r;
}

/** W3C baggage with the source workload's names (what ztunnel sends), for the destination's telemetry. */
export function baggageOf(w: Workload): string {
  let b = baggages.get(w);
  if (b === undefined) {
    const enc = encodeURIComponent;
    b = [
      `k8s.namespace.name=${enc(w.namespace)}`,
      `k8s.pod.name=${enc(w.name)}`,
      `k8s.workload.name=${enc(w.workloadName)}`,
      `service.name=${enc(w.canonicalName)}`,
      `service.version=${enc(w.canonicalRevision)}`,
    ].join(",");
    baggages.set(w, b);
  }
  return b;
}
