/**
 * Checks across routing objects, after each was translated on its own: a VirtualService that
 * sends traffic to a subset no DestinationRule for that host defines is refused (as a whole:
 * routing objects are not security, and the previous routing is better than a half-route).
 */
import type { DestinationPolicy, RouteDestination, RouteTable } from "../api/model.js";

/** A subset reference that no DestinationRule defines: where, and why. */
export interface SubsetProblem {
  path: string;
  message: string;
}

function subsetsByHost(policies: readonly DestinationPolicy[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const p of policies) {
    let names = out.get(p.host);
    if (!names) {
      names = new Set();
      out.set(p.host, names);
    }
    for (const s of p.subsets) names.add(s.name);
  }
  return out;
}

/** Every subset a route table names that no DestinationRule for the destination host defines. */
export function unknownSubsets(table: RouteTable, policies: readonly DestinationPolicy[]): SubsetProblem[] {
  const known = subsetsByHost(policies);
  const problems: SubsetProblem[] = [];
  const check = (d: RouteDestination, path: string) => {
    if (d.subset === undefined || known.get(d.host)?.has(d.subset)) return;
    const rules = known.has(d.host) ? "the DestinationRules for that host do not define it" : "no DestinationRule exists for that host";
    problems.push({ path, message: `subset '${d.subset}' of host ${d.host} is unknown: ${rules}` });
  };
  for (const [i, r] of table.http.entries()) {
    for (const [j, d] of r.destinations.entries()) check(d, `spec.http[${i}].route[${j}].destination.subset`);
    for (const [j, m] of r.mirrors.entries()) check(m.destination, `spec.http[${i}].mirror${r.mirrors.length > 1 ? `s[${j}]` : ""}.subset`);
  }
  for (const [i, r] of table.tcp.entries()) {
    for (const [j, d] of r.destinations.entries()) check(d, `spec.tcp[${i}].route[${j}].destination.subset`);
  }
  return problems;
}
