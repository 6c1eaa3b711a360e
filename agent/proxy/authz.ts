/**
 * L4 authorization with Istio's AuthorizationPolicy semantics, as ztunnel applies them: a DENY
 * match denies; otherwise, with no ALLOW policy everything is allowed, with some, one must match.
 * Pure: the caller gathers the facts about the connection.
 */
import type { AuthorizationPolicy, AuthzCondition, AuthzOperation, AuthzRule, AuthzSource } from "../../controller/api/model.js";
import { parseSpiffeId } from "../../controller/api/model.js";
import { ipInCidr } from "./ip-match.js";

/** What is known about a connection when it is authorized at L4. */
export interface ConnectionFacts {
  /** Authenticated peer SPIFFE id (from mTLS), or undefined for plaintext. */
  sourceIdentity?: string;
  sourceIp: string;
  destinationIp: string;
  destinationPort: number;
}

/** An authorization outcome, naming the policy that decided it. */
export type AuthzDecision = { allowed: true; policy?: string; reason: string } | { allowed: false; policy?: string; reason: string };

/**
 * Whether a rule's HTTP-only parts count as matching. At L4 they cannot be checked: ALLOW rules
 * with them never match (fail closed), DENY rules treat them as matching (fail closed too).
 */
type L7Mode = "never" | "always";

/** Evaluates the policies that apply to the destination workload. */
export function authorize(policies: readonly AuthorizationPolicy[], facts: ConnectionFacts): AuthzDecision {
  for (const p of policies) {
    if (p.action === "DENY" && p.rules.some((r) => ruleMatches(r, facts, "always"))) {
      return { allowed: false, policy: p.key, reason: `denied by DENY policy ${p.key}` };
    }
  }
  const allows = policies.filter((p) => p.action === "ALLOW");
  if (allows.length === 0) return { allowed: true, reason: "no ALLOW policy applies" };
  for (const p of allows) {
    if (p.rules.some((r) => ruleMatches(r, facts, "never"))) return { allowed: true, policy: p.key, reason: `allowed by ${p.key}` };
  }
  return {
    allowed: false,
    policy: allows.map((p) => p.key).join(","),
    reason: `no rule of ALLOW policies ${allows.map((p) => p.key).join(", ")} matches`,
  };
}

/** True when every part of a rule matches (absent parts match anything). */
export function ruleMatches(rule: AuthzRule, facts: ConnectionFacts, l7: L7Mode): boolean {
  if (rule.from.length > 0 && !rule.from.some((s) => sourceMatches(s, facts))) return false;
  if (rule.to.length > 0 && !rule.to.some((o) => operationMatches(o, facts, l7))) return false;
  return rule.when.every((c) => conditionMatches(c, facts, l7));
}

/** Istio principals drop the "spiffe://" scheme: "cluster.local/ns/a/sa/b". */
function principalOf(identity: string | undefined): string | undefined {
  return identity?.startsWith("spiffe://") ? identity.slice("spiffe://".length) : identity;
}

function namespaceOf(identity: string | undefined): string | undefined {
  return identity ? parseSpiffeId(identity)?.namespace : undefined;
}

/** Istio string match: exact, "*", "prefix*" or "*suffix". */
export function stringMatch(pattern: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (pattern === "*") return true;
  if (pattern.endsWith("*")) return value.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith("*")) return value.endsWith(pattern.slice(1));
  return pattern === value;
}

function anyMatch(patterns: readonly string[] | undefined, value: string | undefined): boolean {
  return patterns?.some((p) => stringMatch(p, value)) ?? false;
}

function sourceMatches(s: AuthzSource, f: ConnectionFacts): boolean {
  const principal = principalOf(f.sourceIdentity);
  const ns = namespaceOf(f.sourceIdentity);
  if (s.principals && !anyMatch(s.principals, principal)) return false;
  if (s.notPrincipals && anyMatch(s.notPrincipals, principal)) return false;
  if (s.namespaces && !anyMatch(s.namespaces, ns)) return false;
  if (s.notNamespaces && anyMatch(s.notNamespaces, ns)) return false;
  if (s.ipBlocks && !s.ipBlocks.some((c) => ipInCidr(f.sourceIp, c))) return false;
  if (s.notIpBlocks?.some((c) => ipInCidr(f.sourceIp, c))) return false;
  return true;
}

function operationMatches(o: AuthzOperation, f: ConnectionFacts, l7: L7Mode): boolean {
  if (o.ports && !o.ports.includes(f.destinationPort)) return false;
  if (o.notPorts?.includes(f.destinationPort)) return false;
  const hasL7 = [o.hosts, o.notHosts, o.methods, o.notMethods, o.paths, o.notPaths].some((x) => x !== undefined);
  return hasL7 ? l7 === "always" : true;
}

function conditionMatches(c: AuthzCondition, f: ConnectionFacts, l7: L7Mode): boolean {
  let actual: string | undefined;
  let isIp = false;
  switch (c.key) {
    case "source.ip":
    case "remote.ip":
      actual = f.sourceIp;
      isIp = true;
      break;
    case "source.namespace":
      actual = namespaceOf(f.sourceIdentity);
      break;
    case "source.principal":
      actual = principalOf(f.sourceIdentity);
      break;
    case "destination.ip":
      actual = f.destinationIp;
      isIp = true;
      break;
    case "destination.port":
      actual = String(f.destinationPort);
      break;
    default:
      // request.*, connection.sni, experimental.*: not knowable at L4.
      return l7 === "always";
  }
  const match = (v: string) => (isIp ? ipInCidr(actual as string, v) : stringMatch(v, actual));
  if (c.values && !c.values.some(match)) return false;
  if (c.notValues?.some(match)) return false;
  return true;
}
