/**
 * Shapes of AuthorizationPolicy parts that read as "match anything" when they were meant to
 * restrict: empty lists, empty sources and operations, empty values. Istio's validation rejects
 * them; weft reports them as invalid (an InvalidField), so the translator's fail-closed handling
 * applies instead of the permissive reading.
 */
import { type Fields, InvalidField } from "./fields.js";

/**
 * A list of match values (principals, paths, condition values, …). Present-but-empty is invalid:
 * `principals: []` reads as "no principal" yet would match every one, as if absent.
 */
export function valueList(f: Fields, key: string): string[] {
  const values = f.strList(key);
  if (f.has(key) && values.length === 0)
    throw new InvalidField(f.at(key), "is an empty list, which would match anything; list at least one value or remove the field");
  return values;
}

/** valueList whose values must not be empty strings either (Istio's CheckEmptyValues). */
export function nonEmptyValues(f: Fields, key: string): string[] {
  const values = valueList(f, key);
  const i = values.indexOf("");
  if (i >= 0) throw new InvalidField(`${f.at(key)}[${i}]`, "is an empty string");
  return values;
}

/** rules[].from / rules[].to: absent means any; present but empty is invalid (Istio). */
export function partList(rule: Fields, key: "from" | "to"): Fields[] {
  const parts = rule.list(key);
  if (rule.has(key) && parts.length === 0)
    throw new InvalidField(
      rule.at(key),
      `is an empty list, which would match anything; remove it to match any ${key === "from" ? "source" : "operation"}`,
    );
  return parts;
}

/**
 * from[].source / to[].operation: required, and must set at least one field (Istio), since an
 * empty one matches every request. Keys weft does not support still count as set.
 */
export function requiredPart(item: Fields, key: "source" | "operation"): Fields {
  const part = item.obj(key);
  if (!part) throw new InvalidField(item.at(key), "is required");
  if (Object.values(part.value).every((v) => v === null || v === undefined))
    throw new InvalidField(part.path, "is empty, which would match every request; set at least one field");
  return part;
}

/**
 * Istio compares :method exactly, and weft answers a lower-case method 400 before authorization,
 * so a method written with lower-case letters never matches: a note for the user, not rewritten.
 */
export function warnLowerCaseMethods(f: Fields, key: string, methods: readonly string[], warn: (path: string, note: string) => void): void {
  for (const [i, m] of methods.entries())
    if (/[a-z]/.test(m))
      warn(
        `${f.at(key)}[${i}]`,
        `'${m}' has lower-case letters: HTTP methods are case-sensitive and weft refuses requests with lower-case methods (400), so this value never matches`,
      );
}

/**
 * Whether spec.targetRef(s) binds the policy to a gateway or waypoint. Istio counts targetRefs
 * only when it lists something, so `targetRefs: []` is absent (a selector or namespace policy).
 */
export function boundByTargetRef(spec: Fields): boolean {
  spec.accept("targetRefs");
  const refs = spec.value.targetRefs;
  if (refs !== undefined && refs !== null && !Array.isArray(refs))
    throw new InvalidField(spec.at("targetRefs"), "expected a list of references");
  return spec.has("targetRef") || (Array.isArray(refs) && refs.length > 0);
}
