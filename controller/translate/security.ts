/**
 * security.istio.io AuthorizationPolicy and PeerAuthentication → the model, fail-closed: input
 * that cannot be understood never widens access. What weft cannot enforce is handled as Istio's
 * node proxy does: an ALLOW/AUDIT rule that uses an unsupported field is dropped (it can never
 * match), while a DENY rule loses only that field (so it matches, and denies, more); a warning
 * says so. What is invalid (typos, unknown keys, bad CIDRs or ports, wrong types) keeps the
 * policy in force in a stricter form (see translateAuthorizationPolicy) and is reported as an
 * error with its field path, every one of them, not just the first.
 */

import { isIP } from "node:net";
import { isPathTemplate, pathTemplate } from "../../common/path-template.js";
import type { KubeObject } from "../api/kube-types.js";
import type {
  AuthorizationPolicy,
  AuthzCondition,
  AuthzOperation,
  AuthzRule,
  AuthzSource,
  MtlsMode,
  PeerAuthentication,
  PolicyScope,
} from "../api/model.js";
import { boundByTargetRef, nonEmptyValues, partList, requiredPart, valueList, warnLowerCaseMethods } from "./authz-shape.js";
import { Fields, InvalidField } from "./fields.js";
import { type Diagnostics, refOf, type TranslateOptions } from "./types.js";

const MTLS_MODES: readonly MtlsMode[] = ["STRICT", "PERMISSIVE", "DISABLE", "UNSET"];
const SOURCE_UNSUPPORTED = ["remoteIpBlocks", "notRemoteIpBlocks"];
const CONDITION_KEYS =
  /^(source\.ip|source\.namespace|source\.principal|destination\.ip|destination\.port|connection\.sni|request\.headers\[[^\]]+\]|request\.auth\.(principal|audiences|presenter)|request\.auth\.claims(\[[^\]]+\])+)$/;
// remote.ip is the X-Forwarded-For-aware client address, which weft does not derive (as with
// remoteIpBlocks); reading it as the peer address would let a DENY on it miss proxied clients.
const CONDITION_UNSUPPORTED = /^(request\.regex\.headers|experimental\.|remote\.ip$)/;

function checkCidr(value: string, path: string): void {
  const [addr, prefix, extra] = value.split("/");
  const fam = isIP(addr ?? "");
  const max = fam === 4 ? 32 : 128;
  if (fam === 0 || extra !== undefined || (prefix !== undefined && (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max))) {
    throw new InvalidField(path, `'${value}' is not an IP address or CIDR`);
  }
}

function checkPort(value: string, path: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) < 1 || Number(value) > 65535)
    throw new InvalidField(path, `'${value}' is not a port number`);
  return Number(value);
}

/** spec.selector → scope. The root namespace's selector applies in every namespace (Istio). */
function scopeOf(spec: Fields, namespace: string, opts: TranslateOptions): PolicyScope {
  const sel = spec.obj("selector");
  const labels = sel?.map("matchLabels");
  sel?.finish();
  const hasSelector = labels !== undefined && Object.keys(labels).length > 0;
  if (namespace === opts.rootNamespace) {
    return hasSelector ? { kind: "mesh", selector: labels } : { kind: "mesh" };
  }
  return hasSelector ? { kind: "workload", selector: labels } : { kind: "namespace" };
}

function rootHint(obj: KubeObject, hasSelector: boolean, opts: TranslateOptions, diags: Diagnostics): void {
  if (obj.metadata.namespace === "istio-system" && opts.rootNamespace !== "istio-system" && !hasSelector) {
    diags.warn(
      refOf(obj),
      `istio-system is not the root namespace here (it is ${opts.rootNamespace}): this policy applies to istio-system only; run the controller with --root-namespace istio-system to make it mesh-wide`,
    );
  }
}

type Unsupported = (what: string) => void;

/** Problems found in one part of an object (every one is reported, not just the first). */
class Problems {
  readonly list: string[] = [];

  /** A sink for Fields: unknown keys become problems. */
  readonly sink = (path: string, note: string): void => {
    this.list.push(`${path}: ${note}`);
  };

