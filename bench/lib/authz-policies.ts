/**
 * The AuthorizationPolicies the `weft-l7-authz` variant puts on its server pod: a realistic mix of
 * HTTP-attribute rules (methods, paths, headers, principals), so the destination's proxy checks
 * every request at L7. Half are DENY rules no bench request matches (each is evaluated, none
 * fires); the rest are ALLOW rules of which only the last (in name order, the order they are
 * evaluated) admits the bench client: every request walks the whole list, the worst case.
 */
import { stringify } from "yaml";

/** Requests the bench sends and who sends them. */
export interface AuthzBenchTarget {
  /** Namespace of the client and server pods (the policies go there too). */
  namespace: string;
  /** Labels of the server pod the policies select. */
  selector: Record<string, string>;
  /** Paths the bench client GETs through the path. */
  allowPaths: string[];
}

/** The policy names (zero-padded, so name order is index order). */
export function authzPolicyName(i: number, count: number): string {
  return `bench-authz-${String(i).padStart(String(Math.max(0, count - 1)).length, "0")}`;
}

/** `count` AuthorizationPolicies as one multi-document YAML text. */
export function authzPoliciesYaml(count: number, t: AuthzBenchTarget): string {
  if (!Number.isInteger(count) || count < 1 || count > 10_000) throw new Error(`policy count ${count}: expected 1 to 10000`);
  const denies = Math.floor(count / 2);
  const docs: object[] = [];
  for (let i = 0; i < count; i++) {
    const metadata = { name: authzPolicyName(i, count), namespace: t.namespace };
    const selector = { matchLabels: t.selector };
    let spec: object;
    if (i < denies) {
      spec = {
        selector,
        action: "DENY",
        rules: [
          {
            to: [{ operation: { methods: ["POST", "DELETE"], paths: [`/deny-${i}/*`] } }],
            when: [{ key: "request.headers[x-bench-deny]", values: [String(i)] }],
          },
        ],
      };
    } else if (i < count - 1) {
      spec = {
        selector,
        action: "ALLOW",
        rules: [
          {
            from: [{ source: { principals: [`cluster.local/ns/bench-other-${i}/sa/client`] } }],
            to: [{ operation: { methods: ["GET"], paths: [`/allow-${i}`, `/allow-${i}/*`] } }],
          },
        ],
      };
    } else {
      spec = {
        selector,
        action: "ALLOW",
        rules: [
          { from: [{ source: { namespaces: [t.namespace] } }], to: [{ operation: { methods: ["GET", "HEAD"], paths: t.allowPaths } }] },
        ],
      };
    }
    docs.push({ apiVersion: "security.istio.io/v1", kind: "AuthorizationPolicy", metadata, spec });
  }
  return docs.map((d) => stringify(d)).join("---\n");
}