  /** Runs fn; an InvalidField it throws is recorded and fallback returned. */
  run<T>(fn: () => T, fallback: T): T {
    try {
      return fn();
    } catch (e) {
      if (!(e instanceof InvalidField)) throw e;
      this.list.push(e.message);
      return fallback;
    }
  }
}

function source(f: Fields, unsupported: Unsupported, opts: TranslateOptions, p: Problems): AuthzSource {
  const s: AuthzSource = {};
  const list = (key: string) => p.run(() => nonEmptyValues(f, key), []);
  const principals = (key: string) => list(key).map((v) => v.replace(/^spiffe:\/\//, ""));
  const sa = (key: string) =>
    list(key).flatMap((v, i) => {
      const [ns, name, extra] = v.split("/");
      if (ns && name && extra === undefined) return [`${opts.trustDomain}/ns/${ns}/sa/${name}`];
      p.list.push(`${f.at(key)}[${i}]: '${v}' is not '<namespace>/<service account>'`);
      return [];
    });
  // Istio refuses serviceAccounts next to principals or namespaces; read together as "either"
  // they would let in callers each list alone keeps out.
  const withSa = ["serviceAccounts", "notServiceAccounts"].filter((k) => f.has(k));
  const withId = ["principals", "notPrincipals", "namespaces", "notNamespaces"].filter((k) => f.has(k));
  if (withSa.length > 0 && withId.length > 0)
    p.list.push(`${f.at(withSa[0] as string)}: cannot be set with ${withId.join(", ")} (Istio refuses the combination)`);
  const pr = [...principals("principals"), ...sa("serviceAccounts")];
  const np = [...principals("notPrincipals"), ...sa("notServiceAccounts")];
  if (pr.length) s.principals = pr;
  if (np.length) s.notPrincipals = np;
  for (const key of ["namespaces", "notNamespaces", "requestPrincipals", "notRequestPrincipals"] as const) {
    const v = list(key);
    if (v.length) s[key] = v;
  }
  for (const key of ["ipBlocks", "notIpBlocks"] as const) {
    const v = list(key);
    for (const [i, c] of v.entries()) p.run(() => checkCidr(c, `${f.at(key)}[${i}]`), undefined);
    if (v.length) s[key] = v;
  }
  for (const key of SOURCE_UNSUPPORTED) if (f.has(key)) unsupported(f.at(key));
  f.accept(...SOURCE_UNSUPPORTED);
  f.finish();
  return s;
}

// Paths (with any {*}/{**} templates) and methods go to the agent exactly as written: Istio
// compares methods case-sensitively, so upper-casing "get" would make it match GET.
function operation(f: Fields, p: Problems, warn: (path: string, note: string) => void): AuthzOperation {
  const o: AuthzOperation = {};
  for (const key of ["ports", "notPorts"] as const) {
    const v = p.run(() => valueList(f, key), []).map((x, i) => p.run(() => checkPort(x, `${f.at(key)}[${i}]`), 0));
    if (v.length) o[key] = v;
  }
  for (const key of ["hosts", "notHosts", "paths", "notPaths", "methods", "notMethods"] as const) {
    const v = p.run(() => nonEmptyValues(f, key), []);
    if (v.length) o[key] = v;
  }
  for (const key of ["methods", "notMethods"] as const) warnLowerCaseMethods(f, key, o[key] ?? [], warn);
  for (const key of ["paths", "notPaths"] as const)
    for (const [i, v] of (o[key] ?? []).entries())
      if (isPathTemplate(v) && pathTemplate(v) === null)
        p.list.push(`${f.at(key)}[${i}]: '${v}' is not a valid path template ({*} and {**} as whole segments, {**} last of them)`);
  f.finish();
  return o;
}

function condition(f: Fields, unsupported: Unsupported, p: Problems): AuthzCondition | null {
  const key = p.run(() => f.reqStr("key"), "");
  const values = p.run(() => valueList(f, "values"), []);
  const notValues = p.run(() => valueList(f, "notValues"), []);
  f.finish();
  if (key === "") return null;
  if (CONDITION_UNSUPPORTED.test(key)) {
    unsupported(`${f.at("key")} '${key}'`);
    return null;
  }
  if (!CONDITION_KEYS.test(key)) {
    p.list.push(`${f.at("key")}: '${key}' is not a condition key Istio defines`);
    return null;
  }
  if (!f.has("values") && !f.has("notValues")) p.list.push(`${f.path}: a condition needs values or notValues`);
  const c: AuthzCondition = { key };
  if (values.length) c.values = conditionValues(key, values, f.at("values"), p);
  if (notValues.length) c.notValues = conditionValues(key, notValues, f.at("notValues"), p);
  return c;
}

/**
 * Checks a condition's addresses and ports. A port is kept as its number ("080" is 80, as Istio
 * parses it): the agent compares the text, and "080" would never equal a connection's "80".
 */
function conditionValues(key: string, values: string[], path: string, p: Problems): string[] {
  return values.map((v, i) => {
    if (key.endsWith(".ip")) p.run(() => checkCidr(v, `${path}[${i}]`), undefined);
    if (key === "destination.port") return String(p.run(() => checkPort(v, `${path}[${i}]`), 0));
    return v;
  });
}

/** A DENY rule that matches every request: what a DENY that cannot be understood becomes. */
const MATCH_ALL: AuthzRule = { from: [], to: [], when: [] };

function rule(
  f: Fields,
  action: string,
  opts: TranslateOptions,
  warn: (path: string, note: string) => void,
  problems: Problems,
): AuthzRule | null {
  const unsupportedFields: string[] = [];
  const unsupported: Unsupported = (what) => unsupportedFields.push(what);
  const from = problems
    .run(() => partList(f, "from"), [])
    .map((x) => {
      const src = problems.run(() => requiredPart(x, "source"), undefined);
      x.finish();
      return src ? source(src, unsupported, opts, problems) : {};
    });
  const to = problems
    .run(() => partList(f, "to"), [])
    .map((x) => {
      const op = problems.run(() => requiredPart(x, "operation"), undefined);
      x.finish();
      return op ? operation(op, problems, warn) : {};
    });
  const when = problems
    .run(() => f.list("when"), [])
    .map((x) => condition(x, unsupported, problems))
    .filter((c): c is AuthzCondition => c !== null);
  f.finish();
  if (problems.list.length > 0) return null;
  if (unsupportedFields.length === 0) return { from, to, when };
  if (action === "DENY") {
    warn(
      f.path,
      `uses ${unsupportedFields.join(", ")}, which weft cannot check: that part is dropped, so this DENY rule denies more (fail closed)`,
    );
    return { from, to, when };
  }
  warn(
    f.path,
    `uses ${unsupportedFields.join(", ")}, which weft cannot check: this ${action} rule is dropped and never matches (fail closed)`,
  );
  return null;
}

type Action = "ALLOW" | "DENY" | "AUDIT";

/** The broadest scope a policy in this namespace can have: where an unreadable selector leaves it. */
function broadestScope(namespace: string, opts: TranslateOptions): PolicyScope {
  return namespace === opts.rootNamespace ? { kind: "mesh" } : { kind: "namespace" };
}

/** The policy's scope; the broadest one when spec.selector cannot be fully understood. */
function readScope(spec: Fields | undefined, namespace: string, opts: TranslateOptions, p: Problems): PolicyScope {
  if (!spec) return broadestScope(namespace, opts);
  const before = p.list.length;
  const scope = p.run(() => scopeOf(spec, namespace, opts), undefined);
  const selectorOk = p.list.slice(before).every((e) => !e.startsWith("spec.selector"));
  return scope && selectorOk ? scope : broadestScope(namespace, opts);
}

/**
 * Translates one AuthorizationPolicy, failing closed: an invalid policy is not dropped (that
 * would allow what it was written to stop) but kept in force in a form that never widens access.
 * An invalid ALLOW allows nothing, so its scope is default-deny for whatever no other ALLOW
 * allows; an invalid DENY, or a policy whose action cannot be read, denies its whole scope. A
 * rule that cannot be understood is dropped from an ALLOW (it matches nothing) and turned into a
 * match-all rule in a DENY (a DENY rule that cannot be read must deny). The problems travel in
 * `errors` and each is reported with its field path. null only for policies weft does not apply
 * to workloads at all (targetRef).
 */
export function translateAuthorizationPolicy(obj: KubeObject, opts: TranslateOptions, diags: Diagnostics): AuthorizationPolicy | null {
  const ref = refOf(obj);
  const warn = (path: string, note: string) => diags.warn(ref, `${path} ${note}`);
  const namespace = obj.metadata.namespace ?? "default";
  const top = new Problems();
  const spec = top.run(() => Fields.of(obj.spec ?? {}, "spec", top.sink, true), undefined);
  if (spec && top.run(() => boundByTargetRef(spec), false)) {
    diags.warn(ref, "spec.targetRef(s) binds the policy to a gateway or waypoint, which weft does not have: the policy is not applied");
    return null;
  }
  const rawAction = spec ? top.run(() => spec.str("action"), null) : null;
  let action: Action | undefined;
  const custom = rawAction?.toUpperCase() === "CUSTOM";
  if (rawAction === undefined) action = "ALLOW";
  else if (custom) action = "DENY";
  else if (rawAction !== null) {
    const a = rawAction.toUpperCase();
    if (a === "ALLOW" || a === "DENY" || a === "AUDIT") action = a;
    else top.list.push(`spec.action: '${rawAction}' is not ALLOW, DENY, AUDIT or CUSTOM`);
  }
  if (custom && spec) readCustom(spec, top, warn);
  else if (spec?.has("provider")) {
    spec.accept("provider");
    top.list.push("spec.provider: is only valid with action CUSTOM");
  }
  const scope = readScope(spec, namespace, opts, top);
  if (spec) rootHint(obj, scope.selector !== undefined, opts, diags);
  const ruleProblems: string[] = [];
  const rules: AuthzRule[] = [];
  let ruleFields: Fields[] = [];
  if (spec) ruleFields = top.run(() => spec.list("rules"), []);
  spec?.finish();
  // A misspelt action key (acton: DENY) leaves the action at its ALLOW default: unknown.
  if (rawAction === undefined && top.list.some((p) => /^spec\.[^.[]+: unknown field/.test(p))) action = undefined;
  for (const rf of ruleFields) {
    const problems = new Problems();
    const r = rule(rf.withSink(problems.sink), action ?? "DENY", opts, warn, problems);
    if (problems.list.length > 0) {
      ruleProblems.push(...problems.list);
      if (action === "DENY") rules.push(MATCH_ALL);
    } else if (r) rules.push(r);
  }
  const key = `${namespace}/${obj.metadata.name}`;
  const base = { key, name: obj.metadata.name, namespace, scope, ...dryRunOf(obj, diags) };
  if (top.list.length > 0 || action === undefined) {
    const denyAll = action === undefined || action === "DENY";
    const effect = denyAll
      ? "the policy denies every request in its scope (fail closed)"
      : action === "ALLOW"
        ? "the policy stays in force and allows nothing, so its scope denies what no other ALLOW policy allows (fail closed)"
        : "the AUDIT policy matches nothing";
    const errors = [...top.list, ...ruleProblems];
    for (const e of errors) diags.error(ref, `invalid: ${e}; ${effect}`);
    return { ...base, action: denyAll ? "DENY" : (action as Action), rules: denyAll ? [MATCH_ALL] : [], errors };
  }
  if (ruleProblems.length > 0) {
    const effect =
      action === "DENY"
        ? "the rule is replaced by one that matches every request, so the policy denies its whole scope (fail closed)"
        : `the rule is dropped and never matches${action === "ALLOW" ? " (fail closed)" : ""}`;
    for (const e of ruleProblems) diags.error(ref, `invalid: ${e}; ${effect}`);
    return { ...base, action, rules: dedupeMatchAll(rules), errors: ruleProblems };
  }
  return { ...base, action, rules };
}

/**
 * CUSTOM hands the requests its rules match to an external authorizer, which weft does not have:
 * the policy becomes a DENY of exactly those requests, the answer an authorizer that cannot be
 * reached gives. No provider is an error (Istio then denies every request in the scope).
 */
function readCustom(spec: Fields, p: Problems, warn: (path: string, note: string) => void): void {
  const provider = p.run(() => spec.obj("provider"), undefined);
  const name = provider ? p.run(() => provider.str("name"), undefined) : undefined;
  provider?.finish();
  if (!name && (provider || !spec.has("provider"))) p.list.push("spec.provider.name: is required with action CUSTOM");
  warn(
    "spec.action",
    `CUSTOM (external authorization${name ? ` by provider '${name}'` : ""}) is not supported, weft has no ext_authz: the requests this policy's rules match are denied (fail closed)`,
  );
}

/**
 * The `istio.io/dry-run` annotation: "true" evaluates the policy without enforcing it. Any other
 * value than "true"/"false" is reported and the policy is enforced (a typo must not switch a
 * DENY off).
 */
function dryRunOf(obj: KubeObject, diags: Diagnostics): { dryRun?: true } {
  const v = obj.metadata.annotations?.["istio.io/dry-run"];
  if (v === undefined || v === "false") return {};
  if (v === "true") return { dryRun: true };
  diags.error(refOf(obj), `invalid: metadata.annotations.istio.io/dry-run: '${v}' is not "true" or "false"; the policy is enforced`);
  return {};
}

/** One match-all rule is enough: several say nothing more. */
function dedupeMatchAll(rules: AuthzRule[]): AuthzRule[] {
  return rules.includes(MATCH_ALL) ? [MATCH_ALL] : rules;
}

function mode(v: string | undefined, path: string): MtlsMode {
  const m = (v ?? "UNSET").toUpperCase();
  if (!(MTLS_MODES as readonly string[]).includes(m)) throw new InvalidField(path, `'${v}' is not one of ${MTLS_MODES.join(", ")}`);
  return m as MtlsMode;
}

/**
 * Translates one PeerAuthentication. Invalid ones resolve to STRICT for their scope (the widest
 * scope of the namespace when the selector itself cannot be read), with every problem reported:
 * a typo must never turn mutual TLS off. null for one Istio ignores (root namespace, selector).
 */
export function translatePeerAuthentication(obj: KubeObject, opts: TranslateOptions, diags: Diagnostics): PeerAuthentication | null {
  const ref = refOf(obj);
  const namespace = obj.metadata.namespace ?? "default";
  const problems = new Problems();
  const spec = problems.run(() => Fields.of(obj.spec ?? {}, "spec", problems.sink, true), undefined);
  const scope = readScope(spec, namespace, opts, problems);
  if (scope.kind === "mesh" && scope.selector) {
    // Istio's ComposePeerAuthentication skips these, so they must not override mesh-wide mTLS
    // for the root namespace's own workloads (a DISABLE for its gateway, say).
    diags.warn(
      ref,
      `spec.selector: a PeerAuthentication with a selector in the root namespace (${opts.rootNamespace}) is ignored, as Istio ignores it: set mesh-wide mTLS without a selector, and a workload's own in the workload's namespace`,
    );
    return null;
  }
  if (spec) rootHint(obj, scope.selector !== undefined, opts, diags);
  let m: MtlsMode = "STRICT";
  const portLevelMtls: Record<string, MtlsMode> = {};
  if (spec) {
    const mtls = problems.run(() => spec.obj("mtls"), undefined);
    m = problems.run(() => mode(mtls?.str("mode"), "spec.mtls.mode"), "STRICT");
    mtls?.finish();
    const pl = problems.run(() => spec.obj("portLevelMtls"), undefined);
    if (pl) {
      if (scope.selector === undefined)
        problems.list.push("spec.portLevelMtls: needs spec.selector (port-level settings apply to selected workloads only)");
      for (const port of Object.keys(pl.value)) {
        // Keyed by the number, as the agent looks ports up ("080" is port 80, a uint32 in Istio).
        const n = problems.run(() => checkPort(port, `spec.portLevelMtls.${port}`), 0);
        const entry = problems.run(() => pl.obj(port), undefined);
        if (!entry) continue;
        portLevelMtls[String(n)] = problems.run(() => mode(entry.str("mode"), `spec.portLevelMtls.${port}.mode`), "STRICT");
        entry.finish();
      }
    }
    spec.finish();
  }
  const base = { key: `${namespace}/${obj.metadata.name}`, name: obj.metadata.name, namespace, scope };
  if (problems.list.length === 0) return { ...base, mode: m, portLevelMtls };
  for (const e of problems.list) diags.error(ref, `invalid: ${e}; mTLS is STRICT for the policy's whole scope (fail closed)`);
  return { ...base, mode: "STRICT", portLevelMtls: {}, errors: problems.list };
}
